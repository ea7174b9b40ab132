// Benchmarks on the local cluster (never a timed test): time from an Investigation's creation to
// EvidenceSealed for pods with 1 MB and 50 MB of logs, each run interleaved with its limit (a bare
// client on the node reading the same pod, its events and its whole log, written to a file and
// fsynced), and the operator's peak RSS while 100 Investigations run at once. Not in the default set
// (about 12 minutes): `npm run bench -- investigation`.
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Kube } from '../src/kube/client.js';
import { core, custom, kc, kubectl, machine, operatorMemory, pct, publish, required, seconds as fmt, sleep } from './support.js';

const busybox = required('CASEFILE_BUSYBOX_IMAGE');
const ns = `bench-${Date.now().toString(36)}`;
const runs1MB = Number(process.env.BENCH_RUNS_1MB ?? 20);
const runs50MB = Number(process.env.BENCH_RUNS_50MB ?? 5);
const concurrent = Number(process.env.BENCH_CONCURRENT ?? 100);


async function logPod(name: string, bytes: number): Promise<void> {
  // `yes | head -c` writes exactly `bytes` bytes of log lines, then the container idles.
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        containers: [{
          name: 'app', image: busybox, imagePullPolicy: 'Never',
          command: ['sh', '-c', `yes 'GET /api/v1/orders?id=42 200 1.2ms user-agent=bench' | head -c ${bytes}; echo; echo done >&2; exec sleep 100000`],
        }],
      },
    },
  });
  for (;;) {
    const pod = await core.readNamespacedPod({ name, namespace: ns });
    if (pod.status?.containerStatuses?.[0]?.ready) break;
    await sleep(200);
  }
  await sleep(2000); // let the kubelet flush the log file
}

async function investigate(name: string, pod: string): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations',
    body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name }, spec: { target: { pod }, evidence: { logs: { limitBytes: 64 * 1024 * 1024 } } } },
  });
}

async function sealedAfter(name: string, created: number, pollMs = 25): Promise<number> {
  for (;;) {
    const inv = (await custom.getNamespacedCustomObject({ group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations', name })) as {
      status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
    };
    const sealed = inv.status?.conditions?.find((c) => c.type === 'EvidenceSealed');
    if (sealed?.status === 'True') return performance.now() - created;
    if (sealed?.status === 'False') throw new Error(`${name}: EvidenceSealed False: ${sealed.message}`);
    await sleep(pollMs);
  }
}

const bare = new Kube(kc);

/** The limit: the pod, its events and its whole log read by a bare client, the log streamed to a file and fsynced. */
async function bareCapture(pod: string): Promise<number> {
  const started = performance.now();
  const file = `/var/tmp/casefile-bench-${pod}.log`;
  await Promise.all([
    bare.getJSON(`/api/v1/namespaces/${ns}/pods/${pod}`),
    bare.getJSON(`/api/v1/namespaces/${ns}/events`, { fieldSelector: `involvedObject.name=${pod}` }),
    (async () => {
      const out = createWriteStream(file, { flush: true });
      await pipeline(await bare.streamGet(`/api/v1/namespaces/${ns}/pods/${pod}/log`, { container: 'app' }), out);
    })(),
  ]);
  const ms = performance.now() - started;
  await rm(file, { force: true });
  return ms;
}

async function timeToSeal(prefix: string, pod: string, runs: number): Promise<{ casefile: number[]; limit: number[] }> {
  const casefile: number[] = [];
  const limit: number[] = [];
  for (let i = 0; i < runs; i++) {
    limit.push(await bareCapture(pod));
    const name = `${prefix}-${i}`;
    const created = performance.now();
    await investigate(name, pod);
    casefile.push(await sealedAfter(name, created));
  }
  return { casefile, limit };
}


async function main(): Promise<void> {
  // A fresh operator process, so its peak RSS belongs to this run.
  kubectl('-n', 'casefile-system', 'rollout', 'restart', 'deployment/casefile-operator');
  kubectl('-n', 'casefile-system', 'rollout', 'status', 'deployment/casefile-operator', '--timeout=120s');
  kubectl('create', 'namespace', ns);
  try {
    await logPod('logs-1mb', 1024 * 1024);
    await logPod('logs-50mb', 50 * 1024 * 1024);
    const small = await timeToSeal('one-mb', 'logs-1mb', runs1MB);
    const large = await timeToSeal('fifty-mb', 'logs-50mb', runs50MB);
    const afterSerial = operatorMemory();

    const started = performance.now();
    await Promise.all(Array.from({ length: concurrent }, (_, i) => investigate(`burst-${i}`, i % 2 ? 'logs-1mb' : 'logs-50mb')));
    // 100 pollers at 25 ms would be the load on the API server, not the operator: poll at 500 ms.
    const burst = await Promise.all(Array.from({ length: concurrent }, (_, i) => sealedAfter(`burst-${i}`, started, 500)));
    const afterBurst = operatorMemory();

    const row = (label: string, r: { casefile: number[]; limit: number[] }, target: string) =>
      `| ${label} | ${r.casefile.length} | ${fmt(pct(r.casefile, 50))} / ${fmt(pct(r.casefile, 95))} | ${fmt(pct(r.limit, 50))} / ${fmt(pct(r.limit, 95))} | ` +
      `${(pct(r.casefile, 50) / pct(r.limit, 50)).toFixed(1)} / ${(pct(r.casefile, 95) / pct(r.limit, 95)).toFixed(1)} | ${target} |`;
    const report = [
      `## Investigation creation to EvidenceSealed (measured ${new Date().toISOString()})`,
      '',
      `${machine()}; the local cluster (operator in-cluster, 4 workers, evidence on a hostPath PV). Reproduce: \`npm run bench -- investigation\`.`,
      'Limit, interleaved run by run: a bare client on the node reads the pod, its events and its whole log at once, the log streamed to a file and fsynced.',
      'casefile does more in that time (identity chain, owners, scope, timeline, report, manifest and custody, the seal); the ratio says how much more it costs.',
      '',
      '| log size | runs | casefile p50 / p95 | limit p50 / p95 | ratio p50 / p95 | target |',
      '|---|---:|---:|---:|---:|---|',
      row('1 MB', small, 'p95 < 2 s'),
      row('50 MB', large, 'bounded by disk, not memory'),
      '',
      '## Operator memory',
      '',
      '| moment | RSS now | peak RSS (VmHWM) since the operator started | target |',
      '|---|---:|---:|---|',
      `| after the serial runs above (incl. ${runs50MB} x 50 MB logs) | ${afterSerial.rssMiB.toFixed(0)} MiB | ${afterSerial.peakRSSMiB.toFixed(0)} MiB | < 200 MB |`,
      `| after ${concurrent} Investigations at once (half on the 50 MB pod): all sealed in ${fmt(Math.max(...burst))} | ${afterBurst.rssMiB.toFixed(0)} MiB | ${afterBurst.peakRSSMiB.toFixed(0)} MiB | < 200 MB |`,
      '',
      'Peak RSS is the kernel\'s high-water mark for the operator process (`/proc/1/status` VmHWM in its container),',
      'so it covers every moment of the run, not samples.',
      '',
    ].join('\n');
    publish('investigation', report);
  } finally {
    kubectl('delete', 'namespace', ns, '--wait=false');
  }
}

await main();
