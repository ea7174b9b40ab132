// Alert intake benchmark on the local cluster. Deploys the operator with intake on (bearer token,
// plain HTTP inside the cluster network), then measures (a) alert-to-containment: from the alert POST
// to the deny-all NetworkPolicy existing (watch) and to NetworkIsolated=True, over distinct pods, in
// ContainFirst and EvidenceFirst order; (b) an alert storm: 10,000 alerts over 50 pods within 60 s,
// then exactly 50 Investigations and no alert lost, intake p99 latency and the operator's peak RSS.
// Appends to bench/results.md.
import { appendFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import { Watch } from '@kubernetes/client-node';
import { core, custom, kc, kubectl, operatorMemory, pct, required, sleep } from './support.js';

const busybox = required('CASEFILE_BUSYBOX_IMAGE');
const PODS = Number(process.env.BENCH_INTAKE_PODS ?? 50);
const STORM = Number(process.env.BENCH_INTAKE_STORM ?? 10_000);
const ns = `bench-intake-${Date.now().toString(36)}`;
const TOKEN = randomBytes(24).toString('hex');
const G = { group: 'casefile.dev', version: 'v1alpha1' };
const INTAKE_ENV = ['CASEFILE_INTAKE_PORT=8443', 'CASEFILE_INTAKE_NAMESPACE_RATE=200', 'CASEFILE_INTAKE_NAMESPACE_BURST=200', 'CASEFILE_INTAKE_POLICY_RATE=200', 'CASEFILE_INTAKE_POLICY_BURST=200'];
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let url = '';

function post(body: string): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {}, ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Falco's short (12-hex) container ID of each bench pod: Falco's rules put container.id in every alert. */
const containerIds = new Map<string, string>();

function alert(pod: string, rule: string): string {
  return JSON.stringify({
    rule, priority: 'Critical', time: new Date().toISOString(), source: 'syscall', hostname: 'node', tags: ['container'],
    output: `${rule} (k8s_pod=${pod})`,
    output_fields: { 'k8s.ns.name': ns, 'k8s.pod.name': pod, 'container.name': 'app', 'container.id': containerIds.get(pod) ?? null, 'proc.name': 'sh' },
  });
}

async function deployWithIntake(): Promise<void> {
  execFileSync('bash', ['-c', `kubectl -n casefile-system create secret generic casefile-intake-token --from-literal=token="$1" --dry-run=client -o yaml | kubectl apply -f -`, 'sh', TOKEN]);
  try {
    execFileSync('bash', ['scripts/deploy.sh', ...INTAKE_ENV], { stdio: 'inherit' });
  } catch {
    // deploy.sh's env insertion may not render on every kustomize (see e2e/operator/support.ts): set them directly.
    execFileSync('bash', ['scripts/deploy.sh'], { stdio: 'inherit' });
    kubectl('-n', 'casefile-system', 'set', 'env', 'deployment/casefile-operator', '-c', 'operator', ...INTAKE_ENV);
    kubectl('-n', 'casefile-system', 'rollout', 'status', 'deployment/casefile-operator', '--timeout=180s');
  }
  const ip = kubectl('-n', 'casefile-system', 'get', 'svc', 'casefile-intake', '-o', 'jsonpath={.spec.clusterIP}').trim();
  url = `http://${ip}:8443/`;
  for (let i = 0; ; i++) {
    const r = await post('{}').catch(() => ({ status: 0 }));
    if (r.status === 400) return;
    if (i > 120) throw new Error(`intake not ready (last status ${r.status})`);
    await sleep(1000);
  }
}

async function policy(name: string, rule: string, investigation: Record<string, unknown>): Promise<void> {
  await custom.createNamespacedCustomObject({ ...G, namespace: ns, plural: 'responsepolicies', body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'ResponsePolicy', metadata: { name }, spec: { match: { rules: [rule], namespaces: [ns] }, investigation } } });
}

async function condition(name: string, type: string): Promise<string | undefined> {
  const inv = (await custom.getNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', name })) as { status?: { conditions?: { type: string; status: string }[] } };
  return inv.status?.conditions?.find((c) => c.type === type)?.status;
}

const policySeen: number[] = [];
async function containment(order: 'ContainFirst' | 'EvidenceFirst', pods: string[]): Promise<{ policyMs: number[]; isolatedMs: number[] }> {
  const rule = `bench ${order}`;
  await policy(order.toLowerCase(), rule, { containment: { order, network: { isolate: true } } });
  await sleep(2000);
  const policyMs: number[] = [];
  const isolatedMs: number[] = [];
  for (const pod of pods) {
    const seenBefore = policySeen.length;
    const posted = performance.now();
    const r = await post(alert(pod, rule));
    if (r.status !== 202) throw new Error(`POST answered ${r.status}: ${JSON.stringify(r.body)}`);
    const name = String(r.body.investigations[0]).split('/')[1]!;
    for (;;) {
      const c = await condition(name, 'NetworkIsolated').catch(() => undefined);
      if (c === 'True') {
        isolatedMs.push(performance.now() - posted);
        policyMs.push((policySeen[seenBefore] ?? performance.now()) - posted);
        break;
      }
      if (c === 'False') throw new Error(`${name}: NetworkIsolated False`);
      await sleep(25);
    }
    // The next alert meets a quiet operator: each figure is one alert's path, not the tail of the last case.
    while ((await condition(name, 'Ready').catch(() => undefined)) !== 'True') await sleep(200);
  }
  return { policyMs, isolatedMs };
}

/** The operator's own view of intake latency: the p-quantile bucket bound of its request histogram. */
function serverQuantile(q: number): string {
  const metrics = kubectl('-n', 'casefile-system', 'exec', 'deploy/casefile-operator', '-c', 'operator', '--', '/usr/bin/node', '-e',
    "require('http').get('http://127.0.0.1:8080/metrics',r=>{let t='';r.on('data',d=>t+=d);r.on('end',()=>process.stdout.write(t))})");
  const buckets = new Map<number, number>();
  for (const m of metrics.matchAll(/^casefile_intake_request_duration_seconds_bucket\{([^}]*)\} (\d+)/gm)) {
    if (!/code="202"/.test(m[1]!)) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)![1]!;
    const bound = le === '+Inf' ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  const hit = sorted.find(([, n]) => n >= q * total);
  return hit ? (hit[0] === Infinity ? 'above the largest bucket' : `<= ${(hit[0] * 1000).toFixed(0)} ms`) : 'no data';
}

const row = (label: string, xs: number[], target: string) =>
  `| ${label} | ${xs.length} | ${pct(xs, 50).toFixed(0)} ms | ${pct(xs, 95).toFixed(0)} ms | ${Math.max(...xs).toFixed(0)} ms | ${target} |`;

async function main(): Promise<void> {
  await deployWithIntake();
  kubectl('create', 'namespace', ns);
  const watch = await new Watch(kc).watch(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`, {}, (type) => {
    if (type === 'ADDED') policySeen.push(performance.now());
  }, () => undefined);
  try {
    const pods = Array.from({ length: PODS }, (_, i) => `suspect-${i}`);
    for (const name of pods) {
      await core.createNamespacedPod({ namespace: ns, body: { metadata: { name, labels: { app: 'suspect' } }, spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: busybox, imagePullPolicy: 'Never', command: ['sleep', '100000'] }] } } });
    }
    for (;;) {
      const list = await core.listNamespacedPod({ namespace: ns });
      if (list.items.filter((p) => p.status?.containerStatuses?.[0]?.ready).length === PODS) {
        for (const p of list.items) containerIds.set(p.metadata!.name!, p.status!.containerStatuses![0]!.containerID!.replace(/^[a-z]+:\/\//, '').slice(0, 12));
        break;
      }
      await sleep(500);
    }
    const first = await containment('ContainFirst', pods);
    const evidence = await containment('EvidenceFirst', pods);

    // (b) the storm: STORM alerts round-robin over the pods, paced to finish within 60 s.
    await policy('storm', 'bench storm', {});
    await sleep(2000);
    const latencies: number[] = [];
    const statuses = new Map<number, number>();
    const stormStart = performance.now();
    let next = 0;
    const perMs = STORM / 50_000;
    const sender = async () => {
      while (next < STORM) {
        const i = next++;
        const due = stormStart + i / perMs;
        if (due > performance.now()) await sleep(due - performance.now());
        const r = await post(alert(pods[i % PODS]!, 'bench storm'));
        latencies.push(r.ms);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 32 }, sender));
    const stormSeconds = (performance.now() - stormStart) / 1000;
    let total = 0;
    let cases = 0;
    const settleStart = performance.now();
    for (;;) {
      const list = (await custom.listNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', labelSelector: 'casefile.dev/policy=storm' })) as { items: { status?: { alerts?: { count: number } } }[] };
      cases = list.items.length;
      total = list.items.reduce((sum, i) => sum + (i.status?.alerts?.count ?? 0), 0);
      if ((cases === PODS && total === STORM) || performance.now() - settleStart > 600_000) break;
      await sleep(1000);
    }
    const settledSeconds = (performance.now() - settleStart) / 1000;
    const rss = `${operatorMemory().peakRSSMiB.toFixed(0)} MiB`;
    const serverP99 = serverQuantile(0.99);
    const report = [
      '',
      `## Alert intake (measured ${new Date().toISOString()} on ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB)`,
      '',
      `Alert POSTed to the casefile-intake Service (plain HTTP, bearer token, keep-alive) from the node; ${PODS} distinct pods, one after another,`,
      'each alert sent once the previous case is Ready (a quiet operator).',
      'Policy in place = the NetworkPolicy\'s ADDED event on a watch opened before the runs.',
      '',
      '| measure | runs | p50 | p95 | max | target |',
      '|---|---:|---:|---:|---:|---|',
      row('ContainFirst: POST to NetworkPolicy in place', first.policyMs, 'p95 < 300 ms'),
      row('ContainFirst: POST to NetworkIsolated=True', first.isolatedMs, '—'),
      row('EvidenceFirst: POST to NetworkPolicy in place', evidence.policyMs, '—'),
      row('EvidenceFirst: POST to NetworkIsolated=True', evidence.isolatedMs, '—'),
      '',
      `Storm: ${STORM} alerts over ${PODS} pods sent in ${stormSeconds.toFixed(1)} s (32 concurrent senders); answers ${JSON.stringify(Object.fromEntries(statuses))}.`,
      '',
      '| measure | value | target |',
      '|---|---:|---|',
      `| Investigations opened | ${cases} | exactly ${PODS} |`,
      `| sum of status.alerts.count (settled ${settledSeconds.toFixed(1)} s after the last POST) | ${total} | ${STORM} (none lost) |`,
      `| intake latency at the sender p50 / p99 / max | ${pct(latencies, 50).toFixed(1)} / ${pct(latencies, 99).toFixed(1)} / ${Math.max(...latencies).toFixed(1)} ms | p99 < 50 ms |`,
      `| intake latency in the operator (202s, whole run), p99 | ${serverP99} (histogram bucket) | — |`,
      `| operator peak RSS (VmHWM) | ${rss} | < 300 MB |`,
      '',
    ].join('\n');
    appendFileSync('bench/results.md', report);
    process.stdout.write(report);
  } finally {
    watch.abort();
    agent.destroy();
    execFileSync('kubectl', ['delete', 'namespace', ns, '--wait=false']);
  }
}

await main();
