// The alert storm against its limit, on the local cluster: 10,000 alerts over 50 pods in 60 s, POSTed to
// the casefile-intake Service from the node (plain HTTP, bearer token, keep-alive, 32 senders). The limit
// is a bare endpoint in the cluster that makes each POST durable (write + fdatasync) before answering
// 202, stormed at the same time as casefile (a fifth of the rate, interleaved in time, so both see the
// load of the cases the storm opens), and once before it on a quiet machine.
// Then: exactly 50 Investigations, every alert counted, and the operator's peak RSS.
import { agent, alert, deployWithIntake, post, postAlert, probe, responsePolicy } from './intake-client.js';
import { core, custom, G, kubectl, machine, operatorMemory, pct, readyPods, required, sleep, publish } from './support.js';

const PODS = Number(process.env.BENCH_INTAKE_PODS ?? 50);
const STORM = Number(process.env.BENCH_INTAKE_STORM ?? 10_000);
const STORM_MS = 60_000;
const LIMIT_SLICE = Math.round(STORM / 5);
const SENDERS = 32;
const LIMIT_SENDERS = 8;
/** The first seconds of a storm, when its 50 cases are opened, contained and start capturing. */
const EARLY_MS = 10_000;
const ns = `bench-intake-${Date.now().toString(36)}`;

/** A bare durable endpoint: append the body, fdatasync, answer 202. Node, from the operator's own image. */
const FSYNC_SERVER = `const http=require('http'),fs=require('fs');const fd=fs.openSync('/data/journal','a');
http.createServer((q,s)=>{const b=[];q.on('data',c=>b.push(c));q.on('end',()=>{fs.write(fd,Buffer.concat(b),()=>fs.fdatasync(fd,()=>{s.writeHead(202,{'content-type':'application/json'});s.end('{}')}))})}).listen(8080);`;

async function fsyncEndpoint(): Promise<string> {
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'fsync-endpoint', labels: { app: 'fsync-endpoint' } },
      spec: {
        terminationGracePeriodSeconds: 0,
        volumes: [{ name: 'data', emptyDir: {} }],
        containers: [{ name: 'server', image: required('CASEFILE_OPERATOR_IMAGE'), imagePullPolicy: 'Never', command: ['/usr/bin/node', '-e', FSYNC_SERVER], volumeMounts: [{ name: 'data', mountPath: '/data' }], readinessProbe: { tcpSocket: { port: 8080 as never }, periodSeconds: 1 } }],
      },
    },
  });
  await core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'fsync-endpoint' }, spec: { selector: { app: 'fsync-endpoint' }, ports: [{ port: 8080, targetPort: 8080 as never }] } } });
  const ip = (await core.readNamespacedService({ name: 'fsync-endpoint', namespace: ns })).spec!.clusterIP!;
  for (let i = 0; ; i++) {
    const r = await probe(`http://${ip}:8080/`, '{}');
    if (r.status === 202) return `http://${ip}:8080/`;
    if (i > 120) throw new Error('the fsync endpoint did not answer');
    await sleep(1000);
  }
}

/** `count` alerts round-robin over the pods, paced to `ms`, from SENDERS concurrent senders; latencies at the sender. */
async function storm(
  count: number,
  ms: number,
  send: (i: number) => Promise<{ status: number; ms: number }>,
  senders = SENDERS,
): Promise<{ latencies: number[]; early: number[]; late: number[]; statuses: Record<number, number>; seconds: number }> {
  const latencies: number[] = [];
  const early: number[] = [];
  const late: number[] = [];
  const statuses: Record<number, number> = {};
  const start = performance.now();
  let next = 0;
  const sender = async () => {
    while (next < count) {
      const i = next++;
      const due = start + (i * ms) / count;
      if (due > performance.now()) await sleep(due - performance.now());
      const sent = performance.now();
      // A connection reset is an answer too (status 0, in the answers line), not the end of the benchmark.
      const r = await send(i).catch(() => ({ status: 0, ms: performance.now() - sent }));
      latencies.push(r.ms);
      (sent - start < EARLY_MS ? early : late).push(r.ms);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: senders }, sender));
  return { latencies, early, late, statuses, seconds: (performance.now() - start) / 1000 };
}

async function main(): Promise<void> {
  await deployWithIntake();
  kubectl('create', 'namespace', ns);
  try {
    const pods = Array.from({ length: PODS }, (_, i) => `suspect-${i}`);
    await readyPods(ns, pods);
    const limitURL = await fsyncEndpoint();
    await responsePolicy(ns, 'storm', 'bench storm', {});
    await sleep(2000);
    const toLimit = (i: number) => post(limitURL, alert(ns, pods[i % PODS]!, 'bench storm'));
    const quiet = (await storm(LIMIT_SLICE, (STORM_MS * LIMIT_SLICE) / STORM, toLimit, LIMIT_SENDERS)).latencies;
    const [casefile, loaded] = await Promise.all([
      storm(STORM, STORM_MS, (i) => postAlert(alert(ns, pods[i % PODS]!, 'bench storm'))),
      storm(LIMIT_SLICE, STORM_MS, toLimit, LIMIT_SENDERS),
    ]);
    const limit = loaded.latencies;

    let total = 0;
    let cases = 0;
    const settleStart = performance.now();
    for (;;) {
      const list = (await custom.listNamespacedCustomObject({ ...G, namespace: ns, plural: 'investigations', labelSelector: 'casefile.dev/policy=storm' })) as { items: { status?: { alerts?: { count: number } } }[] };
      cases = list.items.length;
      total = list.items.reduce((sum, i) => sum + (i.status?.alerts?.count ?? 0), 0);
      if ((cases === PODS && total === STORM) || performance.now() - settleStart > 300_000) break;
      await sleep(1000);
    }
    const settled = (performance.now() - settleStart) / 1000;
    const mem = operatorMemory();
    const f = (xs: number[], p: number) => pct(xs, p).toFixed(1);
    const report = [
      '',
      `## Alert storm against its limit (measured ${new Date().toISOString()})`,
      '',
      `${machine()}; the local cluster, operator in-cluster (intake in its own worker thread). Reproduce: \`npm run bench -- intake\`.`,
      `${STORM} alerts over ${PODS} pods paced over ${STORM_MS / 1000} s by ${SENDERS} keep-alive senders on the node, to the casefile-intake Service.`,
      `Limit: a bare endpoint behind a Service in the cluster that appends each body and fdatasyncs before its 202, on the same node and disk:`,
      `${LIMIT_SLICE} alerts from ${LIMIT_SENDERS} senders over the same 60 s as casefile's storm (so under the same load: the storm's ${PODS} cases`,
      `are opened, contained and capture meanwhile), and ${LIMIT_SLICE} over 12 s before it on a quiet machine.`,
      '',
      '| measure | casefile | limit | ratio | target |',
      '|---|---:|---:|---:|---|',
      `| sender latency p50 | ${f(casefile.latencies, 50)} ms | ${f(limit, 50)} ms | ${(pct(casefile.latencies, 50) / pct(limit, 50)).toFixed(2)} | — |`,
      `| sender latency p99 | ${f(casefile.latencies, 99)} ms | ${f(limit, 99)} ms | ${(pct(casefile.latencies, 99) / pct(limit, 99)).toFixed(2)} | casefile < 25 ms |`,
      `| sender latency max | ${Math.max(...casefile.latencies).toFixed(1)} ms | ${Math.max(...limit).toFixed(1)} ms | — | — |`,
      `| p99 in the first ${EARLY_MS / 1000} s (the cases open and start capturing) | ${f(casefile.early, 99)} ms | ${f(loaded.early, 99)} ms | ${(pct(casefile.early, 99) / pct(loaded.early, 99)).toFixed(2)} | — |`,
      `| p99 after that | ${f(casefile.late, 99)} ms | ${f(loaded.late, 99)} ms | ${(pct(casefile.late, 99) / pct(loaded.late, 99)).toFixed(2)} | — |`,
      `| p50 / p99, limit on the quiet machine before | — | ${f(quiet, 50)} / ${f(quiet, 99)} ms | — | — |`,
      '',
      '| measure | value | target |',
      '|---|---:|---|',
      `| answers | ${JSON.stringify(casefile.statuses)} in ${casefile.seconds.toFixed(1)} s | all 202 |`,
      `| Investigations opened | ${cases} | exactly ${PODS} |`,
      `| sum of status.alerts.count (settled ${settled.toFixed(1)} s after the last POST) | ${total} | ${STORM} (none lost) |`,
      `| operator peak RSS (VmHWM, whole life of the process) | ${mem.peakRSSMiB.toFixed(0)} MiB | < 200 MB |`,
      '',
    ].join('\n');
    publish('intake', report);
  } finally {
    agent.destroy();
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
