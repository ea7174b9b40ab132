// End-to-end test of memory capture: a busybox shell computes a marker and a URL at run time (in
// neither its argv nor its environment) and holds them in shell variables; the collector, in
// casefile's debug container, reads them from /proc/<pid>/mem. Read back from the case file.
import { beforeAll, describe, expect, test } from '@jest/globals';
import { createTestNamespace, useCleanup, waitFor, waitForPodReady } from '../support/cluster.js';
import { busyboxPod, caseDirOf, casefileCli, conditionOf, core, createInvestigation, deployOperator, ensureEvidenceReader, readEvidence, readerExec, shq, waitForCondition } from '../operator/support.js';
import { expectCaseVerifies, kc, token } from '../containment/helpers.js';

useCleanup();

const TEST_TIMEOUT_MS = 300_000;

// The script names only pieces; the shell's arithmetic and concatenation make the values.
const MARKER = 'casefile-memory-marker-4242';
const URL = 'http://c2-42.evil-example.com/beacon';
const SCRIPT = [
  'a=memory; n=$((6*7))',
  'M="casefile-${a}-marker-$n$n"',
  'U="http:/""/c2-$n.evil-example"".""com/beacon"',
  'echo ready',
  // Not exec: the shell stays alive, holding M and U in its heap, while sleep runs.
  'sleep 7777781',
  'echo "$M $U"',
].join('\n');

interface Region {
  index: number;
  start: string;
  end: string;
  perms: string;
  path: string;
  deleted: boolean;
  reason: string;
  bytes: number;
  sha256?: string;
  artifact?: string;
  skipped?: string;
}
interface Indicators {
  indicators: { kind: string; value: string; seen: { artifact: string; offset?: number }[] }[];
  truncated: boolean;
  limits: Record<string, number>;
}

beforeAll(async () => {
  await deployOperator();
  await ensureEvidenceReader();
}, 300_000);

async function startShell(ns: string, name: string): Promise<void> {
  await core.createNamespacedPod({ namespace: ns, body: busyboxPod(name, SCRIPT) });
  await waitForPodReady(kc, ns, name, 90_000);
  await waitFor(`${name} computed its marker`, async () => core.readNamespacedPodLog({ namespace: ns, name, container: 'app' }), {
    timeoutMs: 30_000,
    until: (log) => String(log).includes('ready'),
  });
}

async function caseFiles(caseDir: string): Promise<string[]> {
  const r = await readerExec(`cd ${shq(caseDir)} && find . -type f | sed 's|^\\./||' | sort`);
  expect(r.exitCode).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('memory capture from the debug container', () => {
  test(
    'scope Anonymous: a string the shell computed at run time is found in its memory, with the region index, the indicators and a verified manifest',
    async () => {
      const ns = await createTestNamespace('live-memory');
      const name = `shell-${token()}`;
      await startShell(ns, name);

      const inv = `mem-${token()}`;
      await createInvestigation(ns, inv, { target: { pod: name, container: 'app' }, evidence: { live: { enabled: true, timeoutSeconds: 90, memory: { scope: 'Anonymous' } } } });
      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 180_000);
      expect(conditionOf(done, 'LiveStateCaptured')).toMatchObject({ status: 'True', reason: 'Captured' });
      const caseDir = caseDirOf(done);
      const live = `${caseDir}/live`;

      // Neither the command line nor the environment holds the marker: only memory can.
      const processes = await readEvidence(`${live}/processes.json`);
      expect(processes).not.toContain(MARKER);
      expect(processes).not.toContain(URL);

      const { processes: list } = JSON.parse(processes) as { processes: { pid: number; role: string; cmdline: string[] }[] };
      const shell = list.find((p) => p.role === 'target' && p.cmdline[0] === 'sh');
      expect(shell).toBeDefined();
      const files = await caseFiles(caseDir);
      // Only the target's processes are read: never the debug container's own (observer).
      const memoryPids = new Set(files.filter((f) => f.startsWith('live/memory/')).map((f) => Number(f.split('/')[2])));
      const targetPids = new Set(list.filter((p) => p.role === 'target').map((p) => p.pid));
      expect([...memoryPids].every((pid) => targetPids.has(pid))).toBe(true);
      expect(memoryPids.has(shell!.pid)).toBe(true);

      const regions = JSON.parse(await readEvidence(`${live}/memory/${shell!.pid}/regions.json`)) as Region[];
      expect(regions.some((r) => r.reason === 'heap' || r.reason === 'anon-private')).toBe(true);
      const copied = regions.filter((r) => r.artifact !== undefined);
      expect(copied.length).toBeGreaterThan(0);
      for (const r of copied) {
        expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(r.artifact).toBe(`live/memory/${shell!.pid}/${r.start}-${r.end}.bin`);
        expect(files).toContain(r.artifact);
      }
      // The marker is in one of the copies, whose hash is the one the index gives (busybox grep stops a line at NUL: tr first).
      const grep = await readerExec(`cd ${shq(caseDir)} && for f in live/memory/${shell!.pid}/*.bin; do tr '\\000' '\\n' < "$f" | grep -qF ${shq(MARKER)} && echo "$f"; done`);
      const holder = grep.stdout.split('\n').filter(Boolean)[0]!;
      expect(holder).toBeDefined();
      const region = copied.find((r) => r.artifact === holder)!;
      expect(region).toBeDefined();
      const sum = await readerExec(`sha256sum ${shq(`${caseDir}/${holder}`)}`);
      expect(sum.stdout.split(' ')[0]).toBe(region.sha256);

      // The URL planted in memory is an indicator, seen in a memory copy; the list is sorted.
      const indicators = JSON.parse(await readEvidence(`${live}/indicators.json`)) as Indicators;
      const url = indicators.indicators.find((i) => i.kind === 'url' && i.value === URL);
      expect(url).toBeDefined();
      expect(url!.seen.some((s) => s.artifact.startsWith(`live/memory/${shell!.pid}/`))).toBe(true);
      expect(indicators.indicators.some((i) => i.kind === 'domain' && i.value === 'c2-42.evil-example.com')).toBe(true);
      const keys = indicators.indicators.map((i) => `${i.kind}\u0000${i.value}`);
      expect(keys).toEqual([...keys].sort());

      await expectCaseVerifies(caseDir);
      const verify = await casefileCli(['verify', caseDir]);
      expect({ exitCode: verify.exitCode, stderr: verify.stderr.trim() }).toEqual({ exitCode: 0, stderr: '' });
      expect(verify.stdout).toMatch(/^OK \d+ artifact\(s\) verified/m);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'scope None: no memory is read and the case file says so',
    async () => {
      const ns = await createTestNamespace('live-memory-none');
      const name = `shell-${token()}`;
      await startShell(ns, name);
      const inv = `nomem-${token()}`;
      await createInvestigation(ns, inv, { target: { pod: name, container: 'app' }, evidence: { live: { enabled: true, timeoutSeconds: 90, memory: { scope: 'None' } } } });
      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 180_000);
      expect(conditionOf(done, 'LiveStateCaptured')).toMatchObject({ status: 'True', reason: 'Captured' });
      const caseDir = caseDirOf(done);
      const files = await caseFiles(caseDir);
      expect(files.filter((f) => f.startsWith('live/memory/'))).toEqual([]);
      expect(files).toContain('live/indicators.json');
      expect(await readEvidence(`${caseDir}/live/collector-notes.json`)).toContain('memory not read: spec.evidence.live.memory.scope is None');
      await expectCaseVerifies(caseDir);
    },
    TEST_TIMEOUT_MS,
  );
});
