// Containment against its physical limit, interleaved in one run on the local cluster. Each round
// measures the limit (a bare client labels the pod and creates a deny-all policy, timed to the watch
// events) and casefile's two ways in: an Investigation created in ContainFirst, and a Falco alert POSTed
// to intake matching a ContainFirst ResponsePolicy; each timed to the same events (policy ADDED and the
// pod carrying the label, whichever comes last). Quiet first, then while 20 other cases capture (each
// replaced by a new one as it settles).
import { alert, agent, deployWithIntake, postAlert, responsePolicy } from './intake-client.js';
import {
  createInvestigation, custom, deleteInvestigation, G, kubectl, machine, pct, rawIsolation, RATIO_HEADER, ratioRow, readyPods, Seen, sleep, publish,
} from './support.js';

const ROUNDS = Number(process.env.BENCH_CONTAIN_ROUNDS ?? 30);
const LOADED_ROUNDS = Number(process.env.BENCH_CONTAIN_LOADED_ROUNDS ?? 20);
const CAPTURING = 20;
const ns = `bench-contain-${Date.now().toString(36)}`;
const RULE = 'bench contain first';
// Enforcement verification has its own benchmark (verify): here each round waits only for isolation.
const contain = { order: 'ContainFirst', network: { isolate: true, verify: false } };

/**
 * `settle`: wait for NetworkIsolated=True and release the case before the next round (quiet rounds).
 * Under load the bookkeeping waits its turn behind the capturing cases, so a loaded round leaves its
 * case open (on its own incident label) and the cases are released after the last round.
 */
async function viaInvestigation(seen: Seen, name: string, settle: boolean): Promise<number> {
  const started = performance.now();
  const uid8 = await createInvestigation(ns, name, { target: { pod: 'suspect' }, containment: contain });
  const inPlace = (await seen.isolated(started, 'suspect', `casefile-${uid8}`, `casefile.dev/incident-${uid8}`)) - started;
  if (settle) {
    await seen.condition(started, name, 'NetworkIsolated', 'True');
    await deleteInvestigation(ns, name);
  }
  return inPlace;
}

async function viaAlert(seen: Seen, pod: string, settle: boolean): Promise<number> {
  const started = performance.now();
  const r = await postAlert(alert(ns, pod, RULE));
  if (r.status !== 202) throw new Error(`POST answered ${r.status}: ${JSON.stringify(r.body)}`);
  const name = String(r.body.investigations[0]).split('/')[1]!;
  // Intake isolates ahead of the create, under an id of its own: the label names the policy.
  let key = '';
  const inPlace = await seen.until('pod', started, (o) => o.metadata.name === pod && Boolean((key = Object.keys(o.metadata.labels ?? {}).find((k) => k.startsWith('casefile.dev/incident-')) ?? '')));
  const policy = `casefile-${key.slice('casefile.dev/incident-'.length)}`;
  const at = Math.max(inPlace, await seen.until('networkpolicy', started, (o, t) => t === 'ADDED' && o.metadata.name === policy));
  // Isolation can be in place before the Investigation exists: the round ends once it does (untimed),
  // so the cleanup after the last round finds every case.
  await seen.until('investigation', started, (o, t) => t === 'ADDED' && o.metadata.name === name);
  if (!settle) return at - started;
  await seen.condition(started, name, 'NetworkIsolated', 'True');
  // Deleted only once intake has recorded the alert on it (and acknowledged it in its journal): an
  // unacknowledged alert whose case disappeared opens the case again.
  await seen.until('investigation', started, (o) => o.metadata.name === name && (o.status?.alerts?.count ?? 0) >= 1);
  await deleteInvestigation(ns, name);
  return at - started;
}

async function capturing(): Promise<number> {
  const list = (await custom.listNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', labelSelector: 'bench=load' })) as { items: { status?: { conditions?: { type: string; status: string }[] } }[] };
  return list.items.filter((i) => !(i.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status !== 'Unknown')).length;
}

async function main(): Promise<void> {
  await deployWithIntake();
  kubectl('create', 'namespace', ns);
  const seen = await Seen.open(ns);
  try {
    const alertPods = Array.from({ length: ROUNDS }, (_, i) => `alert-${i}`);
    const loadAlertPods = Array.from({ length: LOADED_ROUNDS }, (_, i) => `load-alert-${i}`);
    const capturePods = Array.from({ length: CAPTURING }, (_, i) => `capture-${i}`);
    await readyPods(ns, ['suspect', ...alertPods, ...loadAlertPods, ...capturePods]);
    await responsePolicy(ns, 'contain-first', RULE, { containment: contain });
    await sleep(2000);
    // Warm-up: one of each, not counted (first connections, first informer events).
    await rawIsolation(seen, ns, 'suspect', 9999, true);
    await viaInvestigation(seen, 'warm-up', true);

    const quiet = { seq: [] as number[], par: [] as number[], inv: [] as number[], alert: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      quiet.seq.push(await rawIsolation(seen, ns, 'suspect', i, true));
      quiet.par.push(await rawIsolation(seen, ns, 'suspect', 1000 + i, false));
      quiet.inv.push(await viaInvestigation(seen, `quiet-${i}`, true));
      quiet.alert.push(await viaAlert(seen, alertPods[i]!, true));
    }

    // Load: CAPTURING EvidenceFirst cases with live capture in flight throughout: a case that settles is
    // replaced by a new one on the same pod, so the rounds always meet CAPTURING cases capturing.
    let started = 0;
    let loading = true;
    const startCase = (pod: string) =>
      custom.createNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: `load-${started++}`, labels: { bench: 'load' } }, spec: { target: { pod }, evidence: { live: { enabled: true } } } } });
    await Promise.all(capturePods.map(startCase));
    const replenish = (async () => {
      while (loading) {
        const missing = CAPTURING - (await capturing());
        for (let i = 0; i < missing; i++) await startCase(capturePods[started % CAPTURING]!);
        await sleep(250);
      }
    })();
    await sleep(1000);
    const loaded = { seq: [] as number[], inv: [] as number[], alert: [] as number[], capturing: [] as number[] };
    for (let i = 0; i < LOADED_ROUNDS; i++) {
      loaded.capturing.push(await capturing());
      loaded.seq.push(await rawIsolation(seen, ns, 'suspect', 2000 + i, true));
      loaded.inv.push(await viaInvestigation(seen, `loaded-${i}`, false));
      loaded.alert.push(await viaAlert(seen, loadAlertPods[i]!, false));
    }
    const stillCapturing = await capturing();
    loading = false;
    await replenish;
    // Every case released and gone before the next benchmark: no background work left behind.
    await custom.deleteCollectionNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations' });
    for (;;) {
      const left = (await custom.listNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations' })) as { items: unknown[] };
      if (left.items.length === 0) break;
      await sleep(500);
    }

    const report = [
      '',
      `## Containment against its limit (measured ${new Date().toISOString()})`,
      '',
      `${machine()}; the local cluster (e2e/cluster: one node, kube-router enforcing NetworkPolicy), operator in-cluster, 4 workers.`,
      `Reproduce: \`npm run bench -- contain\`. Interleaved rounds: the limit, then casefile by Investigation, then casefile by alert.`,
      'In place = the deny-all NetworkPolicy ADDED and the pod carrying its label, whichever a watch saw last.',
      'Limit = a bare client on a warm keep-alive connection: label the pod, then create the policy (the issue\'s yardstick).',
      '',
      ...RATIO_HEADER,
      ratioRow('quiet: Investigation created -> isolation in place', quiet.inv, quiet.seq, 'p50 ratio <= 1.5'),
      ratioRow('quiet: alert POST -> isolation in place', quiet.alert, quiet.seq, 'p50 ratio <= 1.5'),
      ratioRow(`${CAPTURING} cases capturing: Investigation created -> in place`, loaded.inv, loaded.seq, 'p95 ratio <= 3'),
      ratioRow(`${CAPTURING} cases capturing: alert POST -> in place`, loaded.alert, loaded.seq, 'p95 ratio <= 3'),
      '',
      `The same two writes issued at once by the bare client: p50 ${pct(quiet.par, 50).toFixed(0)} ms, p95 ${pct(quiet.par, 95).toFixed(0)} ms (quiet).`,
      `Cases in flight (not settled) at the start of each loaded round: ${loaded.capturing.join(', ')}; at the end: ${stillCapturing}; ${started} load cases in all.`,
      '',
    ].join('\n');
    publish('contain', report);
  } finally {
    seen.close();
    agent.destroy();
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
