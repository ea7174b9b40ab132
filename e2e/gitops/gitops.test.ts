// End-to-end: casefile under a GitOps tool. An Investigation is applied the way Argo CD applies it
// (server-side apply, field manager `argocd-controller`, forced), the operator contains the pod,
// and then:
//   - managedFields show that nobody but the applier owns anything except metadata.finalizers and
//     status, so a GitOps diff of the manifest sees no drift;
//   - re-applying the same manifest (and a server-side dry-run apply, which is what Argo CD's
//     server-side diff does) changes nothing;
//   - the Argo CD health check (config/argocd) reports the live object Healthy, and kstatus (Flux's
//     `wait: true`: cli-utils' library itself, built from e2e/cluster/kstatus) reads it as Current;
//   - a commit with spec.release: true lifts containment and keeps the object (test 2);
//   - pruning it the way Argo CD does (foreground delete) lifts containment through the finalizer
//     and leaves the case file intact (test 1);
//   - a release commit not yet acted on is InProgress for kstatus (test 2), a failed case Failed and
//     Degraded (test 3).
// Run: npm run test:e2e -- --testPathPatterns e2e/gitops   (cluster up, KUBECONFIG from e2e/cluster/env)
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createTestNamespace, kubeFromEnv, useCleanup, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxPod,
  caseDirOf,
  casefileCli,
  conditionOf,
  core,
  kubectlRun,
  custom,
  deployOperator,
  ensureEvidenceReader,
  FINALIZER,
  getInvestigation,
  GROUP,
  investigationStatusCode,
  listCaseFiles,
  PLURAL,
  readEvidence,
  REPO_ROOT,
  run,
  VERSION,
  waitForCondition,
  type Investigation,
} from '../operator/support.js';
import { expectCaseVerifies, incidentKey, podLabels, policyName, readPolicy, waitForConditionObserved } from '../containment/helpers.js';
import { runHealthScript } from '../../test/unit/gitops/lua.js';

useCleanup();

const kc = kubeFromEnv();
const ARGOCD_MANAGER = 'argocd-controller';
const TEST_TIMEOUT_MS = 300_000;
const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const healthLua = readFileSync(`${REPO_ROOT}config/argocd/casefile.dev/Investigation/health.lua`, 'utf8');

interface ManagedFieldsEntry {
  manager: string;
  operation: string;
  subresource?: string;
  fieldsV1?: Record<string, unknown>;
}

type Live = Investigation & { metadata: Investigation['metadata'] & { managedFields?: ManagedFieldsEntry[]; annotations?: Record<string, string> } };

/** The manifest as it sits in git, including the tracking annotation Argo CD adds when it applies. */
function manifest(namespace: string, name: string, pod: string, extra: { release?: boolean } = {}) {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Investigation',
    metadata: {
      name,
      namespace,
      labels: { 'app.kubernetes.io/part-of': 'incident-response' },
      annotations: { 'argocd.argoproj.io/tracking-id': `incident-response:${GROUP}/Investigation:${namespace}/${name}` },
    },
    spec: {
      target: { pod },
      alert: { source: 'manual', rule: 'Terminal shell in container', priority: 'Critical' },
      containment: { order: 'ContainFirst', network: { isolate: true } },
      ...(extra.release ? { release: true } : {}),
    },
  };
}

/** Server-side apply as Argo CD does it (ServerSideApply=true sync option): its field manager, conflicts forced. */
async function argoApply(body: ReturnType<typeof manifest>, opts: { dryRun?: boolean } = {}): Promise<Live> {
  return (await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: body.metadata.namespace,
      plural: PLURAL,
      name: body.metadata.name,
      body,
      fieldManager: ARGOCD_MANAGER,
      force: true,
      ...(opts.dryRun ? { dryRun: 'All' } : {}),
    },
    applyPatch,
  )) as Live;
}

/** Prunes the way Argo CD does by default (PrunePropagationPolicy=foreground). */
async function argoPrune(namespace: string, name: string): Promise<void> {
  await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, propagationPolicy: 'Foreground' });
}

/** Every leaf path of a fieldsV1 tree, e.g. ['f:metadata', 'f:finalizers', 'v:"casefile.dev/release"']. */
function leafPaths(tree: Record<string, unknown>, prefix: string[] = []): string[][] {
  const keys = Object.keys(tree);
  if (keys.length === 0) return [prefix];
  return keys.flatMap((k) => leafPaths((tree[k] ?? {}) as Record<string, unknown>, [...prefix, k]));
}

/** What each manager other than Argo CD owns, as dotted paths. */
function ownedByOthers(inv: Live): { manager: string; operation: string; subresource?: string; path: string }[] {
  return (inv.metadata.managedFields ?? [])
    .filter((e) => e.manager !== ARGOCD_MANAGER)
    .flatMap((e) => leafPaths(e.fieldsV1 ?? {}).map((p) => ({ manager: e.manager, operation: e.operation, subresource: e.subresource, path: p.join('.') })));
}

const allowedForOthers = (path: string): boolean => path === 'f:status' || path.startsWith('f:status.') || path.startsWith('f:metadata.f:finalizers.');

/** The drift contract: only metadata.finalizers and status are someone else's, and the operator did write them. */
function expectNoDriftFields(inv: Live): void {
  const others = ownedByOthers(inv);
  expect({ notAllowed: others.filter((o) => !allowedForOthers(o.path)) }).toEqual({ notAllowed: [] });
  expect(others.some((o) => o.path.startsWith('f:metadata.f:finalizers.'))).toBe(true);
  expect(others.some((o) => o.path.startsWith('f:status.') && o.subresource === 'status')).toBe(true);
  const argo = (inv.metadata.managedFields ?? []).filter((e) => e.manager === ARGOCD_MANAGER);
  expect(argo.map((e) => e.operation)).toEqual(['Apply']);
  const argoPaths = leafPaths(argo[0]!.fieldsV1 ?? {}).map((p) => p.join('.'));
  expect(argoPaths).toContain('f:spec.f:target.f:pod');
  expect(argoPaths).toContain('f:spec.f:containment.f:network.f:isolate');
  expect(argoPaths.filter((p) => p.startsWith('f:status') || p.startsWith('f:metadata.f:finalizers'))).toEqual([]);
}

function argoEntry(inv: Live): ManagedFieldsEntry | undefined {
  return inv.metadata.managedFields?.find((e) => e.manager === ARGOCD_MANAGER);
}

type KstatusResult = { status: string; message: string };

/**
 * What kstatus computes for objects given as JSON, by `<namespace>/<name>`: cli-utils' status library
 * (what Flux's `wait: true` runs) behind e2e/cluster/kstatus/main.go, on the PATH from e2e/cluster/env.
 */
async function kstatus(json: string): Promise<Record<string, KstatusResult>> {
  const r = await run('kstatus', [], { input: json });
  expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
  const lines = r.stdout.split('\n').filter(Boolean);
  return Object.fromEntries(lines.map((line) => {
    const [id, status, ...message] = line.split(' ');
    return [id!, { status: status!, message: message.join(' ') }];
  }));
}

/** kstatus on an Investigation exactly as the API server serves it (`kubectl get -o json`). */
async function kstatusLive(ns: string, name: string): Promise<KstatusResult | undefined> {
  const got = await kubectlRun(['get', `${PLURAL}.${GROUP}`, '-n', ns, '-o', 'json']); // a List
  expect({ exitCode: got.exitCode, stderr: got.stderr }).toEqual({ exitCode: 0, stderr: '' });
  return (await kstatus(got.stdout))[`${ns}/${name}`];
}

/** A pod that only sleeps: the suspect. */
async function startSuspect(namespace: string): Promise<string> {
  await core.createNamespacedPod({ namespace, body: busyboxPod('suspect', 'echo gitops-e2e; exec sleep 3600') });
  await waitForPodReady(kc, namespace, 'suspect', 90_000);
  return 'suspect';
}

/** `casefile verify <dir>` in the operator's image: exit 0 and `OK n artifact(s) verified`. */
async function expectCasefileVerifies(caseDir: string): Promise<void> {
  const verify = await casefileCli(['verify', caseDir]);
  expect({ caseDir, exitCode: verify.exitCode, stderr: verify.stderr.trim() }).toEqual({ caseDir, exitCode: 0, stderr: '' });
  expect(verify.stdout).toMatch(/^OK \d+ artifact\(s\) verified/m);
}

async function custodyActions(caseDir: string): Promise<string[]> {
  return (await readEvidence(`${caseDir}/custody.jsonl`))
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { action: string }).action);
}

/** Applies, waits for containment and Ready, and checks the no-drift contract; returns the sealed object. */
async function applyAndContain(ns: string, name: string, pod: string): Promise<Live> {
  const applied = await argoApply(manifest(ns, name, pod));
  expect(applied.metadata.generation).toBe(1);
  expect(['Progressing', 'Healthy']).toContain(runHealthScript(healthLua, applied).status);

  await waitForConditionObserved(ns, name, 'NetworkIsolated', 'True', 150_000);
  const sealed = (await waitForCondition(ns, name, 'Ready', 'True', 150_000)) as Live;
  expect(sealed.status?.phase).toBe('Contained');
  expect(sealed.metadata.finalizers).toContain(FINALIZER);
  expect((await podLabels(ns, pod))[incidentKey(sealed)]).toBe('isolated');
  expect(await readPolicy(ns, policyName(sealed))).toBeDefined();

  // What Argo CD would show for it.
  expect(runHealthScript(healthLua, sealed)).toEqual({ status: 'Healthy', message: `Contained: ${conditionOf(sealed, 'Ready')!.message}` });
  // And what Flux's `wait: true` would: kstatus reads Ready=True (no Reconciling, no Stalled) as Current.
  expect(await kstatusLive(ns, name)).toEqual({ status: 'Current', message: 'Resource is Ready' });
  // The operator never touched what git holds: the spec is still what the API server stored at the
  // apply (the manifest plus the CRD's schema defaults), at the same generation.
  expect(sealed.spec).toEqual(applied.spec);
  expect(sealed.metadata.generation).toBe(applied.metadata.generation);
  expect(sealed.metadata.labels).toEqual(manifest(ns, name, pod).metadata.labels);
  expect(sealed.metadata.annotations?.['argocd.argoproj.io/tracking-id']).toBe(manifest(ns, name, pod).metadata.annotations['argocd.argoproj.io/tracking-id']);
  expectNoDriftFields(sealed);
  return sealed;
}

/** Re-applying the unchanged manifest (dry run as in a server-side diff, then for real) changes nothing git owns. */
async function expectReapplyIsNoOp(ns: string, name: string, pod: string, before: Live): Promise<void> {
  const body = manifest(ns, name, pod);
  const diff = await argoApply(body, { dryRun: true });
  expect({ generation: diff.metadata.generation, spec: diff.spec }).toEqual({ generation: before.metadata.generation, spec: before.spec });

  await argoApply(body);
  const after = (await getInvestigation(ns, name)) as Live;
  // The operator may still write status, so resourceVersion is not compared: generation, spec and
  // the applier's own managed fields are.
  expect({ generation: after.metadata.generation, spec: after.spec, labels: after.metadata.labels }).toEqual({
    generation: before.metadata.generation,
    spec: before.spec,
    labels: before.metadata.labels,
  });
  expect(argoEntry(after)?.fieldsV1).toEqual(argoEntry(before)?.fieldsV1);
  expect(after.metadata.finalizers).toEqual(before.metadata.finalizers);
  expectNoDriftFields(after);
}

describe('GitOps (server-side apply as argocd-controller)', () => {
  beforeAll(async () => {
    await deployOperator();
    await ensureEvidenceReader();
  }, 300_000);

  test(
    'applied by Argo CD: no drift, idempotent re-apply, Healthy; pruning lifts containment and keeps the case file',
    async () => {
      const ns = await createTestNamespace('gitops-prune');
      const pod = await startSuspect(ns);
      const name = 'gitops-prune';

      const sealed = await applyAndContain(ns, name, pod);
      const caseDir = caseDirOf(sealed);
      await expectReapplyIsNoOp(ns, name, pod, sealed);
      const filesBefore = await listCaseFiles(caseDir);
      const manifestBefore = await readEvidence(`${caseDir}/MANIFEST.sha256`);
      // The page a person opens: sealed with the rest, self-contained, its timeline told from custody.jsonl.
      expect(filesBefore).toEqual(expect.arrayContaining(['report.md', 'report.html']));
      const html = await readEvidence(`${caseDir}/report.html`);
      expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
      expect(html).not.toMatch(/<script|\shref=|\ssrc=/i);
      const timeline = html.split('<h2>Timeline</h2>')[1]?.split('</section>')[0] ?? '';
      expect(timeline).toContain(`case opened for ${ns}/${name}`);
      expect(timeline).toContain('pod labelled');
      expect(timeline).toContain('networkpolicy created');
      expect(manifestBefore).toMatch(/ {2}report\.html$/m);

      // Removed from git: Argo CD prunes with a foreground delete. The finalizer holds the object
      // until containment is lifted; then it is gone.
      await argoPrune(ns, name);
      await waitFor(`Investigation ${ns}/${name} to be gone`, () => investigationStatusCode(ns, name), {
        timeoutMs: 120_000,
        intervalMs: 500,
        until: (code) => code === 404,
      });

      expect((await podLabels(ns, pod))[incidentKey(sealed)]).toBeUndefined();
      expect(Object.keys(await podLabels(ns, pod)).filter((k) => k.startsWith('casefile.dev/incident'))).toEqual([]);
      expect(await readPolicy(ns, policyName(sealed))).toBeUndefined();

      // The evidence outlives the object: every file is still there, the sealed manifest unchanged, the
      // case directory verifies, and its custody log records the release and the deletion.
      expect(await listCaseFiles(caseDir)).toEqual(expect.arrayContaining(filesBefore));
      expect(await readEvidence(`${caseDir}/MANIFEST.sha256`)).toBe(manifestBefore);
      await expectCasefileVerifies(caseDir);
      await expectCaseVerifies(caseDir);
      const actions = await custodyActions(caseDir);
      expect(actions).toContain('released');
      expect(actions).toContain('investigation-deleted');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a commit with spec.release: true lifts containment and keeps the Investigation as the record (Healthy, Released)',
    async () => {
      const ns = await createTestNamespace('gitops-release');
      const pod = await startSuspect(ns);
      const name = 'gitops-release';

      const sealed = await applyAndContain(ns, name, pod);

      const released = await argoApply(manifest(ns, name, pod, { release: true }));
      expect(released.metadata.generation).toBe(2);
      // The apply's response still carries the status of generation 1: kstatus waits for casefile to act.
      expect(released.status?.observedGeneration).toBe(1);
      expect((await kstatus(JSON.stringify(released)))[`${ns}/${name}`]).toEqual({
        status: 'InProgress',
        message: 'Investigation generation is 2, but latest observed generation is 1',
      });
      const done = (await waitFor(`Investigation ${ns}/${name} phase Released at generation 2`, () => getInvestigation(ns, name), {
        timeoutMs: 120_000,
        until: (i) => i.status?.phase === 'Released' && i.status.observedGeneration === 2,
      })) as Live;
      expect(conditionOf(done, 'Released')?.status).toBe('True');
      expect(runHealthScript(healthLua, done).status).toBe('Healthy');
      expect(runHealthScript(healthLua, done).message).toMatch(/^Released: /);
      expect((await kstatusLive(ns, name))?.status).toBe('Current');

      expect((await podLabels(ns, pod))[incidentKey(sealed)]).toBeUndefined();
      expect(await readPolicy(ns, policyName(sealed))).toBeUndefined();
      // Still there, still drift-free, still finalized by casefile.
      expect(done.metadata.finalizers).toContain(FINALIZER);
      expect(done.spec).toEqual(released.spec);
      expect(done.metadata.generation).toBe(2);
      expectNoDriftFields(done);
      await expectCasefileVerifies(caseDirOf(done));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a new Investigation no operator has acted on yet is InProgress for kstatus and Progressing for Argo CD',
    async () => {
      const ns = await createTestNamespace('gitops-unobserved');
      const name = 'gitops-unobserved';
      // A shard no casefile instance serves: the object stays as the API server made it.
      const body = manifest(ns, name, 'no-such-pod');
      (body.metadata.labels as Record<string, string>)['casefile.dev/shard'] = 'nobody';
      const live = await argoApply(body);
      // The CRD's default: generation 0 observed until an operator writes status.
      expect(live.status).toEqual({ observedGeneration: 0 });
      expect((await kstatusLive(ns, name))?.status).toBe('InProgress');
      expect(runHealthScript(healthLua, live).status).toBe('Progressing');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a failed case (its target does not exist) is Failed for kstatus and Degraded for Argo CD',
    async () => {
      const ns = await createTestNamespace('gitops-failed');
      const name = 'gitops-failed';
      await argoApply(manifest(ns, name, 'no-such-pod'));
      const failed = await waitForCondition(ns, name, 'Ready', 'False', 150_000);
      expect(failed.status?.phase).toBe('Failed');
      const ready = conditionOf(failed, 'Ready')!;
      expect(conditionOf(failed, 'Stalled')).toMatchObject({ status: 'True', reason: ready.reason, message: ready.message });
      expect(runHealthScript(healthLua, failed).status).toBe('Degraded');
      // kstatus reports Stalled's message, on one line.
      expect(await kstatusLive(ns, name)).toEqual({ status: 'Failed', message: ready.message.trim().split(/\s+/).join(' ') });
    },
    TEST_TIMEOUT_MS,
  );
});
