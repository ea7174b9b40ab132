// Shared helpers for every e2e suite. They only use KUBECONFIG and the image names from the
// environment (`eval "$(e2e/cluster/env)"`), so the same suites run on e2e/cluster or on kind.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach } from '@jest/globals';
import { ApiException, CoreV1Api, Exec, KubeConfig, RbacAuthorizationV1Api, type V1Pod, type V1Status } from '@kubernetes/client-node';

const ENV_HINT = 'run the tests from a shell prepared with: eval "$(e2e/cluster/env)"';

// ---- configuration from the environment ----

function requireEnv(name: string, what: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (${what}); ${ENV_HINT}`);
  return value;
}

let cachedKube: KubeConfig | undefined;

/**
 * The cluster under test, from KUBECONFIG only. Deliberately no fallback to ~/.kube/config or
 * in-cluster config: an e2e run must never land on a cluster nobody pointed it at.
 */
export function kubeFromEnv(): KubeConfig {
  if (cachedKube) return cachedKube;
  requireEnv('KUBECONFIG', 'the kubeconfig of the cluster under test');
  const kc = new KubeConfig();
  kc.loadFromDefault(); // honours KUBECONFIG, including a colon-separated list
  if (!kc.getCurrentCluster()) throw new Error(`KUBECONFIG=${process.env.KUBECONFIG} has no current cluster; ${ENV_HINT}`);
  cachedKube = kc;
  return kc;
}

/**
 * Images the tests may run. Getters, so a suite that never uses an image does not need it set.
 * The clusters have no registry: these are preloaded, so pods must use imagePullPolicy: Never.
 */
export const images = {
  get busybox(): string {
    return requireEnv('CASEFILE_BUSYBOX_IMAGE', 'busybox-static image for test workloads');
  },
  get debug(): string {
    return requireEnv('CASEFILE_DEBUG_IMAGE', 'casefile debug-tools image');
  },
  get operator(): string {
    return requireEnv('CASEFILE_OPERATOR_IMAGE', 'casefile operator image');
  },
  get pause(): string {
    return requireEnv('CASEFILE_PAUSE_IMAGE', 'pause image');
  },
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- API errors ----

/** HTTP status and the API server's own message from a failed client-node call (undefined code if not an API error). */
export function apiError(err: unknown): { code: number | undefined; reason: string | undefined; message: string } {
  if (!(err instanceof ApiException)) return { code: undefined, reason: undefined, message: String(err) };
  // client-node 1.x keeps the raw body, usually a JSON Status as a string.
  let body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return { code: err.code, reason: undefined, message: body as string };
    }
  }
  const status = (body ?? {}) as { message?: string; reason?: string };
  return { code: err.code, reason: status.reason, message: status.message ?? err.message };
}

/** Runs `fn`, requires it to fail with HTTP `code`, and returns the server's message for further assertions. */
export async function expectApiError(code: number, fn: () => Promise<unknown>): Promise<string> {
  let result: unknown;
  try {
    result = await fn();
  } catch (err) {
    const e = apiError(err);
    if (e.code !== code) throw new Error(`expected HTTP ${code}, got ${e.code ?? 'a non-API error'}: ${e.message}`);
    return e.message;
  }
  throw new Error(`expected HTTP ${code}, but the call succeeded: ${describe(result)}`);
}

// ---- polling ----

export interface WaitOptions<T> {
  timeoutMs: number;
  intervalMs?: number;
  /** Done when this holds for fn's value; default: the value is not undefined, null or false. */
  until?: (value: T) => boolean;
}

/** Thrown from a waitFor callback for a state that will never resolve (e.g. a missing image): stops at once. */
export class GiveUp extends Error {}

/**
 * Polls fn until its value satisfies `until`. Errors thrown by fn count as "not yet" (the cluster
 * is eventually consistent) except GiveUp. On timeout the error names what was awaited and the
 * last value or error seen, which is usually the whole diagnosis.
 */
export async function waitFor<T>(description: string, fn: () => Promise<T>, opts: WaitOptions<T>): Promise<T> {
  const { timeoutMs, intervalMs = 500 } = opts;
  const until = opts.until ?? ((v: T) => v !== undefined && v !== null && v !== false);
  const started = Date.now();
  let last = 'nothing (no attempt finished)';
  for (;;) {
    try {
      const value = await fn();
      if (until(value)) return value;
      last = `value ${describe(value)}`;
    } catch (err) {
      if (err instanceof GiveUp) throw new Error(`gave up waiting for ${description}: ${err.message}`);
      const e = apiError(err);
      last = `error ${e.code ? `HTTP ${e.code}: ` : ''}${e.message}`;
    }
    if (Date.now() - started >= timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; last observed: ${last}`);
    }
    await sleep(intervalMs);
  }
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 1500 ? `${text.slice(0, 1500)}…` : text;
}

// ---- cleanup ----

const cleanups: { description: string; fn: () => Promise<void> }[] = [];

/** Queue work for the end of the current test; runs last-registered first. */
export function registerCleanup(description: string, fn: () => Promise<void>): void {
  cleanups.push({ description, fn });
}

/** Runs every registered cleanup (LIFO), even after one fails; then reports all failures together. */
export async function runCleanups(): Promise<void> {
  const failures: string[] = [];
  for (let c = cleanups.pop(); c; c = cleanups.pop()) {
    try {
      await c.fn();
    } catch (err) {
      failures.push(`${c.description}: ${apiError(err).message}`);
    }
  }
  if (failures.length) throw new Error(`cleanup failed:\n  ${failures.join('\n  ')}`);
}

/** Namespace deletion waits for pods to go; jest's default hook timeout (5 s) is far too short. */
const CLEANUP_TIMEOUT_MS = 150_000;

/** Call at the top of a test file: cleans up after each test (jest forbids registering hooks inside a test). */
export function useCleanup(): void {
  afterEach(runCleanups, CLEANUP_TIMEOUT_MS);
}

// ---- namespaces ----

/** Every namespace a test creates carries this label, so leftovers are easy to find and delete. */
export const TEST_NAMESPACE_LABEL = 'casefile.dev/e2e';

/**
 * Creates a uniquely named namespace and registers its deletion (run `useCleanup()` in the file).
 * Set CASEFILE_E2E_KEEP_NAMESPACES=1 to keep them for a post-mortem.
 * Returns only once the namespace's default ServiceAccount exists: before that, pod creation is
 * refused ("serviceaccount default not found").
 */
export async function createTestNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const core = kubeFromEnv().makeApiClient(CoreV1Api);
  const base = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
  const name = `${base}-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name, labels: { [TEST_NAMESPACE_LABEL]: 'true', ...labels } } } });
  registerCleanup(`delete namespace ${name}`, async () => {
    if (process.env.CASEFILE_E2E_KEEP_NAMESPACES === '1') {
      console.warn(`keeping namespace ${name} (CASEFILE_E2E_KEEP_NAMESPACES=1)`);
      return;
    }
    await deleteNamespace(name);
    await returnRetainedVolumes(name);
  });
  await waitFor(`ServiceAccount default in ${name}`, () => core.readNamespacedServiceAccount({ name: 'default', namespace: name }), {
    timeoutMs: 60_000,
  });
  return name;
}

/**
 * Deletes a namespace and, unless wait is 0, waits until it is gone, so the next test starts on a
 * quiet node and a PVC's volume is released. Missing namespaces are fine.
 */
export async function deleteNamespace(name: string, opts: { waitMs?: number } = {}): Promise<void> {
  const { waitMs = 90_000 } = opts;
  const core = kubeFromEnv().makeApiClient(CoreV1Api);
  try {
    await core.deleteNamespace({ name, body: { propagationPolicy: 'Background' } });
  } catch (err) {
    if (apiError(err).code === 404) return;
    throw err;
  }
  if (waitMs === 0) return;
  await waitFor(
    `namespace ${name} to be deleted`,
    async () => {
      try {
        const ns = await core.readNamespace({ name });
        return ns.status?.conditions?.filter((c) => c.status === 'True').map((c) => `${c.type}: ${c.message}`) ?? ns.status?.phase;
      } catch (err) {
        if (apiError(err).code === 404) return 'gone';
        throw err;
      }
    },
    { timeoutMs: waitMs, intervalMs: 1000, until: (v) => v === 'gone' },
  );
}

/**
 * Static volumes with reclaimPolicy Retain (e2e/cluster's hostPath pool) stay Released after their
 * claim is deleted and would run out after a dozen runs; clearing claimRef makes them Available
 * again. Dynamically provisioned volumes (kind's local-path) are deleted by their provisioner and
 * are left alone. Files written by tests stay on the volume, so tests write uniquely named files.
 */
async function returnRetainedVolumes(namespace: string): Promise<void> {
  const core = kubeFromEnv().makeApiClient(CoreV1Api);
  const pvs = await core.listPersistentVolume();
  for (const pv of pvs.items) {
    const provisioned = pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'];
    if (pv.spec?.claimRef?.namespace !== namespace || pv.spec.persistentVolumeReclaimPolicy !== 'Retain' || provisioned) continue;
    const name = pv.metadata!.name!;
    // The PV controller marks the volume Released shortly after the claim is gone; resetting earlier
    // would race with it.
    const current = await waitFor(`volume ${name} to be Released`, () => core.readPersistentVolume({ name }), {
      timeoutMs: 30_000,
      until: (v) => v.status?.phase === 'Released' || v.spec?.claimRef?.namespace !== namespace,
    });
    if (current.spec?.claimRef?.namespace !== namespace) continue;
    delete current.spec!.claimRef;
    await core.replacePersistentVolume({ name, body: current }); // replace: fails on a concurrent change instead of clobbering it
  }
}

// ---- pods ----

/** A compact view of a pod's state for timeout messages. */
export function podSummary(pod: V1Pod): Record<string, unknown> {
  const states = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])];
  return {
    phase: pod.status?.phase,
    reason: pod.status?.reason,
    message: pod.status?.message,
    conditions: pod.status?.conditions?.filter((c) => c.status !== 'True').map((c) => `${c.type}=${c.status} ${c.reason ?? ''} ${c.message ?? ''}`.trim()),
    containers: states.map((s) => ({ name: s.name, ready: s.ready, restarts: s.restartCount, state: s.state })),
  };
}

/** Waiting reasons that no amount of waiting fixes (the images are preloaded, so a pull error is final). */
const HOPELESS = new Set(['ErrImageNeverPull', 'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

/** Fails fast if the pod can never become what we wait for. */
export function assertPodCanProgress(pod: V1Pod): void {
  const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') {
    throw new GiveUp(`pod ${name} finished (${pod.status.phase}): ${describe(podSummary(pod))}`);
  }
  const all = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])];
  for (const s of all) {
    const reason = s.state?.waiting?.reason;
    if (reason && HOPELESS.has(reason)) throw new GiveUp(`pod ${name} container ${s.name}: ${reason}: ${s.state?.waiting?.message ?? ''}`);
  }
}

/** Waits for the pod's Ready condition and returns the pod (with its IP). */
export async function waitForPodReady(kc: KubeConfig, namespace: string, name: string, timeoutMs = 60_000): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  let pod: V1Pod | undefined;
  await waitFor(
    `pod ${namespace}/${name} to be Ready`,
    async () => {
      pod = await core.readNamespacedPod({ name, namespace });
      assertPodCanProgress(pod);
      return podSummary(pod);
    },
    { timeoutMs, until: () => pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true },
  );
  return pod!;
}

/** Waits for a run-to-completion pod (restartPolicy Never) to finish and returns it. */
export async function waitForPodCompletion(kc: KubeConfig, namespace: string, name: string, timeoutMs = 60_000): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  let pod: V1Pod | undefined;
  await waitFor(
    `pod ${namespace}/${name} to finish`,
    async () => {
      pod = await core.readNamespacedPod({ name, namespace });
      if (pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') assertPodCanProgress(pod);
      return podSummary(pod);
    },
    { timeoutMs, until: () => pod?.status?.phase === 'Succeeded' || pod?.status?.phase === 'Failed' },
  );
  return pod!;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Runs a command in a container through pods/exec (no stdin, no tty). The exit code comes from
 * the V1Status the API server sends on the status channel: Success is 0, a NonZeroExitCode
 * failure carries the code in details.causes[ExitCode]. Any other failure (e.g. executable not
 * found) throws with the server's message.
 */
export async function podExec(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  container: string,
  command: string[],
  timeoutMs = 60_000,
): Promise<ExecResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (chunks: Buffer[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(Buffer.from(chunk));
        callback();
      },
    });
  const what = `exec ${JSON.stringify(command)} in ${namespace}/${pod}/${container}`;
  let status: V1Status | undefined;
  const ws = await new Exec(kc)
    .exec(namespace, pod, container, command, sink(out), sink(err), null, false, (s) => {
      status = s;
    })
    .catch((e: unknown) => {
      // The websocket handshake error carries only the HTTP status (400: no such container or not running).
      throw new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`${what} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.on('error', (e: Error) => {
      clearTimeout(timer);
      reject(new Error(`${what}: websocket error: ${e.message}`));
    });
  });
  const stdout = Buffer.concat(out).toString('utf8');
  const stderr = Buffer.concat(err).toString('utf8');
  if (!status) throw new Error(`${what}: connection closed without an exit status (stdout ${describe(stdout)}, stderr ${describe(stderr)})`);
  if (status.status === 'Success') return { stdout, stderr, exitCode: 0 };
  const exitCause = status.reason === 'NonZeroExitCode' ? status.details?.causes?.find((c) => c.reason === 'ExitCode') : undefined;
  if (exitCause?.message !== undefined) return { stdout, stderr, exitCode: Number(exitCause.message) };
  throw new Error(`${what} failed: ${status.reason ?? ''} ${status.message ?? describe(status)} (stderr ${describe(stderr)})`);
}

// ---- kubectl ----

/**
 * Runs kubectl (found on PATH, which the env script sets; KUBECONFIG is inherited) for the few
 * things simpler there than in client-node. Rejects on a non-zero exit with kubectl's stderr.
 */
export function kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  requireEnv('KUBECONFIG', 'the kubeconfig kubectl should use');
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      args,
      { env: process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`kubectl ${args.join(' ')} failed (${error.code ?? error.signal ?? error.message}): ${stderr.trim() || error.message}`));
        else resolve({ stdout, stderr });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

/** Binds ClusterRole `role` to user `user` in `namespace` (a RoleBinding named `binding`), as a platform team would. */
export async function bindUserInNamespace(kc: KubeConfig, namespace: string, binding: string, role: string, user: string): Promise<void> {
  await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: binding },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    },
  });
}
