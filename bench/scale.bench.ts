// How cost grows, on the local cluster: cases per minute, operator RSS and CPU seconds per case, at 1, 2,
// 4 and 8 workers, then at 4 workers with 10, 100 and 500 settled Investigations in the cluster. A point
// is BATCH default Investigations (EvidenceFirst, live capture on) on BATCH pods, created at once, timed to
// the last one settled (Ready not Unknown). The limit of each point is printed beside it: BATCH pod
// starts at once on the same node, the smallest cost of anything that starts a container per case.
import {
  busyboxPod, core, custom, G, kubectl, machine, operatorCPUSeconds, operatorMemory, operatorSeconds, readyPods, Seen, sleep, publish,
} from './support.js';

const BATCH = Number(process.env.BENCH_SCALE_BATCH ?? 8);
const WORKERS = [1, 2, 4, 8];
const OPEN = [10, 100, 500];
const ns = `bench-scale-${Date.now().toString(36)}`;
const pods = Array.from({ length: BATCH }, (_, i) => `scale-${i}`);

function setWorkers(n: number): void {
  kubectl('-n', 'casefile-system', 'set', 'env', 'deployment/casefile-operator', '-c', 'operator', `CASEFILE_WORKERS=${n}`);
  kubectl('-n', 'casefile-system', 'rollout', 'status', 'deployment/casefile-operator', '--timeout=180s');
}

async function settledCount(selector: string): Promise<{ all: number; settled: number }> {
  const list = (await custom.listNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', labelSelector: selector })) as { items: { status?: { conditions?: { type: string; status: string }[] } }[] };
  return { all: list.items.length, settled: list.items.filter((i) => (i.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status !== 'Unknown')).length };
}

type Point = { seconds: number; cpuPerCase: number; rss: number; peak: number; phases: Map<string, number>; reconcilePerCase: number; busy: number; queuedPerCase: number; runsPerCase: number; waitsPerCase: number };

async function batch(point: string, workers: number): Promise<Point> {
  const phases0 = operatorSeconds();
  const cpu0 = operatorCPUSeconds();
  const started = performance.now();
  await Promise.all(pods.map((pod, i) => custom.createNamespacedCustomObject({
    ...G, namespace: ns, plural: 'investigations',
    body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: `${point}-${i}`, labels: { point } }, spec: { target: { pod }, evidence: { live: { enabled: true } } } },
  })));
  while ((await settledCount(`point=${point}`)).settled < BATCH) await sleep(250);
  const seconds = (performance.now() - started) / 1000;
  const cpuPerCase = (operatorCPUSeconds() - cpu0) / BATCH;
  const mem = operatorMemory();
  // Mean seconds per run of each phase over this batch: where a point's time went.
  const phases = new Map<string, number>();
  let reconcileSum = 0;
  let runs = 0;
  let waits = 0;
  let queued = 0;
  for (const [key, after] of operatorSeconds()) {
    const before = phases0.get(key) ?? { sum: 0, count: 0 };
    if (key === 'reconcile/investigations') {
      reconcileSum = after.sum - before.sum;
      runs = after.count - before.count;
    } else if (key === 'requeue/investigations') waits = after.count - before.count;
    else if (key === 'queue/investigations') queued = after.sum - before.sum;
    else if (key.startsWith('phase/') && after.count > before.count) phases.set(key.slice('phase/'.length), (after.sum - before.sum) / (after.count - before.count));
  }
  // Workers' busy share: reconcile seconds over the batch against workers x wall time. Low means the
  // cases waited outside any reconcile (the queue's backoff, a watch event still to come).
  return { seconds, cpuPerCase, rss: mem.rssMiB, peak: mem.peakRSSMiB, phases, reconcilePerCase: reconcileSum / BATCH, busy: reconcileSum / (workers * seconds), queuedPerCase: queued / BATCH, runsPerCase: runs / BATCH, waitsPerCase: waits / BATCH };
}

/** The limit beside each point: BATCH pods created at once to Ready. */
async function podStarts(seen: Seen, point: string): Promise<number> {
  const names = pods.map((_, i) => `start-${point}-${i}`);
  const started = performance.now();
  await Promise.all(names.map((name) => core.createNamespacedPod({ namespace: ns, body: busyboxPod(name) })));
  const ready = await Promise.all(names.map((name) => seen.until('pod', started, (o) => o.metadata.name === name && (o.status?.containerStatuses ?? []).some((c: any) => c.ready))));
  await Promise.all(names.map((name) => core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 })));
  return (Math.max(...ready) - started) / 1000;
}

async function fill(total: number, have: number): Promise<void> {
  const names = Array.from({ length: total - have }, (_, i) => `open-${have + i}`);
  for (let i = 0; i < names.length; i += 16) {
    await Promise.all(names.slice(i, i + 16).map((name) => custom.createNamespacedCustomObject({
      ...G, namespace: ns, plural: 'investigations',
      body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name, labels: { open: 'yes' } }, spec: { target: { pod: 'no-such-pod' }, evidence: { live: { enabled: false } } } },
    })));
  }
  for (;;) {
    const s = await settledCount('open=yes');
    if (s.settled >= total) return;
    await sleep(1000);
  }
}

function phaseTable(points: { label: string; phases: Map<string, number> }[]): string[] {
  const names = [...new Set(points.flatMap((p) => [...p.phases.keys()]))];
  return [
    `| point | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---:').join('|')}|`,
    ...points.map((p) => `| ${p.label} | ${names.map((n) => (p.phases.has(n) ? p.phases.get(n)!.toFixed(2) : '-')).join(' | ')} |`),
  ];
}

/**
 * Waits (up to 5 minutes) for an earlier benchmark's namespace to be gone: its cases are released and
 * finalized on the same operator, which a point would otherwise count as its own queue time.
 */
async function quietOperator(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const others = kubectl('get', 'namespaces', '-o', 'name').split('\n').filter((n) => n.startsWith('namespace/bench-'));
    if (others.length === 0) return;
    await sleep(1000);
  }
}

async function main(): Promise<void> {
  await quietOperator();
  kubectl('create', 'namespace', ns);
  const seen = await Seen.open(ns);
  const rows: string[] = [];
  const points: { label: string; phases: Map<string, number> }[] = [];
  const row = (label: string, r: Point, limit: number) =>
    `| ${label} | ${(BATCH / r.seconds * 60).toFixed(1)} | ${r.seconds.toFixed(1)} s | ${limit.toFixed(1)} s | ${(r.seconds / limit).toFixed(1)} | ${r.cpuPerCase.toFixed(2)} s | ${r.rss.toFixed(0)} / ${r.peak.toFixed(0)} MiB | ${r.reconcilePerCase.toFixed(1)} s | ${(r.busy * 100).toFixed(0)}% | ${r.queuedPerCase.toFixed(2)} s | ${r.runsPerCase.toFixed(1)} / ${r.waitsPerCase.toFixed(1)} |`;
  try {
    await readyPods(ns, pods);
    for (const w of WORKERS) {
      setWorkers(w);
      await sleep(3000);
      const limit = await podStarts(seen, `w${w}`);
      const r = await batch(`w${w}`, w);
      rows.push(row(`${w} worker${w > 1 ? 's' : ''}, no other cases`, r, limit));
      points.push({ label: `${w} worker${w > 1 ? 's' : ''}`, phases: r.phases });
    }
    setWorkers(4);
    let have = 0;
    for (const open of OPEN) {
      await fill(open, have);
      have = open;
      const limit = await podStarts(seen, `o${open}`);
      const r = await batch(`o${open}`, 4);
      rows.push(row(`4 workers, ${open} settled Investigations in the cluster`, r, limit));
      points.push({ label: `4 workers, ${open} settled`, phases: r.phases });
    }
    const report = [
      '',
      `## How cost grows (measured ${new Date().toISOString()})`,
      '',
      `${machine()}; the local cluster. Reproduce: \`npm run bench -- scale\`. Each point: ${BATCH} Investigations`,
      `(EvidenceFirst, live capture on) on ${BATCH} running pods, created at once, timed to the last one settled; the limit beside it is`,
      `${BATCH} pods created at once to Ready on the same node (every case starts a debug container). CPU = the operator process's`,
      'utime + stime over the batch, per case; RSS now / peak (VmHWM, since the operator started: each worker point restarts it).',
      'Reconcile time per case: the investigations queue\'s reconcile seconds over the batch (every run of every key, phases and',
      'bookkeeping), per case; workers busy: those seconds against workers x batch time (low: cases waited outside any reconcile).',
      'Queue wait: seconds keys waited ready in the queue (rate limit, busy workers: casefile_workqueue_queue_duration_seconds); runs / waits:',
      'reconciles per case, and how many of them ended in a RequeueAfter wait (time spent waiting for a container, not in the queue).',
      '',
      '| point | cases/min | batch time | limit (pod starts) | ratio | operator CPU per case | operator RSS now / peak | reconcile time per case | workers busy | queue wait per case | runs / waits per case |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      'Where the time went: mean seconds per run of each phase over the batch (casefile_phase_duration_seconds, scraped before and after).',
      '',
      ...phaseTable(points),
      '',
    ].join('\n');
    publish('scale', report);
  } finally {
    seen.close();
    setWorkers(4);
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
