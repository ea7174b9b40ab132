// Benchmark of live-state capture on the local cluster (never a timed test): a target with 200
// processes and 2,000 files under /tmp; time from DebugContainerLaunched to LiveStateCaptured (from
// the custody log's millisecond timestamps), bytes moved, and the operator's memory before/after.
// Appends to bench/results.md.
import { appendFileSync } from 'node:fs';
import { core, custom, kubectl, operatorMemory, pct, required, seconds as fmt, sleep } from './support.js';

const busybox = required('CASEFILE_BUSYBOX_IMAGE');
const ns = `bench-live-${Date.now().toString(36)}`;
const runs = Number(process.env.BENCH_LIVE_RUNS ?? 5);
const PROCESSES = 200;
const FILES = 2000;


// sh (PID 1) + 199 sleeps = 200 processes; 2,000 small files under /tmp, two of them executable.
const SCRIPT = [
  `i=0; while [ $i -lt ${FILES} ]; do echo "file $i" > /tmp/f$i; i=$((i+1)); done`,
  'chmod 755 /tmp/f0 /tmp/f1',
  `i=1; while [ $i -lt ${PROCESSES} ]; do sleep 100000 & i=$((i+1)); done`,
  'echo ready',
  'wait',
].join('\n');

async function targetPod(name: string): Promise<void> {
  await core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name }, spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: busybox, imagePullPolicy: 'Never', command: ['sh', '-c', SCRIPT] }] } },
  });
  for (;;) {
    const log = await core.readNamespacedPodLog({ name, namespace: ns, container: 'app' }).catch(() => '');
    if (String(log).includes('ready')) return;
    await sleep(500);
  }
}

interface Status {
  uid?: string;
  status?: { conditions?: { type: string; status: string; message: string }[]; evidence?: { path?: string } };
}

async function investigate(name: string, pod: string): Promise<Status> {
  await custom.createNamespacedCustomObject({
    group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations',
    body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name }, spec: { target: { pod }, evidence: { live: { enabled: true } } } },
  });
  for (;;) {
    const inv = (await custom.getNamespacedCustomObject({ group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations', name })) as Status;
    const sealed = inv.status?.conditions?.find((c) => c.type === 'EvidenceSealed');
    if (sealed?.status === 'True') return inv;
    if (sealed?.status === 'False') throw new Error(`${name}: EvidenceSealed False: ${sealed.message}`);
    await sleep(250);
  }
}

/** Reads the case's custody log through the operator (it mounts the evidence volume). */
function custody(path: string): { time: string; action: string; phase?: string; bytes?: number; detail?: Record<string, unknown> }[] {
  const text = kubectl('-n', 'casefile-system', 'exec', 'deploy/casefile-operator', '--', '/usr/bin/node', '-e',
    `process.stdout.write(require('fs').readFileSync(${JSON.stringify(`/evidence/${path}/custody.jsonl`)},'utf8'))`);
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}


async function main(): Promise<void> {
  kubectl('create', 'namespace', ns);
  try {
    for (let i = 0; i < runs; i++) await targetPod(`target-${i}`);
    const before = operatorMemory();
    const results: { ms: number; bytes: number; artifacts: number; processes: number; files: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const inv = await investigate(`live-${i}`, `target-${i}`);
      const records = custody(inv.status!.evidence!.path!);
      const at = (phase: string) => Date.parse(records.find((r) => r.action === 'phase-finished' && r.detail?.condition === phase)!.time);
      const written = records.filter((r) => r.phase === 'LiveStateCaptured' && r.action === 'artifact');
      const summary = records.find((r) => r.action === 'phase-finished' && r.detail?.condition === 'LiveStateCaptured')?.detail?.message as string;
      results.push({
        ms: at('LiveStateCaptured') - at('DebugContainerLaunched'),
        bytes: written.reduce((n, r) => n + (r.bytes ?? 0), 0),
        artifacts: written.length,
        processes: Number(/(\d+) processes/.exec(summary)?.[1] ?? NaN),
        files: Number(/(\d+) files/.exec(summary)?.[1] ?? NaN),
      });
    }
    const after = operatorMemory();
    const times = results.map((r) => r.ms);
    const report = [
      '',
      '## Live capture: DebugContainerLaunched to LiveStateCaptured',
      '',
      `${runs} runs, one after another, each on its own target pod with ${PROCESSES} processes and ${FILES} files under /tmp`,
      '(measured between the two phases\' `phase-finished` custody records, millisecond timestamps).',
      '',
      '| measure | p50 | p95 | max | target |',
      '|---|---:|---:|---:|---|',
      `| capture time | ${fmt(pct(times, 50))} | ${fmt(pct(times, 95))} | ${fmt(Math.max(...times))} | < 10 s |`,
      '',
      '| run | time | processes seen | files listed | artifacts | bytes moved |',
      '|---:|---:|---:|---:|---:|---:|',
      ...results.map((r, i) => `| ${i} | ${fmt(r.ms)} | ${r.processes} | ${r.files} | ${r.artifacts} | ${r.bytes.toLocaleString('en-US')} |`),
      '',
      `Operator memory across the runs: RSS ${before.rssMiB.toFixed(0)} MiB before, ${after.rssMiB.toFixed(0)} MiB after; peak (VmHWM) ${before.peakRSSMiB.toFixed(0)} MiB before, ${after.peakRSSMiB.toFixed(0)} MiB after,`,
      `while ${(results.reduce((n, r) => n + r.bytes, 0) / 2 ** 20).toFixed(1)} MiB of collector output went through it (streamed frame by frame into the case file, never held whole).`,
      '',
    ].join('\n');
    appendFileSync('bench/results.md', report);
    process.stdout.write(report);
  } finally {
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
