// End-to-end tests of the Investigation operator on a real cluster: the operator deployed in-cluster
// by scripts/deploy.sh, the case files read back from its evidence PVC through a reader pod.
// Each test works in its own namespace (deleted afterwards) and names its workloads with a token
// only this run can have produced, so output from an earlier run cannot pass an assertion.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { AppsV1Api, type V1Pod } from '@kubernetes/client-node';
import { createTestNamespace, GiveUp, kubeFromEnv, useCleanup, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxContainer,
  busyboxPod,
  CAPTURE_PHASES,
  caseDirOf,
  casefileCli,
  conditionOf,
  core,
  createInvestigation,
  deleteInvestigation,
  deployOperator,
  deployOperatorWithEnv,
  deployOperatorWithout,
  ensureEvidenceReader,
  evidenceSize,
  FINALIZER,
  getInvestigation,
  investigationStatusCode,
  kubectlRun,
  listCaseFiles,
  OPERATOR_NAMESPACE,
  operatorEnvNames,
  operatorPod,
  readEvidence,
  readerExec,
  sha256Check,
  shq,
  waitForCondition,
  type Investigation,
} from './support.js';

const kc = kubeFromEnv();
const apps = kc.makeApiClient(AppsV1Api);

const token = (): string => randomBytes(5).toString('hex');
const HEX64 = /^[0-9a-f]{64}$/;

/** A test's own budget: several bounded waits (each <= 120 s) plus namespace setup. */
const TEST_TIMEOUT_MS = 300_000;
/** The restart test also redeploys the operator twice. */
const RESTART_TEST_TIMEOUT_MS = 540_000;

useCleanup();

let faultInjectionActive = false;

/** Parses custody.jsonl into records (one JSON object a line). */
function custodyRecords(text: string): { seq: number; action: string; phase?: string; artifact?: string; detail?: Record<string, unknown> }[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { seq: number; action: string; phase?: string; artifact?: string; detail?: Record<string, unknown> });
}

/** Artifact paths listed in MANIFEST.sha256. */
function manifestPaths(manifest: string): string[] {
  return manifest
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
      if (!m) throw new Error(`malformed MANIFEST.sha256 line: ${JSON.stringify(line)}`);
      return m[2]!;
    });
}

/** sha256sum -c passes, every line OK, and the case has at least one artifact. */
async function expectManifestVerifies(caseDir: string): Promise<void> {
  const check = await sha256Check(caseDir);
  expect({ exitCode: check.exitCode, stderr: check.stderr }).toEqual({ exitCode: 0, stderr: '' });
  const lines = check.stdout.split('\n').filter(Boolean);
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.filter((l) => !/: OK$/.test(l))).toEqual([]);
}

/** `casefile verify <dir>` in the operator's image: exit 0 and `OK n artifact(s) verified`. */
async function expectCasefileVerifies(caseDir: string, artifacts?: number): Promise<void> {
  const verify = await casefileCli(['verify', caseDir]);
  expect({ exitCode: verify.exitCode, stderr: verify.stderr.trim() }).toEqual({ exitCode: 0, stderr: '' });
  const m = /^OK (\d+) artifact\(s\) verified/m.exec(verify.stdout);
  expect(m).not.toBeNull();
  if (artifacts !== undefined) expect(Number(m![1])).toBe(artifacts);
}

/** Every capture phase True at the current generation, with a parseable lastTransitionTime. */
function expectAllPhasesTrue(inv: Investigation): void {
  const generation = inv.metadata.generation;
  expect(generation).toBeGreaterThanOrEqual(1);
  for (const type of CAPTURE_PHASES) {
    const c = conditionOf(inv, type);
    expect({ type, status: c?.status, reason: c?.reason, message: c?.message }).toEqual({ type, status: 'True', reason: expect.any(String), message: expect.any(String) });
    expect({ type, observedGeneration: c!.observedGeneration }).toEqual({ type, observedGeneration: generation });
    expect(Number.isNaN(Date.parse(c!.lastTransitionTime))).toBe(false);
  }
}

/** A pod that logs one line and sleeps; returns it once Ready. */
async function startSleeper(namespace: string, name: string, line: string, opts: Parameters<typeof busyboxPod>[2] = {}): Promise<V1Pod> {
  await core.createNamespacedPod({ namespace, body: busyboxPod(name, `echo ${shq(line)}; exec sleep 3600`, opts) });
  return waitForPodReady(kc, namespace, name, 90_000);
}

describe('casefile operator', () => {
  beforeAll(async () => {
    await deployOperator();
    await ensureEvidenceReader();
  }, 300_000);

  afterAll(async () => {
    // Safety net: if the restart test could not take fault injection off, do it here.
    if (faultInjectionActive) await deployOperatorWithout(['CASEFILE_EXIT_AFTER_PHASE']);
  }, 150_000);

  test(
    'full case on a pod whose container restarted once',
    async () => {
      const ns = await createTestNamespace('op-full');
      const run = token();
      const firstLine = `first-run-${run}`;
      const secondLine = `second-run-${run}`;
      // The marker on the emptyDir survives the container restart, so only the first run fails.
      const script = `if [ -e /data/ran ]; then echo ${secondLine}; exec sleep 3600; fi; touch /data/ran; echo ${firstLine}; exit 1`;
      await apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'restarter' },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: 'restarter' } },
            template: {
              metadata: { labels: { app: 'restarter' } },
              spec: {
                terminationGracePeriodSeconds: 0,
                automountServiceAccountToken: false,
                containers: [busyboxContainer('app', script, { volumeMounts: [{ name: 'data', mountPath: '/data' }] })],
                volumes: [{ name: 'data', emptyDir: {} }],
              },
            },
          },
        },
      });
      // The kubelet's first crash back-off is 10 s.
      let pod: V1Pod | undefined;
      await waitFor(
        `the restarter pod in ${ns} to have restarted once and be Ready`,
        async () => {
          const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=restarter' })).items.filter((p) => !p.metadata?.deletionTimestamp);
          pod = pods[0];
          return pods.map((p) => ({ name: p.metadata?.name, restarts: p.status?.containerStatuses?.[0]?.restartCount, ready: p.status?.conditions?.find((c) => c.type === 'Ready')?.status }));
        },
        {
          timeoutMs: 120_000,
          intervalMs: 1000,
          until: () =>
            pod?.status?.containerStatuses?.[0]?.restartCount === 1 &&
            pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
        },
      );
      const podName = pod!.metadata!.name!;

      const created = await createInvestigation(ns, 'full-case', {
        target: { pod: podName },
        alert: { source: 'manual', rule: `e2e full case ${run}` },
      });
      const inv = await waitForCondition(ns, 'full-case', 'Ready', 'True');
      // The pod as it is now (the container has not restarted again: it sleeps).
      const livePod = await core.readNamespacedPod({ name: podName, namespace: ns });
      const liveStatus = livePod.status!.containerStatuses!.find((s) => s.name === 'app')!;
      expect(liveStatus.restartCount).toBe(1);

      // Conditions, phase, identity, evidence summary.
      expectAllPhasesTrue(inv);
      expect(conditionOf(inv, 'Ready')).toMatchObject({ status: 'True', observedGeneration: inv.metadata.generation });
      expect(inv.status?.phase).toBe('Completed');
      expect(inv.status?.target).toMatchObject({
        podUID: livePod.metadata!.uid,
        node: livePod.spec!.nodeName,
        container: 'app',
        containerID: liveStatus.containerID,
        imageID: liveStatus.imageID,
      });
      expect(liveStatus.containerID).toBeTruthy();
      expect(liveStatus.imageID).toBeTruthy();
      expect(inv.status?.evidence?.artifacts).toBeGreaterThan(0);
      expect(inv.status?.evidence?.manifestSHA256).toMatch(HEX64);

      // The operator did not change the spec, and holds its finalizer.
      expect(inv.spec).toEqual(created.spec);
      expect(inv.metadata.generation).toBe(created.metadata.generation);
      expect(inv.metadata.finalizers ?? []).toContain(FINALIZER);

      // The case directory.
      const caseDir = caseDirOf(inv);
      expect(inv.status?.evidence?.path).toBe(caseDir.replace(/^\/evidence\//, ''));
      const files = await listCaseFiles(caseDir);
      const rs = livePod.metadata!.ownerReferences!.find((o) => o.kind === 'ReplicaSet')!;
      expect(files).toEqual(
        expect.arrayContaining([
          'k8s/pod.yaml',
          `k8s/owners/ReplicaSet-${rs.name}.yaml`,
          'k8s/owners/Deployment-restarter.yaml',
          'k8s/events.json',
          'logs/app.log',
          'logs/app.previous.log',
          'custody.jsonl',
          'MANIFEST.sha256',
          'report.md',
          'report.html',
        ]),
      );
      expect(await readEvidence(`${caseDir}/k8s/pod.yaml`)).toContain(livePod.metadata!.uid!);
      expect(await readEvidence(`${caseDir}/k8s/owners/Deployment-restarter.yaml`)).toContain('kind: Deployment');
      const events = JSON.parse(await readEvidence(`${caseDir}/k8s/events.json`)) as { events: unknown[] };
      expect(Array.isArray(events.events)).toBe(true);
      const current = await readEvidence(`${caseDir}/logs/app.log`);
      const previous = await readEvidence(`${caseDir}/logs/app.previous.log`);
      expect(current).toContain(secondLine);
      expect(current).not.toContain(firstLine);
      expect(previous).toContain(firstLine);
      expect(previous).not.toContain(secondLine);

      // Integrity: the manifest checks with coreutils-style sha256sum and with casefile verify,
      // and status.evidence describes exactly that manifest.
      await expectManifestVerifies(caseDir);
      await expectCasefileVerifies(caseDir, inv.status!.evidence!.artifacts);
      const manifestHash = await readerExec(`sha256sum ${shq(`${caseDir}/MANIFEST.sha256`)}`);
      expect(manifestHash.stdout.split(/\s+/)[0]).toBe(inv.status!.evidence!.manifestSHA256);

      // The report names the identity chain.
      const report = await readEvidence(`${caseDir}/report.md`);
      expect(report).toContain(livePod.metadata!.uid!);
      expect(report).toContain(livePod.spec!.nodeName!);
      expect(report).toContain(liveStatus.containerID!);
      expect(report).toContain(liveStatus.imageID!);

      // A Kubernetes Event on the Investigation for a phase outcome (emitted fire-and-forget: poll).
      const phaseEvent = await waitFor(
        `an Event on Investigation ${ns}/full-case for a phase outcome`,
        async () => {
          const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.kind=Investigation,involvedObject.name=full-case` });
          return list.items.find(
            (e) => e.involvedObject.uid === inv.metadata.uid && CAPTURE_PHASES.some((p) => e.message?.startsWith(`${p}: `)),
          );
        },
        { timeoutMs: 30_000 },
      );
      expect(phaseEvent?.involvedObject.kind).toBe('Investigation');
      expect(phaseEvent?.type).toBe('Normal');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'the operator killed in the middle resumes and seals one consistent case',
    async () => {
      const ns = await createTestNamespace('op-restart');
      const run = token();
      await startSleeper(ns, 'victim', `restart-${run}`);

      faultInjectionActive = true;
      try {
        await deployOperatorWithEnv(['CASEFILE_EXIT_AFTER_PHASE=EventsCaptured']);
        expect(await operatorEnvNames()).toContain('CASEFILE_EXIT_AFTER_PHASE');
        const before = await operatorPod();
        const podName = before.metadata!.name!;
        const restartsBefore = before.status?.containerStatuses?.find((s) => s.name === 'operator')?.restartCount ?? 0;

        await createInvestigation(ns, 'killed', { target: { pod: 'victim' }, alert: { source: 'manual' } });

        // The operator SIGKILLs itself right after EventsCaptured is written: exit code 137. If the
        // case completes and the container still has not restarted 15 s later (well past the
        // kubelet's status lag), the kill did not happen: stop at once and say so.
        let completedWithoutRestartAt: number | undefined;
        const restarted = await waitFor(
          `operator pod ${podName} to restart after EventsCaptured`,
          async () => {
            const p = await core.readNamespacedPod({ name: podName, namespace: OPERATOR_NAMESPACE });
            const status = p.status?.containerStatuses?.find((s) => s.name === 'operator');
            if ((status?.restartCount ?? 0) > restartsBefore) return status;
            const inv = await getInvestigation(ns, 'killed').catch(() => undefined);
            if (inv && conditionOf(inv, 'Ready')?.status === 'True') {
              completedWithoutRestartAt ??= Date.now();
              if (Date.now() - completedWithoutRestartAt > 15_000) {
                const log = await core.readNamespacedPodLog({ name: podName, namespace: OPERATOR_NAMESPACE, container: 'operator' }).catch(() => '');
                const line = log.split('\n').find((l) => l.includes('fault injection')) ?? '(no fault-injection line in the operator log)';
                throw new GiveUp(
                  `the operator never restarted (restartCount still ${status?.restartCount}): with CASEFILE_EXIT_AFTER_PHASE=EventsCaptured the same ` +
                    `process went on to ${CAPTURE_PHASES.filter((t) => conditionOf(inv, t)?.status === 'True').join(', ')} and Ready=True; operator log: ${line}`,
                );
              }
            }
            return undefined;
          },
          { timeoutMs: 120_000, intervalMs: 1000 },
        );
        expect(restarted?.lastState?.terminated?.exitCode).toBe(137);

        const inv = await waitForCondition(ns, 'killed', 'Ready', 'True');
        expectAllPhasesTrue(inv);
        expect(inv.status?.phase).toBe('Completed');

        const caseDir = caseDirOf(inv);
        const files = await listCaseFiles(caseDir);
        expect(files.filter((f) => f.startsWith('interrupted/'))).toEqual([]);
        const noInterrupted = await readerExec(`test ! -e ${shq(`${caseDir}/interrupted`)}`);
        expect(noInterrupted.exitCode).toBe(0);

        const custody = custodyRecords(await readEvidence(`${caseDir}/custody.jsonl`));
        const manifest = manifestPaths(await readEvidence(`${caseDir}/MANIFEST.sha256`));
        const artifactCounts = new Map<string, number>();
        for (const r of custody.filter((r) => r.action === 'artifact')) artifactCounts.set(r.artifact!, (artifactCounts.get(r.artifact!) ?? 0) + 1);
        // No artifact recorded twice, and every sealed artifact has exactly one 'artifact' record.
        expect([...artifactCounts].filter(([, n]) => n !== 1)).toEqual([]);
        expect(manifest.filter((p) => artifactCounts.get(p) !== 1)).toEqual([]);
        expect([...artifactCounts.keys()].sort()).toEqual([...manifest].sort());
        // The case was opened and sealed once, and no phase ran twice across the restart.
        expect(custody.filter((r) => r.action === 'case-opened')).toHaveLength(1);
        expect(custody.filter((r) => r.action === 'sealed')).toHaveLength(1);
        for (const phase of CAPTURE_PHASES) {
          expect({ phase, finished: custody.filter((r) => r.action === 'phase-finished' && r.detail?.condition === phase).length }).toEqual({ phase, finished: 1 });
        }

        await expectCasefileVerifies(caseDir, manifest.length);
        await expectManifestVerifies(caseDir);
      } finally {
        await deployOperatorWithout(['CASEFILE_EXIT_AFTER_PHASE']);
        faultInjectionActive = false;
      }
      expect(await operatorEnvNames()).not.toContain('CASEFILE_EXIT_AFTER_PHASE');
    },
    RESTART_TEST_TIMEOUT_MS,
  );

  test(
    'the API server refuses invalid specs with a message naming the field',
    async () => {
      const ns = await createTestNamespace('op-schema');
      const manifest = (name: string, spec: string) =>
        `apiVersion: casefile.dev/v1alpha1\nkind: Investigation\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec}`;

      const badOrder = await kubectlRun(['apply', '-f', '-'], manifest('bad-order', '  target:\n    pod: web\n  containment:\n    order: Sometimes\n'));
      expect(badOrder.exitCode).not.toBe(0);
      expect(badOrder.stderr).toContain('spec.containment.order');
      expect(badOrder.stderr).toContain('EvidenceFirst');
      expect(badOrder.stderr).toContain('ContainFirst');

      const noPod = await kubectlRun(['apply', '-f', '-'], manifest('no-pod', '  target:\n    container: app\n'));
      expect(noPod.exitCode).not.toBe(0);
      expect(noPod.stderr).toContain('spec.target.pod');

      const badCIDR = await kubectlRun(
        ['apply', '-f', '-'],
        manifest('bad-cidr', '  target:\n    pod: web\n  containment:\n    network:\n      allowCIDRs: ["not-a-cidr"]\n'),
      );
      expect(badCIDR.exitCode).not.toBe(0);
      expect(badCIDR.stderr).toContain('CIDR');
      expect(badCIDR.stderr).toContain('spec.containment.network.allowCIDRs');

      for (const name of ['bad-order', 'no-pod', 'bad-cidr']) {
        expect({ name, code: await investigationStatusCode(ns, name) }).toEqual({ name, code: 404 });
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a target that does not exist: surviving evidence captured, the rest refused, the case sealed',
    async () => {
      const ns = await createTestNamespace('op-notfound');
      await createInvestigation(ns, 'ghost', { target: { pod: 'no-such-pod' }, alert: { source: 'manual' } });
      const inv = await waitForCondition(ns, 'ghost', 'Ready', 'False');

      expect(conditionOf(inv, 'TargetResolved')).toMatchObject({ status: 'False', reason: 'TargetNotFound' });
      expect(conditionOf(inv, 'EventsCaptured')).toMatchObject({ status: 'True' });
      expect(conditionOf(inv, 'ManifestCaptured')).toMatchObject({ status: 'False', reason: 'TargetUnavailable' });
      expect(conditionOf(inv, 'LogsCaptured')).toMatchObject({ status: 'False', reason: 'TargetUnavailable' });
      expect(conditionOf(inv, 'EvidenceSealed')).toMatchObject({ status: 'True' });
      expect(conditionOf(inv, 'Ready')).toMatchObject({ status: 'False' });
      expect(inv.status?.phase).toBe('Failed');

      const caseDir = caseDirOf(inv);
      const files = await listCaseFiles(caseDir);
      expect(files).toContain('k8s/events.json');
      expect(files).not.toContain('k8s/pod.yaml');
      expect(files.filter((f) => f.startsWith('logs/'))).toEqual([]);
      const events = JSON.parse(await readEvidence(`${caseDir}/k8s/events.json`)) as { selectors: string[]; events: unknown[] };
      expect(events.selectors.join(' ')).toContain('no-such-pod');

      const report = await readEvidence(`${caseDir}/report.md`);
      const section = report.split('## What could not be captured, and why')[1]?.split('\n## ')[0] ?? '';
      expect(section).toMatch(/TargetResolved failed \(TargetNotFound\)/);
      expect(section).toMatch(/ManifestCaptured failed \(TargetUnavailable\)/);
      expect(section).toMatch(/LogsCaptured failed \(TargetUnavailable\)/);
      expect(section).toContain('no-such-pod');
      await expectManifestVerifies(caseDir);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a replaced target (wrong UID) is refused and left untouched',
    async () => {
      const ns = await createTestNamespace('op-replaced');
      const run = token();
      const pod = await startSleeper(ns, 'victim', `replaced-${run}`, {
        labels: { tier: 'web', run },
        annotations: { 'example.com/owner': 'team-a', 'example.com/run': run },
      });
      const wrongUID = '00000000-0000-4000-8000-000000000000';
      expect(pod.metadata!.uid).not.toBe(wrongUID);

      await createInvestigation(ns, 'wrong-uid', { target: { pod: 'victim', uid: wrongUID }, alert: { source: 'manual' } });
      const inv = await waitForCondition(ns, 'wrong-uid', 'Ready', 'False');

      const resolved = conditionOf(inv, 'TargetResolved');
      expect(resolved).toMatchObject({ status: 'False', reason: 'TargetReplaced' });
      expect(resolved?.message).toContain(pod.metadata!.uid!);
      for (const type of ['ManifestCaptured', 'LogsCaptured', 'ScopeMapped'] as const) {
        expect({ type, ...conditionOf(inv, type) }).toMatchObject({ type, status: 'False', reason: 'TargetUnavailable' });
      }
      expect(inv.status?.target?.podUID).toBeUndefined();

      const after = await core.readNamespacedPod({ name: 'victim', namespace: ns });
      expect(after.metadata?.uid).toBe(pod.metadata!.uid);
      expect(after.metadata?.labels).toEqual(pod.metadata!.labels);
      expect(after.metadata?.annotations).toEqual(pod.metadata!.annotations);
      expect(after.spec?.ephemeralContainers ?? []).toEqual([]);
      expect(after.status?.ephemeralContainerStatuses ?? []).toEqual([]);
      expect(after.status?.containerStatuses?.[0]?.restartCount).toBe(0);

      const files = await listCaseFiles(caseDirOf(inv));
      expect(files).not.toContain('k8s/pod.yaml');
      expect(files.filter((f) => f.startsWith('logs/'))).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'logs are truncated at limitBytes and the truncation is recorded',
    async () => {
      const ns = await createTestNamespace('op-limit');
      const run = token();
      const pad = 'x'.repeat(80);
      // ~2000 lines of ~100 bytes: about 200 KB on stdout, then an end marker and sleep.
      const script = `i=0; while [ $i -lt 2000 ]; do echo "line $i ${pad}"; i=$((i+1)); done; echo end-${run}; exec sleep 3600`;
      await core.createNamespacedPod({ namespace: ns, body: busyboxPod('chatty', script) });
      await waitForPodReady(kc, ns, 'chatty', 90_000);
      await waitFor(
        `chatty to have written its whole output`,
        async () => core.readNamespacedPodLog({ name: 'chatty', namespace: ns, container: 'app', tailLines: 1 }),
        { timeoutMs: 60_000, until: (log) => log.includes(`end-${run}`) },
      );

      await createInvestigation(ns, 'limited', { target: { pod: 'chatty' }, alert: { source: 'manual' }, evidence: { logs: { limitBytes: 4096 } } });
      const inv = await waitForCondition(ns, 'limited', 'Ready', 'True');
      expectAllPhasesTrue(inv);

      const caseDir = caseDirOf(inv);
      expect(await evidenceSize(`${caseDir}/logs/app.log`)).toBe(4096);
      const index = JSON.parse(await readEvidence(`${caseDir}/logs/index.json`)) as {
        limitBytes: number;
        entries: { container: string; stream: string; artifact?: string; bytes?: number; truncated?: boolean }[];
      };
      expect(index.limitBytes).toBe(4096);
      expect(index.entries.find((e) => e.container === 'app' && e.stream === 'current')).toMatchObject({
        artifact: 'logs/app.log',
        bytes: 4096,
        truncated: true,
      });
      expect(conditionOf(inv, 'LogsCaptured')?.message).toMatch(/truncat/i);
      expect(conditionOf(inv, 'LogsCaptured')?.message).toContain('logs/app.log');

      const report = await readEvidence(`${caseDir}/report.md`);
      expect(report).toMatch(/logs\/app\.log \(truncated at limitBytes\)/);
      await expectManifestVerifies(caseDir);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'deleting a sealed Investigation removes it and keeps its evidence',
    async () => {
      const ns = await createTestNamespace('op-delete');
      const run = token();
      await startSleeper(ns, 'victim', `delete-${run}`);
      await createInvestigation(ns, 'to-delete', { target: { pod: 'victim' }, alert: { source: 'manual' } });
      const inv = await waitForCondition(ns, 'to-delete', 'Ready', 'True');
      expect(conditionOf(inv, 'EvidenceSealed')?.status).toBe('True');
      expect(inv.metadata.finalizers ?? []).toContain(FINALIZER);
      const caseDir = caseDirOf(inv);
      const filesBefore = await listCaseFiles(caseDir);
      const manifestBefore = await readEvidence(`${caseDir}/MANIFEST.sha256`);

      await deleteInvestigation(ns, 'to-delete');
      await waitFor(`Investigation ${ns}/to-delete to be gone (finalizer removed)`, () => investigationStatusCode(ns, 'to-delete'), {
        timeoutMs: 60_000,
        intervalMs: 1000,
        until: (code) => code === 404,
      });

      const filesAfter = await listCaseFiles(caseDir);
      expect(filesAfter).toEqual(expect.arrayContaining(filesBefore));
      expect(await readEvidence(`${caseDir}/MANIFEST.sha256`)).toBe(manifestBefore);
      expect(await readEvidence(`${caseDir}/logs/app.log`)).toContain(`delete-${run}`);
      await expectManifestVerifies(caseDir);
      await expectCasefileVerifies(caseDir, manifestPaths(manifestBefore).length);
    },
    TEST_TIMEOUT_MS,
  );
});
