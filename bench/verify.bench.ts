// Isolation verified against its limit, interleaved in one run on the local cluster: from the deny-all
// policy in place to NetworkIsolated=True with enforcement verified, against two limits on the same node:
// one pod start (the smallest step any probe that needs a new container must take), and the same step
// casefile's probe takes, bare: an ephemeral container added to a running pod, until an exec in it runs.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { execStream } from '../src/kube/exec.js';
import {
  busyboxPod, core, createInvestigation, custom, deleteInvestigation, G, kube, kubectl, machine, pct, RATIO_HEADER, ratioRow, readyPods, required, Seen, sleep, publish,
} from './support.js';

const ROUNDS = Number(process.env.BENCH_VERIFY_ROUNDS ?? 10);
const ns = `bench-verify-${Date.now().toString(36)}`;

async function podStart(seen: Seen, i: number): Promise<number> {
  const name = `start-${i}`;
  const started = performance.now();
  await core.createNamespacedPod({ namespace: ns, body: busyboxPod(name) });
  const ready = await seen.until('pod', started, (o) => o.metadata.name === name && (o.status?.containerStatuses ?? []).some((c: any) => c.ready));
  await core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 });
  return ready - started;
}

const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

/** A busybox ephemeral container added to the running pod `bystander-<i>`, until `true` runs in it (exec tried every 50 ms, as casefile does). */
async function ephemeralStart(i: number): Promise<number> {
  const name = `limit-${i}`;
  const pod = `bystander-${i}`;
  const started = performance.now();
  await core.patchNamespacedPodEphemeralcontainers(
    { name: pod, namespace: ns, body: { spec: { ephemeralContainers: [{ name, image: required('CASEFILE_BUSYBOX_IMAGE'), imagePullPolicy: 'Never', command: ['sleep', '60'] }] } } },
    strategicMerge,
  );
  for (;;) {
    try {
      const exec = await execStream(kube, { namespace: ns, pod, container: name }, ['true'], 10_000);
      for await (const _ of exec.stdout) void _;
      if ((await exec.result).exitCode === 0) return performance.now() - started;
    } catch {
      // not running yet
    }
    await sleep(50);
  }
}

async function verified(seen: Seen, i: number): Promise<{ ms: number; reason: string }> {
  const name = `verify-${i}`;
  const started = performance.now();
  const suspect = `suspect-${i}`;
  const uid8 = await createInvestigation(ns, name, { target: { pod: suspect }, containment: { order: 'ContainFirst', network: { isolate: true, verify: true } } });
  const inPlace = await seen.isolated(started, suspect, `casefile-${uid8}`, `casefile.dev/incident-${uid8}`);
  const settled = await seen.until('investigation', started, (o) => o.metadata.name === name && (o.status?.conditions ?? []).some((c: any) => c.type === 'NetworkIsolated' && c.status !== 'Unknown'), 180_000);
  const inv = (await custom.getNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', name })) as { status: { conditions: { type: string; status: string; reason: string }[] } };
  const c = inv.status.conditions.find((x) => x.type === 'NetworkIsolated')!;
  await deleteInvestigation(ns, name);
  return { ms: settled - inPlace, reason: `${c.status}/${c.reason}` };
}

/**
 * Where the time went, from the operator's own log line per verification: until netprobe listened in
 * the probe container (the container's start, which the lane began with the first writes, and the exec),
 * and from then to the verdict (the probes and their controls).
 */
function breakdown(): { untilListening: number[]; probing: number[] } {
  const lines = kubectl('-n', 'casefile-system', 'logs', 'deploy/casefile-operator', '-c', 'operator', '--since=30m').split('\n');
  const untilListening: number[] = [];
  const probing: number[] = [];
  for (const line of lines) {
    if (!line.includes(`"investigation":"${ns}/`) || !line.includes('isolation verified from the suspect')) continue;
    const l = JSON.parse(line) as { runningMs?: number; totalMs: number };
    if (l.runningMs === undefined) continue;
    untilListening.push(l.runningMs);
    probing.push(l.totalMs - l.runningMs);
  }
  return { untilListening, probing };
}

async function main(): Promise<void> {
  kubectl('create', 'namespace', ns);
  const seen = await Seen.open(ns);
  try {
    // A pod of its own for each round, as a case meets its suspect: one that has no casefile containers yet.
    const rounds = Array.from({ length: ROUNDS + 1 }, (_, i) => i);
    await readyPods(ns, rounds.flatMap((i) => [`suspect-${i}`, `bystander-${i}`]));
    await podStart(seen, 999);
    await ephemeralStart(ROUNDS);
    const starts: number[] = [];
    const ephemeral: number[] = [];
    const runs: { ms: number; reason: string }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      starts.push(await podStart(seen, i));
      ephemeral.push(await ephemeralStart(i));
      runs.push(await verified(seen, i));
      await sleep(200);
    }
    const outcomes = new Map<string, number>();
    for (const r of runs) outcomes.set(r.reason, (outcomes.get(r.reason) ?? 0) + 1);
    const ms = runs.map((r) => r.ms);
    const parts = breakdown();
    const p = (xs: number[]) => `${pct(xs, 50).toFixed(0)} / ${pct(xs, 95).toFixed(0)} ms`;
    const report = [
      '',
      `## Isolation verified against its limit (measured ${new Date().toISOString()})`,
      '',
      `${machine()}; the local cluster (one node, kube-router enforcing NetworkPolicy). Reproduce: \`npm run bench -- verify\`.`,
      'casefile = from isolation in place (policy ADDED and pod labelled, seen on a watch) to NetworkIsolated settled, each round on a',
      'suspect pod of its own (running, no casefile container yet); limits, interleaved round by round: one busybox pod created to Ready',
      'on the same node; and bare, the step casefile\'s probe takes: an ephemeral container added to a running pod of its own until an',
      'exec of `true` in it succeeds (tried every 50 ms).',
      '',
      ...RATIO_HEADER,
      ratioRow('policy in place -> enforcement verified (limit: a pod start)', ms, starts, 'p95 < 1.5 s'),
      ratioRow('policy in place -> enforcement verified (limit: an ephemeral container start)', ms, ephemeral, 'p95 < 1.5 s'),
      '',
      `casefile p95 ${(pct(ms, 95) / 1000).toFixed(2)} s; outcomes ${JSON.stringify(Object.fromEntries(outcomes))} (True/Isolated = verified both ways).`,
      `From the operator's log (${parts.untilListening.length} verifications): from the start of verification until netprobe listened in the probe container p50 / p95 ${p(parts.untilListening)};`,
      `from then to the verdict (both directions and their controls) ${p(parts.probing)}.`,
      '',
    ].join('\n');
    publish('verify', report);
  } finally {
    seen.close();
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
