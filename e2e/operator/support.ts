// Shared pieces of the operator e2e suite: deploying the operator, reading the evidence volume
// through a reader pod (never the node's disk), Investigations through CustomObjectsApi, and
// waiting for conditions. Everything goes through KUBECONFIG, so it works on any cluster.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, type V1Container, type V1Pod, type V1SecurityContext } from '@kubernetes/client-node';
import type { Condition, ConditionType, Investigation } from '../../src/api/investigation.js';
import { apiError, assertPodCanProgress, images, kubeFromEnv, podExec, podSummary, waitFor, type ExecResult } from '../support/cluster.js';

export const GROUP = 'casefile.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'investigations';
export const FINALIZER = 'casefile.dev/release';

export const OPERATOR_NAMESPACE = 'casefile-system';
export const OPERATOR_DEPLOYMENT = 'casefile-operator';
export const OPERATOR_SELECTOR = 'app.kubernetes.io/name=casefile,app.kubernetes.io/component=operator';
export const EVIDENCE_PVC = 'casefile-evidence';
export const READER_POD = 'casefile-evidence-reader';
const READER_CONTAINER = 'reader';

/** The capture phases every full case runs, in order (the brief's contract). */
export const CAPTURE_PHASES = ['TargetResolved', 'ManifestCaptured', 'EventsCaptured', 'LogsCaptured', 'ScopeMapped', 'EvidenceSealed'] as const;

/** The repository root (this file is e2e/operator/support.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const kc = kubeFromEnv();
export const core = kc.makeApiClient(CoreV1Api);
export const custom = kc.makeApiClient(CustomObjectsApi);

export type { Condition, ConditionType, Investigation };

// ---- processes ----

export interface ProcessResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs a program and resolves with its exit code (unlike support/cluster's kubectl, a non-zero exit is a result, not an error). */
export function run(file: string, args: string[], opts: { input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr, exitCode: 0 });
        if (typeof error.code === 'number' && !error.killed) return resolve({ stdout, stderr, exitCode: error.code });
        reject(new Error(`${file} ${args.join(' ')} did not finish (${error.signal ?? error.code ?? error.message}): ${stderr.trim()}`));
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

/** kubectl with stdin, returning the exit code and both streams. */
export function kubectlRun(args: string[], input?: string): Promise<ProcessResult> {
  return run('kubectl', args, { input });
}

/**
 * (Re)deploys the operator with scripts/deploy.sh; `env` entries (KEY=VALUE) become operator
 * environment variables. Idempotent: without changes the rollout is a no-op.
 */
export async function deployOperator(env: string[] = [], timeoutMs = 120_000): Promise<void> {
  const result = await run('bash', ['scripts/deploy.sh', ...env], { cwd: REPO_ROOT, timeoutMs });
  if (result.exitCode !== 0) {
    throw new Error(`scripts/deploy.sh ${env.join(' ')} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

/**
 * Deploys the operator with extra environment variables (fault injection). Uses scripts/deploy.sh
 * KEY=VALUE as documented; if deploy.sh cannot render them (its awk inserts the variables at a
 * deeper indentation than kustomize's `env:` list items, so the YAML does not parse), it falls back
 * to a plain deploy plus `kubectl set env` and a rollout wait, and says so on stderr. Returns how
 * the variables were set.
 */
export async function deployOperatorWithEnv(env: string[], timeoutMs = 120_000): Promise<'deploy.sh' | 'kubectl set env'> {
  const result = await run('bash', ['scripts/deploy.sh', ...env], { cwd: REPO_ROOT, timeoutMs });
  if (result.exitCode === 0) return 'deploy.sh';
  if (!/error (parsing|converting) .*YAML|did not find expected key/i.test(result.stderr)) {
    throw new Error(`scripts/deploy.sh ${env.join(' ')} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  console.warn(`scripts/deploy.sh ${env.join(' ')} produced invalid YAML (${result.stderr.trim()}); setting the variables with kubectl set env instead`);
  await deployOperator([], timeoutMs);
  await kubectlRunOk(['-n', OPERATOR_NAMESPACE, 'set', 'env', `deployment/${OPERATOR_DEPLOYMENT}`, '-c', 'operator', ...env]);
  await kubectlRunOk(['-n', OPERATOR_NAMESPACE, 'rollout', 'status', `deployment/${OPERATOR_DEPLOYMENT}`, `--timeout=${Math.round(timeoutMs / 1000)}s`]);
  return 'kubectl set env';
}

/**
 * Takes environment variables off the operator again and redeploys it as scripts/deploy.sh
 * renders it. `kubectl set env NAME-` first, because a variable added by `kubectl set env` is owned
 * by another field manager, which deploy.sh's server-side apply would leave in place.
 */
export async function deployOperatorWithout(names: string[], timeoutMs = 120_000): Promise<void> {
  if ((await operatorEnvNames()).some((n) => names.includes(n))) {
    await kubectlRunOk(['-n', OPERATOR_NAMESPACE, 'set', 'env', `deployment/${OPERATOR_DEPLOYMENT}`, '-c', 'operator', ...names.map((n) => `${n}-`)]);
  }
  await deployOperator([], timeoutMs);
}

/** The operator Deployment's container env names (to prove fault injection is on or off). */
export async function operatorEnvNames(): Promise<string[]> {
  const { stdout } = await kubectlRunOk(['-n', OPERATOR_NAMESPACE, 'get', 'deployment', OPERATOR_DEPLOYMENT, '-o', 'json']);
  const deployment = JSON.parse(stdout) as { spec: { template: { spec: { containers: V1Container[] } } } };
  return deployment.spec.template.spec.containers.flatMap((c) => (c.env ?? []).map((e) => e.name));
}

async function kubectlRunOk(args: string[], input?: string): Promise<ProcessResult> {
  const result = await kubectlRun(args, input);
  if (result.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.exitCode}: ${result.stderr.trim()}`);
  return result;
}

/** The operator's live (not terminating) pod. */
export async function operatorPod(): Promise<V1Pod> {
  const pods = await core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: OPERATOR_SELECTOR });
  const live = pods.items.filter((p) => !p.metadata?.deletionTimestamp);
  if (live.length !== 1) throw new Error(`expected one live operator pod, found ${live.map((p) => p.metadata?.name).join(', ') || 'none'}`);
  return live[0]!;
}

/** `casefile <args>` run by the operator image's own node (the image has no shell). */
export function casefileCli(args: string[]): Promise<ProcessResult> {
  return kubectlRun(['-n', OPERATOR_NAMESPACE, 'exec', `deploy/${OPERATOR_DEPLOYMENT}`, '-c', 'operator', '--', '/usr/bin/node', '/app/dist/cli/main.js', ...args]);
}

// ---- the evidence reader ----

export const restrictedSecurityContext: V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function readerPodManifest(): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: READER_POD, namespace: OPERATOR_NAMESPACE, labels: { 'app.kubernetes.io/name': 'casefile-evidence-reader', 'casefile.dev/e2e': 'true' } },
    spec: {
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: READER_CONTAINER,
          image: images.busybox,
          imagePullPolicy: 'Never',
          command: ['sleep', '2147483647'],
          securityContext: restrictedSecurityContext,
          volumeMounts: [{ name: 'evidence', mountPath: '/evidence', readOnly: true }],
        },
      ],
      volumes: [{ name: 'evidence', persistentVolumeClaim: { claimName: EVIDENCE_PVC, readOnly: true } }],
    },
  };
}

/**
 * Creates (idempotently) a long-running pod that mounts the evidence PVC read-only, and waits until
 * it is Ready. An existing reader that is finished or being deleted is replaced.
 */
export async function ensureEvidenceReader(timeoutMs = 120_000): Promise<void> {
  const manifest = readerPodManifest();
  let existing: V1Pod | undefined;
  try {
    existing = await core.readNamespacedPod({ name: READER_POD, namespace: OPERATOR_NAMESPACE });
  } catch (err) {
    if (apiError(err).code !== 404) throw err;
  }
  const image = existing?.spec?.containers.find((c) => c.name === READER_CONTAINER)?.image;
  const unusable =
    existing &&
    (existing.metadata?.deletionTimestamp || existing.status?.phase === 'Failed' || existing.status?.phase === 'Succeeded' || image !== images.busybox);
  if (existing && unusable) {
    if (!existing.metadata?.deletionTimestamp) {
      await core.deleteNamespacedPod({ name: READER_POD, namespace: OPERATOR_NAMESPACE, gracePeriodSeconds: 0 }).catch((err) => {
        if (apiError(err).code !== 404) throw err;
      });
    }
    await waitFor(
      `old ${READER_POD} to go`,
      async () => {
        try {
          await core.readNamespacedPod({ name: READER_POD, namespace: OPERATOR_NAMESPACE });
          return false;
        } catch (err) {
          if (apiError(err).code === 404) return true;
          throw err;
        }
      },
      { timeoutMs },
    );
    existing = undefined;
  }
  if (!existing) {
    try {
      await core.createNamespacedPod({ namespace: OPERATOR_NAMESPACE, body: manifest });
    } catch (err) {
      if (apiError(err).code !== 409) throw err; // created concurrently by another run: use it
    }
  }
  let pod: V1Pod | undefined;
  await waitFor(
    `${OPERATOR_NAMESPACE}/${READER_POD} to be Ready`,
    async () => {
      pod = await core.readNamespacedPod({ name: READER_POD, namespace: OPERATOR_NAMESPACE });
      assertPodCanProgress(pod);
      return podSummary(pod);
    },
    { timeoutMs, until: () => pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true },
  );
}

/** Runs a shell script in the reader pod (busybox sh). */
export function readerExec(script: string, timeoutMs = 60_000): Promise<ExecResult> {
  return podExec(kc, OPERATOR_NAMESPACE, READER_POD, READER_CONTAINER, ['sh', '-c', script], timeoutMs);
}

/** Single-quotes a value for sh. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Contents of a file in the evidence volume; throws with the reader's stderr if it cannot be read. */
export async function readEvidence(path: string): Promise<string> {
  const r = await readerExec(`cat ${shq(path)}`);
  if (r.exitCode !== 0) throw new Error(`cat ${path} in the reader exited ${r.exitCode}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Every regular file under a case directory, relative to it, sorted. */
export async function listCaseFiles(caseDir: string): Promise<string[]> {
  const r = await readerExec(`cd ${shq(caseDir)} && find . -type f`);
  if (r.exitCode !== 0) throw new Error(`listing ${caseDir} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^\.\//, ''))
    .sort();
}

/** `sha256sum -c MANIFEST.sha256` in the case directory. */
export function sha256Check(caseDir: string): Promise<ExecResult> {
  return readerExec(`cd ${shq(caseDir)} && sha256sum -c MANIFEST.sha256`);
}

/** Byte size of a file in the evidence volume, by `wc -c`. */
export async function evidenceSize(path: string): Promise<number> {
  const r = await readerExec(`wc -c < ${shq(path)}`);
  if (r.exitCode !== 0) throw new Error(`wc -c ${path} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}

/**
 * The case directory of an Investigation, computed independently of the operator from the
 * documented layout: /evidence/<namespace>/<name>-<first 8 hex of the UID without dashes>.
 * Test names are plain DNS labels, for which the operator's segment sanitising is the identity.
 */
export function caseDirOf(inv: Investigation): string {
  const { namespace, name, uid } = inv.metadata;
  for (const s of [namespace, name]) if (!/^[a-z0-9-]+$/.test(s)) throw new Error(`${s} is not a plain DNS label; caseDirOf does not sanitise`);
  return `/evidence/${namespace}/${caseDirName(name, uid)}`;
}

export function caseDirName(name: string, uid: string): string {
  return `${name}-${uid.replace(/-/g, '').slice(0, 8)}`;
}

// ---- Investigations ----

export interface InvestigationSpecInput {
  target: { pod?: string; container?: string; uid?: string };
  alert?: Record<string, unknown>;
  containment?: Record<string, unknown>;
  evidence?: Record<string, unknown>;
  release?: boolean;
}

export async function createInvestigation(namespace: string, name: string, spec: InvestigationSpecInput): Promise<Investigation> {
  return (await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Investigation', metadata: { name, namespace }, spec },
  })) as Investigation;
}

export async function getInvestigation(namespace: string, name: string): Promise<Investigation> {
  return (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as Investigation;
}

export async function deleteInvestigation(namespace: string, name: string): Promise<void> {
  await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name });
}

/** HTTP status of a GET of the Investigation (200 or the API error's code). */
export async function investigationStatusCode(namespace: string, name: string): Promise<number | undefined> {
  try {
    await getInvestigation(namespace, name);
    return 200;
  } catch (err) {
    return apiError(err).code;
  }
}

export function conditionOf(inv: Investigation, type: ConditionType): Condition | undefined {
  return inv.status?.conditions?.find((c) => c.type === type);
}

/** A compact view of an Investigation's state for timeout messages. */
function investigationSummary(inv: Investigation): Record<string, unknown> {
  return {
    phase: inv.status?.phase,
    conditions: (inv.status?.conditions ?? []).map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`),
  };
}

/** Waits until the Investigation's condition `type` has `status`; returns the Investigation as then read. */
export async function waitForCondition(
  namespace: string,
  name: string,
  type: ConditionType,
  status: 'True' | 'False' | 'Unknown',
  timeoutMs = 120_000,
): Promise<Investigation> {
  let inv: Investigation | undefined;
  await waitFor(
    `Investigation ${namespace}/${name} condition ${type}=${status}`,
    async () => {
      inv = await getInvestigation(namespace, name);
      return investigationSummary(inv);
    },
    { timeoutMs, intervalMs: 1000, until: () => inv !== undefined && conditionOf(inv, type)?.status === status },
  );
  return inv!;
}

// ---- workloads ----

/** A busybox container (restricted-compliant, imagePullPolicy Never) running `script` with sh -c. */
export function busyboxContainer(name: string, script: string, extra: Partial<V1Container> = {}): V1Container {
  return {
    name,
    image: images.busybox,
    imagePullPolicy: 'Never',
    command: ['sh', '-c', script],
    securityContext: restrictedSecurityContext,
    ...extra,
  };
}

/** A one-container busybox pod; terminationGracePeriodSeconds 0 so namespace deletion is quick. */
export function busyboxPod(name: string, script: string, opts: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name, ...opts.labels }, annotations: opts.annotations },
    spec: {
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      containers: [busyboxContainer('app', script)],
    },
  };
}
