// End-to-end tests of live-state capture: an ephemeral debug container beside a compromised
// workload, a target with no shell, a namespace whose PodSecurity refuses the debug container (the
// node collector takes over), all read back from the case file on the evidence volume.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { createTestNamespace, expectApiError, podExec, useCleanup, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxPod,
  caseDirOf,
  conditionOf,
  core,
  createInvestigation,
  deployOperator,
  ensureEvidenceReader,
  readEvidence,
  readerExec,
  shq,
  waitForCondition,
} from '../operator/support.js';
import { expectCaseVerifies, kc, startClient, token } from '../containment/helpers.js';
import {
  APP_IDLE,
  BACKDOOR_USER,
  C2_PORT,
  DECLARED_PORT,
  distrolessPod,
  DROPPED_SCRIPT,
  DROPPED_SCRIPT_SHA256,
  startC2,
  startCompromised,
  UNDECLARED_PORT,
} from './compromised.js';

useCleanup();

const TEST_TIMEOUT_MS = 300_000;

interface Process {
  pid: number;
  ppid: number;
  role: 'target' | 'observer' | 'other';
  inEntrypointTree: boolean;
  cmdline: string[];
  exe: string;
  exeDeleted: boolean;
  environment: string[] | { redacted: true; sha256: string[] };
}
interface Socket {
  proto: string;
  state: string;
  local: { address: string; port: number };
  remote: { address: string; port: number };
  owners: { pid: number; role: string }[];
}
interface FileEntry {
  path: string;
  sha256?: string;
  executable: boolean;
  copied: string | null;
}
interface Finding {
  severity: string;
  kind: string;
  summary: string;
  artifact: string;
}

async function readJSON<T>(path: string): Promise<T> {
  return JSON.parse(await readEvidence(path)) as T;
}

const liveSpec = { enabled: true, timeoutSeconds: 90, redactEnvironment: true };

beforeAll(async () => {
  await deployOperator();
  await ensureEvidenceReader();
}, 300_000);

describe('live capture from an ephemeral debug container', () => {
  test(
    'a compromised workload: deleted executable recovered, C2 socket tied to its process, dropped script, undeclared listener',
    async () => {
      const ns = await createTestNamespace('live');
      const c2IP = await startC2(ns);
      await startClient(ns);
      const name = `web-${token()}`;
      await startCompromised(ns, name, c2IP);
      // A process started through exec has no parent inside the container: outside the entrypoint's tree.
      const intruder = podExec(kc, ns, name, 'app', ['sleep', '60'], 90_000).catch(() => undefined);

      const inv = `live-${token()}`;
      await createInvestigation(ns, inv, { target: { pod: name, container: 'app' }, evidence: { live: liveSpec } });
      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 180_000);
      expect(conditionOf(done, 'DebugContainerLaunched')).toMatchObject({ status: 'True', reason: 'Running' });
      expect(conditionOf(done, 'LiveStateCaptured')).toMatchObject({ status: 'True', reason: 'Captured' });
      const caseDir = caseDirOf(done);
      const live = `${caseDir}/live`;

      // The deleted binary, recovered from /proc/<pid>/exe, is byte for byte the busybox it was copied from.
      const original = (await podExec(kc, ns, 'client', 'app', ['sha256sum', '/bin/busybox'])).stdout.split(' ')[0];
      const recovered = await readJSON<{ pid: number; exe: string; sha256: string; copied: string | null }[]>(`${live}/recovered.json`);
      // Two processes run it: both listed, one copy (same device and inode).
      expect(recovered).toHaveLength(2);
      for (const r of recovered) expect(r).toMatchObject({ exe: '/tmp/kworkerd (deleted)', sha256: original });
      expect(new Set(recovered.map((r) => r.copied)).size).toBe(1);
      const copy = await readerExec(`sha256sum ${shq(`${caseDir}/${recovered[0]!.copied}`)}`);
      expect(copy.stdout.split(' ')[0]).toBe(original);

      // The connection to the C2 pod, tied to the process running the deleted binary.
      const processes = (await readJSON<{ processes: Process[]; entrypointPid: number }>(`${live}/processes.json`)).processes;
      const byPid = new Map(processes.map((p) => [p.pid, p]));
      const { sockets } = await readJSON<{ sockets: Socket[] }>(`${live}/sockets.json`);
      const c2 = sockets.find((s) => s.remote.address === c2IP && s.remote.port === C2_PORT);
      expect(c2).toMatchObject({ proto: 'tcp', state: 'ESTABLISHED' });
      const owner = byPid.get(c2!.owners[0]!.pid);
      expect(owner).toMatchObject({ role: 'target', exe: '/tmp/kworkerd (deleted)', exeDeleted: true });
      expect(owner!.cmdline).toContain(c2IP);

      // Listeners: the declared one is not a finding, the undeclared one is.
      const listeners = sockets.filter((s) => s.state === 'LISTEN').map((s) => s.local.port);
      expect(listeners).toEqual(expect.arrayContaining([DECLARED_PORT, UNDECLARED_PORT]));
      const findings = (await readJSON<{ findings: Finding[] } | Finding[]>(`${live}/findings.json`)) as { findings?: Finding[] };
      const all: Finding[] = Array.isArray(findings) ? (findings as Finding[]) : findings.findings!;
      const kinds = (kind: string) => all.filter((f) => f.kind === kind);
      expect(kinds('undeclared-listener').map((f) => f.summary).join('\n')).toContain(String(UNDECLARED_PORT));
      expect(kinds('undeclared-listener').map((f) => f.summary).join('\n')).not.toContain(String(DECLARED_PORT));
      expect(kinds('deleted-executable-running').length).toBeGreaterThanOrEqual(1);
      expect(kinds('executable-in-writable-path').length).toBeGreaterThanOrEqual(1);
      expect(kinds('process-outside-entrypoint-tree').map((f) => f.summary).join('\n')).toContain('sleep 60');

      // The dropped script: listed with its hash, and copied (it is executable).
      const files = await readJSON<FileEntry[]>(`${live}/files.json`);
      const script = files.find((f) => f.path === DROPPED_SCRIPT);
      expect(script).toMatchObject({ sha256: DROPPED_SCRIPT_SHA256, executable: true });
      expect(script!.copied).toBeTruthy();
      const scriptCopy = await readerExec(`sha256sum ${shq(`${caseDir}/${script!.copied}`)}`);
      expect(scriptCopy.stdout.split(' ')[0]).toBe(DROPPED_SCRIPT_SHA256);

      // The suspect's own process list holds only what the workload (and the test's exec) started:
      // casefile's processes (idle sleep, collector) are in the debug container, marked observer.
      const target = processes.filter((p) => p.role === 'target');
      expect(target.some((p) => p.cmdline.join(' ') === APP_IDLE)).toBe(true);
      expect(target.filter((p) => p.cmdline.some((a) => a.includes('/app/dist') || a === '/usr/bin/node'))).toEqual([]);
      const observers = processes.filter((p) => p.role === 'observer');
      expect(observers.some((p) => p.cmdline.some((a) => a.includes('collector-cli')))).toBe(true);
      expect(target.every((p) => !p.cmdline.join(' ').includes(String(liveSpec.timeoutSeconds + 600)))).toBe(true);
      // Environment values were hashed (redactEnvironment), never written in clear.
      expect(await readEvidence(`${live}/processes.json`)).not.toContain('not-a-real-secret');

      // Status and report carry the findings; the report states the observer effect.
      expect((done.status?.findings ?? []).map((f) => f.kind)).toEqual(expect.arrayContaining(['deleted-executable-running', 'undeclared-listener']));
      const report = await readEvidence(`${caseDir}/report.md`);
      expect(report).toContain('## Observer effect');
      expect(report).toContain(done.status!.live!.debugContainer!);
      await expectCaseVerifies(caseDir);
      await intruder;
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a target whose image has no shell is captured with the debug image\'s tools',
    async () => {
      const ns = await createTestNamespace('live-distroless');
      const name = `distroless-${token()}`;
      await core.createNamespacedPod({ namespace: ns, body: distrolessPod(name) });
      const inv = `nosh-${token()}`;
      await waitForPodReady(kc, ns, name, 90_000);
      await createInvestigation(ns, inv, { target: { pod: name }, evidence: { live: liveSpec } });
      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 180_000);
      expect(conditionOf(done, 'LiveStateCaptured')).toMatchObject({ status: 'True' });
      const { processes } = await readJSON<{ processes: Process[] }>(`${caseDirOf(done)}/live/processes.json`);
      expect(processes.filter((p) => p.role === 'target').map((p) => p.exe)).toEqual(['/pause']);
      await expectCaseVerifies(caseDirOf(done));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'PodSecurity baseline refuses the debug container: the condition says so and the node collector captures instead',
    async () => {
      const ns = await createTestNamespace('live-baseline', { 'pod-security.kubernetes.io/enforce': 'baseline' });
      const c2IP = await startC2(ns);
      const name = `web-${token()}`;
      await startCompromised(ns, name, c2IP);
      const inv = `base-${token()}`;
      await createInvestigation(ns, inv, { target: { pod: name, container: 'app' }, evidence: { live: liveSpec, node: { enabled: true } } });
      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 180_000);
      expect(conditionOf(done, 'DebugContainerLaunched')).toMatchObject({ status: 'False', reason: 'PodSecurityRejected' });
      expect(conditionOf(done, 'DebugContainerLaunched')!.message).toMatch(/node collector/);
      expect(conditionOf(done, 'LiveStateCaptured')).toMatchObject({ status: 'False', reason: 'DebugContainerUnavailable' });
      expect(conditionOf(done, 'NodeStateCaptured')).toMatchObject({ status: 'True', reason: 'Captured' });
      // Nothing was added to the suspect pod.
      const pod = await core.readNamespacedPod({ namespace: ns, name });
      expect(pod.spec?.ephemeralContainers ?? []).toEqual([]);

      const caseDir = caseDirOf(done);
      const host = await readJSON<{ hostPid: number; containerId: string }>(`${caseDir}/node/host-process.json`);
      expect(host.hostPid).toBeGreaterThan(1);
      expect(done.status?.target?.hostPID).toBe(host.hostPid);
      // The upper layer holds what the container changed in its image's files: /etc/passwd gained a
      // user. (/dev/shm is a tmpfs, not part of the layer; /tmp/kworkerd was deleted before capture.)
      // A text file is hashed, not copied, so the hash is checked against the image's own passwd (read
      // from the C2 pod, same image, never touched) plus the backdoor line.
      const upper = await readJSON<{ path: string; sha256?: string; copied?: string | null }[]>(`${caseDir}/node/upper-layer.json`);
      const passwd = upper.find((e) => e.path === '/etc/passwd');
      const pristine = await podExec(kc, ns, 'c2', 'app', ['cat', '/etc/passwd']);
      expect(pristine.exitCode).toBe(0);
      expect(passwd).toMatchObject({ copied: null, sha256: createHash('sha256').update(`${pristine.stdout}${BACKDOOR_USER}\n`).digest('hex') });
      // The collector pod ran and was removed, both in custody.
      const custody = (await readEvidence(`${caseDir}/custody.jsonl`)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; detail?: { pod?: string } });
      const created = custody.find((r) => r.action === 'node-collector-created');
      expect(created).toBeDefined();
      expect(custody.some((r) => r.action === 'node-collector-removed' && r.detail?.pod === created!.detail!.pod)).toBe(true);
      const left = await core.listNamespacedPod({ namespace: 'casefile-collectors' });
      expect(left.items.map((p) => p.metadata?.name)).not.toContain(created!.detail!.pod);
      await expectCaseVerifies(caseDir);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'refusals are explicit: a spec that names its own debug image, a target container that is not running',
    async () => {
      const ns = await createTestNamespace('live-refused');
      const running = `web-${token()}`;
      await core.createNamespacedPod({ namespace: ns, body: busyboxPod(running, 'exec sleep 3600') });
      await waitForPodReady(kc, ns, running, 90_000);
      // The image of casefile's containers comes only from its configuration: the API server refuses the spec.
      const refused = await expectApiError(422, () =>
        createInvestigation(ns, `img-${token()}`, { target: { pod: running }, evidence: { live: { ...liveSpec, image: 'localhost/casefile/no-such-image:0' } } }),
      );
      expect(refused).toContain('ConfigMap casefile-system/casefile-containers');

      const exited = `done-${token()}`;
      const body = busyboxPod(exited, 'exit 0');
      body.spec!.restartPolicy = 'Never';
      await core.createNamespacedPod({ namespace: ns, body });
      await waitFor(`${exited} finished`, () => core.readNamespacedPod({ namespace: ns, name: exited }), { timeoutMs: 60_000, until: (p) => p.status?.phase === 'Succeeded' });
      const notRunning = `nrun-${token()}`;
      await createInvestigation(ns, notRunning, { target: { pod: exited }, evidence: { live: liveSpec } });
      const done = await waitForCondition(ns, notRunning, 'EvidenceSealed', 'True', 180_000);
      expect(conditionOf(done, 'DebugContainerLaunched')).toMatchObject({ status: 'False', reason: 'TargetNotRunning' });
      // The negative finding is in the report, not left out.
      expect(await readEvidence(`${caseDirOf(done)}/report.md`)).toMatch(/no live state: container app is not running/);
    },
    TEST_TIMEOUT_MS,
  );
});

