// Containment benchmark on the local cluster: time from an Investigation's creation (ContainFirst) to
// its deny-all NetworkPolicy existing (seen by a watch), to NetworkIsolated=True without the probe,
// and to enforcement verified by the probe. Appends to bench/results.md.
import { appendFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Watch } from '@kubernetes/client-node';
import { core, custom, kc, pct, required, sleep } from './support.js';

const busybox = required('CASEFILE_BUSYBOX_IMAGE');
const runs = Number(process.env.BENCH_CONTAINMENT_RUNS ?? 50);
const ns = `bench-contain-${Date.now().toString(36)}`;
const group = { group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations' };

// Policy creation times, from a watch started before the first Investigation.
const policySeen = new Map<string, number>();

async function condition(name: string, type: string): Promise<{ status: string; reason: string; message: string } | undefined> {
  const inv = (await custom.getNamespacedCustomObject({ ...group, name })) as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } };
  return inv.status?.conditions?.find((c) => c.type === type);
}

async function runOnce(i: number, verify: boolean): Promise<{ policyMs: number; isolatedMs: number }> {
  const name = `${verify ? 'v' : 'p'}-${i}`;
  const created = performance.now();
  const inv = (await custom.createNamespacedCustomObject({
    ...group,
    body: {
      apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name },
      spec: { target: { pod: 'suspect' }, containment: { order: 'ContainFirst', network: { isolate: true, verify } } },
    },
  })) as { metadata: { uid: string } };
  const policy = `casefile-${inv.metadata.uid.replace(/-/g, '').slice(0, 8)}`;
  let policyMs = NaN;
  for (;;) {
    if (Number.isNaN(policyMs) && policySeen.has(policy)) policyMs = policySeen.get(policy)! - created;
    const c = await condition(name, 'NetworkIsolated');
    if (c?.status === 'True') {
      const isolatedMs = performance.now() - created;
      if (Number.isNaN(policyMs)) policyMs = (policySeen.get(policy) ?? performance.now()) - created;
      await custom.deleteNamespacedCustomObject({ ...group, name });
      return { policyMs, isolatedMs };
    }
    if (c?.status === 'False') throw new Error(`${name}: NetworkIsolated False: ${c.message}`);
    await sleep(10);
  }
}

const row = (label: string, xs: number[], target: string) =>
  `| ${label} | ${xs.length} | ${pct(xs, 50).toFixed(0)} ms | ${pct(xs, 95).toFixed(0)} ms | ${Math.max(...xs).toFixed(0)} ms | ${target} |`;

async function main(): Promise<void> {
  execFileSync('kubectl', ['create', 'namespace', ns]);
  const watch = await new Watch(kc).watch(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`, {}, (type, obj: { metadata: { name: string } }) => {
    if (type === 'ADDED') policySeen.set(obj.metadata.name, performance.now());
  }, () => undefined);
  try {
    await core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: 'suspect', labels: { app: 'suspect' } }, spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: busybox, imagePullPolicy: 'Never', command: ['sleep', '100000'] }] } },
    });
    for (;;) {
      const pod = await core.readNamespacedPod({ name: 'suspect', namespace: ns });
      if (pod.status?.containerStatuses?.[0]?.ready) break;
      await sleep(200);
    }
    const plain = [];
    for (let i = 0; i < runs; i++) plain.push(await runOnce(i, false));
    const verified = [];
    for (let i = 0; i < runs; i++) verified.push(await runOnce(i, true));
    const report = [
      '',
      '## Containment (ContainFirst): Investigation creation to isolation',
      '',
      `${runs} runs each, one after another, on one suspect pod; each Investigation is deleted (released) before the next.`,
      'Policy in place = the NetworkPolicy\'s ADDED event on a watch opened before the runs.',
      '',
      '| measure | runs | p50 | p95 | max | target |',
      '|---|---:|---:|---:|---:|---|',
      row('creation to NetworkPolicy in place', plain.map((r) => r.policyMs), 'p95 < 250 ms'),
      row('creation to NetworkIsolated=True (no probe)', plain.map((r) => r.isolatedMs), '—'),
      row('creation to enforcement verified (probe pods)', verified.map((r) => r.isolatedMs), 'p95 < 3 s'),
      '',
      'Verification starts three probe pods (a labelled canary, a control canary, a prober) and waits for',
      'the CNI to program the new pods, so its time is dominated by pod start-up on this node.',
      '',
    ].join('\n');
    appendFileSync('bench/results.md', report);
    process.stdout.write(report);
  } finally {
    watch.abort();
    execFileSync('kubectl', ['delete', 'namespace', ns, '--wait=false']);
  }
}

await main();
