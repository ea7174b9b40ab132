// What every benchmark needs: API clients for the cluster KUBECONFIG points at, kubectl, the
// operator's memory as the kernel counts it, and percentiles.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { Kube } from '../src/kube/client.js';
import { CoreV1Api, CustomObjectsApi, KubeConfig, NetworkingV1Api, Watch, type V1Pod } from '@kubernetes/client-node';

export const kc = new KubeConfig();
kc.loadFromDefault();
// The same keep-alive connections casefile's own client uses: a limit measured with a handshake per
// request would flatter casefile's ratio.
export const kube = new Kube(kc);
export const core = kc.makeApiClient(CoreV1Api);
export const custom = kc.makeApiClient(CustomObjectsApi);
export const networking = kc.makeApiClient(NetworkingV1Api);

export function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run eval "$(e2e/cluster/env)" first`);
  return value;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const kubectl = (...args: string[]): string =>
  execFileSync('kubectl', args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });

/** RSS now and its high-water mark (VmHWM) of the operator process, from /proc/1/status in its container. */
export function operatorMemory(): { peakRSSMiB: number; rssMiB: number } {
  const status = kubectl('-n', 'casefile-system', 'exec', 'deploy/casefile-operator', '-c', 'operator', '--', '/usr/bin/node', '-e',
    "process.stdout.write(require('fs').readFileSync('/proc/1/status','utf8'))");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakRSSMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

/**
 * The operator's time histograms, scraped from its /metrics: `phase/<Phase>` (casefile_phase_duration_seconds),
 * `reconcile/<queue>` (casefile_reconcile_duration_seconds, and `requeue/<queue>` for its runs that ended
 * in a wait) and `queue/<queue>` (casefile_workqueue_queue_duration_seconds), each summed over labels.
 */
export function operatorSeconds(): Map<string, { sum: number; count: number }> {
  const text = kubectl('-n', 'casefile-system', 'exec', 'deploy/casefile-operator', '-c', 'operator', '--', '/usr/bin/node', '-e',
    "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))");
  const out = new Map<string, { sum: number; count: number }>();
  const add = (key: string, field: 'sum' | 'count', value: number) => {
    const cur = out.get(key) ?? { sum: 0, count: 0 };
    cur[field] += value;
    out.set(key, cur);
  };
  for (const m of text.matchAll(/^casefile_(phase|reconcile)_duration_seconds_(sum|count)\{(?:phase|queue)="([^"]+)",(?:status|outcome)="([^"]+)"\} ([0-9.e+-]+)$/gm)) {
    add(`${m[1]}/${m[3]}`, m[2] as 'sum' | 'count', Number(m[5]));
    if (m[1] === 'reconcile' && m[4] === 'requeue') add(`requeue/${m[3]}`, m[2] as 'sum' | 'count', Number(m[5]));
  }
  for (const m of text.matchAll(/^casefile_workqueue_queue_duration_seconds_(sum|count)\{queue="([^"]+)"\} ([0-9.e+-]+)$/gm)) add(`queue/${m[2]}`, m[1] as 'sum' | 'count', Number(m[3]));
  return out;
}

/** The p-th percentile (nearest rank). */
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

export const G = { group: 'casefile.dev', version: 'v1alpha1' };

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}`;
}

interface Sighting {
  kind: 'pod' | 'networkpolicy' | 'investigation';
  type: string;
  obj: any;
  at: number;
}

/**
 * What watches on a namespace's pods, NetworkPolicies and Investigations saw, and when (performance.now()
 * at arrival). "In place" is timed from these events, as any controller would see the change, for
 * casefile's runs and for the limits alike.
 */
export class Seen {
  private readonly log: Sighting[] = [];
  private waiters: { kind: Sighting['kind']; since: number; test: (obj: any, type: string) => boolean; resolve: (at: number) => void }[] = [];
  private readonly aborts: { abort(): void }[] = [];

  static async open(namespace: string): Promise<Seen> {
    const seen = new Seen();
    const paths: [Sighting['kind'], string][] = [
      ['pod', `/api/v1/namespaces/${namespace}/pods`],
      ['networkpolicy', `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`],
      ['investigation', `/apis/casefile.dev/v1alpha1/namespaces/${namespace}/investigations`],
    ];
    for (const [kind, path] of paths) {
      seen.aborts.push(await new Watch(kc).watch(path, {}, (type, obj) => seen.add({ kind, type, obj, at: performance.now() }), () => undefined));
    }
    return seen;
  }

  private add(s: Sighting): void {
    this.log.push(s);
    if (this.log.length > 20_000) this.log.splice(0, 10_000);
    this.waiters = this.waiters.filter((w) => {
      if (w.kind !== s.kind || s.at < w.since || !w.test(s.obj, s.type)) return true;
      w.resolve(s.at);
      return false;
    });
  }

  /** The arrival time of the first event since `since` that passes `test` (already seen, or awaited up to `timeoutMs`). */
  until(kind: Sighting['kind'], since: number, test: (obj: any, type: string) => boolean, timeoutMs = 120_000): Promise<number> {
    const hit = this.log.find((s) => s.kind === kind && s.at >= since && test(s.obj, s.type));
    if (hit) return Promise.resolve(hit.at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} event within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ kind, since, test, resolve: (at) => (clearTimeout(timer), resolve(at)) });
    });
  }

  /** Isolation in place: the deny-all policy ADDED and the pod carrying its label, whichever came last. */
  async isolated(since: number, pod: string, policy: string, labelKey: string): Promise<number> {
    const [p, l] = await Promise.all([
      this.until('networkpolicy', since, (o, t) => t === 'ADDED' && o.metadata.name === policy),
      this.until('pod', since, (o) => o.metadata.name === pod && o.metadata.labels?.[labelKey] !== undefined),
    ]);
    return Math.max(p, l);
  }

  condition(since: number, name: string, type: string, status: string): Promise<number> {
    return this.until('investigation', since, (o) => o.metadata.name === name && (o.status?.conditions ?? []).some((c: any) => c.type === type && c.status === status));
  }

  close(): void {
    for (const a of this.aborts) a.abort();
  }
}

/**
 * The physical limit of isolating a pod on this cluster: the two writes any isolation must make, by a
 * bare client holding a warm connection, timed to the same watch events as casefile's runs. `sequential`:
 * label, then the policy (the yardstick); otherwise both at once.
 */
export async function rawIsolation(seen: Seen, namespace: string, pod: string, i: number, sequential: boolean): Promise<number> {
  const key = `bench.casefile.dev/limit-${i}`;
  const name = `limit-${i}`;
  const body = { metadata: { name }, spec: { podSelector: { matchLabels: { [key]: 'isolated' } }, policyTypes: ['Ingress', 'Egress'] } };
  const label = () => core.patchNamespacedPod({ name: pod, namespace, body: [{ op: 'add', path: `/metadata/labels/${key.replace(/\//g, '~1')}`, value: 'isolated' }] });
  const create = () => networking.createNamespacedNetworkPolicy({ namespace, body });
  const started = performance.now();
  if (sequential) {
    await label();
    await create();
  } else {
    await Promise.all([label(), create()]);
  }
  const inPlace = (await seen.isolated(started, pod, name, key)) - started;
  await networking.deleteNamespacedNetworkPolicy({ name, namespace });
  await core.patchNamespacedPod({ name: pod, namespace, body: [{ op: 'remove', path: `/metadata/labels/${key.replace(/\//g, '~1')}` }] });
  return inPlace;
}

export function busyboxPod(name: string, labels: Record<string, string> = {}): V1Pod {
  return {
    metadata: { name, labels: { app: 'bench', ...labels } },
    spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: required('CASEFILE_BUSYBOX_IMAGE'), imagePullPolicy: 'Never', command: ['sleep', '100000'] }] },
  };
}

/** Creates pods and waits until every one is ready. */
export async function readyPods(namespace: string, names: string[]): Promise<void> {
  for (const name of names) await core.createNamespacedPod({ namespace, body: busyboxPod(name) });
  for (;;) {
    const list = await core.listNamespacedPod({ namespace });
    if (names.every((n) => list.items.find((p) => p.metadata?.name === n)?.status?.containerStatuses?.[0]?.ready)) return;
    await sleep(300);
  }
}

/** Creates an Investigation and returns its UID's first 8 hex digits (casefile's policy and label names). */
export async function createInvestigation(namespace: string, name: string, spec: object): Promise<string> {
  const inv = (await custom.createNamespacedCustomObject({ ...G, namespace, plural: 'investigations', body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name }, spec } })) as { metadata: { uid: string } };
  return inv.metadata.uid.replace(/-/g, '').slice(0, 8);
}

/** Deletes an Investigation and waits until casefile has released it and let it go. */
export async function deleteInvestigation(namespace: string, name: string): Promise<void> {
  await custom.deleteNamespacedCustomObject({ ...G, namespace, plural: 'investigations', name });
  for (;;) {
    try {
      await custom.getNamespacedCustomObject({ ...G, namespace, plural: 'investigations', name });
    } catch {
      return;
    }
    await sleep(50);
  }
}

/** The operator process's CPU seconds so far (utime + stime of PID 1 in its container). */
export function operatorCPUSeconds(): number {
  const stat = kubectl('-n', 'casefile-system', 'exec', 'deploy/casefile-operator', '-c', 'operator', '--', '/usr/bin/node', '-e',
    "process.stdout.write(require('fs').readFileSync('/proc/1/stat','utf8'))");
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A row of casefile's figure against the limit: p50 and p95 of each, and their ratio. */
export function ratioRow(label: string, casefile: number[], limit: number[], target: string): string {
  const r = (p: number) => (pct(casefile, p) / pct(limit, p)).toFixed(2);
  return `| ${label} | ${casefile.length} | ${pct(casefile, 50).toFixed(0)} / ${pct(casefile, 95).toFixed(0)} ms | ${pct(limit, 50).toFixed(0)} / ${pct(limit, 95).toFixed(0)} ms | ${r(50)} / ${r(95)} | ${target} |`;
}

export const RATIO_HEADER = ['| measure | runs | casefile p50 / p95 | limit p50 / p95 | ratio p50 / p95 | target |', '|---|---:|---:|---:|---:|---|'];

/**
 * Puts one benchmark's section into bench/results.md, between its own markers: a benchmark run alone
 * (`npm run bench -- contain`) replaces its section and keeps the others' last figures.
 */
export function publish(name: string, markdown: string): void {
  const file = 'bench/results.md';
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (!text.startsWith('# casefile benchmarks')) text = `${RESULTS_HEADER}\n${text.includes('<!-- bench:') ? text.slice(text.indexOf('<!-- bench:')) : ''}`;
  const at = text.indexOf(begin);
  const earlier = text.indexOf(EARLIER);
  if (at >= 0) text = text.slice(0, at) + block + text.slice(text.indexOf(end, at) + end.length);
  else if (earlier >= 0) text = `${text.slice(0, earlier).trimEnd()}\n\n${block}\n\n${text.slice(earlier)}`;
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
  process.stdout.write(`${markdown}\n`);
}

/** Where figures measured before the limits were (no yardstick) begin: new sections go above it. */
const EARLIER = '<!-- earlier -->';

const RESULTS_HEADER = `# casefile benchmarks

Regenerated by \`npm run bench\` (\`contain verify intake scale\`, within 15 minutes) or one at a time
(\`npm run bench -- <name>\`; also \`investigation\` and \`live\`), against the local cluster from
\`e2e/cluster\` with the operator deployed from the checkout. Every latency is printed beside the
physical limit of the same work on the same cluster, measured in the same run, interleaved, and their
ratio. Each section says when and on what machine it was measured.
`;
