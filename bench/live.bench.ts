// Benchmark of live-state capture on the local cluster (never a timed test): a target with 200
// processes and 2,000 files under /tmp; time from DebugContainerLaunched to LiveStateCaptured (from
// the custody log's millisecond timestamps), bytes moved, and the operator's memory before/after.
// Each run's limit, right after it: one exec into the same pod, from a warm client on the node, moving
// the same number of bytes out (the smallest step of any capture that streams through the API server).
// Not in the default set: `npm run bench -- live`.
import { Writable } from 'node:stream';
import { Exec } from '@kubernetes/client-node';
import { core, custom, kc, kubectl, machine, operatorMemory, pct, publish, required, seconds as fmt, sleep } from './support.js';

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


/** One exec in the pod's app container that writes `bytes` bytes to stdout, timed until they all arrived. */
async function execBytes(pod: string, bytes: number): Promise<number> {
  let got = 0;
  const out = new Writable({ write: (chunk: Buffer, _e, done) => ((got += chunk.length), done()) });
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    void new Exec(kc).exec(ns, pod, 'app', ['head', '-c', String(bytes), '/dev/zero'], out, null, null, false, (status) => {
      if (status.status === 'Success') resolve();
      else reject(new Error(`exec: ${JSON.stringify(status)}`));
    }).catch(reject);
  });
  if (got !== bytes) throw new Error(`exec moved ${got} bytes, not ${bytes}`);
  return performance.now() - started;
}

async function main(): Promise<void> {
  kubectl('create', 'namespace', ns);
  try {
    for (let i = 0; i < runs; i++) await targetPod(`target-${i}`);
    const before = operatorMemory();
    const results: { ms: number; limit: number; bytes: number; artifacts: number; processes: number; files: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const inv = await investigate(`live-${i}`, `target-${i}`);
      const records = custody(inv.status!.evidence!.path!);
      const at = (phase: string) => Date.parse(records.find((r) => r.action === 'phase-finished' && r.detail?.condition === phase)!.time);
      const written = records.filter((r) => r.phase === 'LiveStateCaptured' && r.action === 'artifact');
      const summary = records.find((r) => r.action === 'phase-finished' && r.detail?.condition === 'LiveStateCaptured')?.detail?.message as string;
      const bytes = written.reduce((n, r) => n + (r.bytes ?? 0), 0);
      results.push({
        ms: at('LiveStateCaptured') - at('DebugContainerLaunched'),
        limit: await execBytes(`target-${i}`, bytes),
        bytes,
        artifacts: written.length,
        processes: Number(/(\d+) processes/.exec(summary)?.[1] ?? NaN),
        files: Number(/(\d+) files/.exec(summary)?.[1] ?? NaN),
      });
    }
    const after = operatorMemory();
    const times = results.map((r) => r.ms);
    const limits = results.map((r) => r.limit);
    const report = [
      `## Live capture: DebugContainerLaunched to LiveStateCaptured (measured ${new Date().toISOString()})`,
      '',
      `${machine()}; the local cluster. Reproduce: \`npm run bench -- live\`.`,
      `${runs} runs, one after another, each on its own target pod with ${PROCESSES} processes and ${FILES} files under /tmp`,
      '(measured between the two phases\' `phase-finished` custody records, millisecond timestamps). Limit, right after each run:',
      'one exec into the same pod from a warm client on the node, moving the same number of bytes out.',
      '',
      '| measure | casefile p50 / p95 | limit p50 / p95 | ratio p50 / p95 | target |',
      '|---|---:|---:|---:|---|',
      `| capture time | ${fmt(pct(times, 50))} / ${fmt(pct(times, 95))} | ${fmt(pct(limits, 50))} / ${fmt(pct(limits, 95))} | ${(pct(times, 50) / pct(limits, 50)).toFixed(1)} / ${(pct(times, 95) / pct(limits, 95)).toFixed(1)} | < 10 s |`,
      '',
      '| run | time | limit | processes seen | files listed | artifacts | bytes moved |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map((r, i) => `| ${i} | ${fmt(r.ms)} | ${fmt(r.limit)} | ${r.processes} | ${r.files} | ${r.artifacts} | ${r.bytes.toLocaleString('en-US')} |`),
      '',
      `Operator memory across the runs: RSS ${before.rssMiB.toFixed(0)} MiB before, ${after.rssMiB.toFixed(0)} MiB after; peak (VmHWM) ${before.peakRSSMiB.toFixed(0)} MiB before, ${after.peakRSSMiB.toFixed(0)} MiB after,`,
      `while ${(results.reduce((n, r) => n + r.bytes, 0) / 2 ** 20).toFixed(1)} MiB of collector output went through it (streamed frame by frame into the case file, never held whole).`,
      '',
    ].join('\n');
    publish('live', report);
  } finally {
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
