// Proving that the deny-all policy is enforced on the suspect itself, from its own network namespace,
// in about the time kube-router takes to program it (nothing starts a pod on this path):
//   - casefile's ephemeral container beside the suspect shares the suspect's network namespace. It is
//     the debug container DebugContainerLaunched uses later (same name, same spec, adopted there), or,
//     when live capture is off or cannot share the target's processes, a probe-only container with no
//     capability at all. Either is recorded in custody here: under ContainFirst this runs before the
//     manifest is captured, so the manifest will show it.
//   - by exec there, netprobe.js (src/live/netprobe.ts) listens on a free port, checks it answers on
//     127.0.0.1, and tries TCP to the API server until an attempt fails or the window ends;
//   - the operator meanwhile tries TCP to that listener at the suspect's pod IP until refused, and the
//     two controls: the operator to the same API server address, and the operator to the warm prober
//     (config/prober, a listener that is not isolated) on the suspect's node.
// Decided by verdict.ts. Where this cannot be attributed (no warm prober on the node; a suspect with
// NET_ADMIN or privileged, which could filter its own namespace and fake a refusal) the canary pods of
// canary-probe.ts run instead. A probe that cannot run gives inconclusive with the reason, never a pass.
import { PassThrough } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import { errorMessage } from '../../errors.js';
import { execStream } from '../../kube/exec.js';
import { tryConnect, type Attempt } from '../../live/netprobe.js';
import { debugImage, describeState, NO_IMAGE_MESSAGE } from '../casefile-containers.js';
import type { PhaseContext } from '../phase.js';
import { apiEndpoint, verifyWithCanaries } from './canary-probe.js';
import { decide, type Observations } from './verdict.js';
import { canFilterOwnNetwork, takeProbeContainer } from './probe-container.js';

export interface VerificationRecord {
  blocked: boolean;
  at: string;
  method: string;
  details: string[];
}

export interface Verification {
  outcome: 'blocked' | 'leaking' | 'inconclusive';
  summary: string;
  record: VerificationRecord;
}

/** The warm prober (config/prober): a DaemonSet in the operator's namespace, one listener per node. */
export const PROBER_SELECTOR = 'app.kubernetes.io/name=casefile-prober';
export const PROBER_PORT = 9901;
/**
 * How long each direction is retried after the policy is in place: on the local cluster kube-router
 * had programmed the policy before the first attempt (docs/security.md); blocked at any attempt means enforced, and "leaking"
 * is said only of a direction still open when this has passed.
 */
export const WINDOW_MS = 5_000;
/** One connection attempt: in-cluster connects take about a millisecond; the controls must connect within the same. */
export const ATTEMPT_MS = 500;
/** Starting (or finding) casefile's ephemeral container. */
const CONTAINER_START_MS = 30_000;
/** Between exec attempts while the container starts, and between reads of its status meanwhile. */
const EXEC_RETRY_MS = 50;
const STATUS_EVERY_MS = 500;
const NETPROBE = '/app/dist/live/netprobe.js';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function verifyIsolation(ctx: PhaseContext, label: { key: string; value: string }): Promise<Verification> {
  const at = new Date().toISOString();
  const method = 'from the suspect\'s own network namespace (casefile\'s ephemeral container): TCP to the API server, and from the operator to a listener there; controls: the operator to the same API server address and to the warm prober on the suspect\'s node';
  const inconclusive = (why: string): Verification => ({ outcome: 'inconclusive', summary: why, record: { blocked: false, at, method, details: [why] } });
  const image = debugImage(ctx);
  if (!image) return inconclusive(NO_IMAGE_MESSAGE);
  try {
    const pod = await ctx.livePod({ fresh: true });
    if (!pod) return inconclusive('the suspect pod is gone: there is nothing to probe');
    const podIP = pod.status?.podIP;
    const node = pod.spec?.nodeName;
    if (!podIP || !node) return inconclusive('the suspect pod has no IP or node: there is nothing to probe');
    if (pod.spec?.hostNetwork) return { outcome: 'leaking', summary: 'the suspect uses the host network, where NetworkPolicy does not apply', record: { blocked: false, at, method, details: ['pod.spec.hostNetwork is true'] } };
    const deceiver = canFilterOwnNetwork(pod);
    if (deceiver) return verifyWithCanaries(ctx, label, `container ${deceiver} of the suspect could filter its own network namespace and fake a refusal`);
    const started = Date.now();
    const [prober, container, api] = await Promise.all([warmProber(ctx, node), takeProbeContainer(ctx, pod, image), apiEndpoint(ctx)]);
    const containerMs = Date.now() - started;
    if (!prober) return verifyWithCanaries(ctx, label, `no ready warm prober (${PROBER_SELECTOR}) on node ${node}`);
    if ('problem' in container) return inconclusive(`casefile's probe container could not run in the suspect pod: ${container.problem}`);
    // Under ContainFirst the manifest is captured after this: custody says what casefile added to the pod.
    if (container.custody) await ctx.caseFile.record('debug-container-added', container.custody, 'NetworkIsolated');
    const egressTarget = `${api.host.includes(':') ? `[${api.host}]` : api.host}:${api.port}`;
    const observations = await probe(ctx, pod, container.name, egressTarget, { host: api.host, port: Number(api.port) }, prober);
    const decision = decide(observations.seen, { egressTarget, suspect: observations.listener, control: `${prober}:${PROBER_PORT}` });
    const details = [...decision.details, `probe container ${container.name} in pod ${pod.metadata!.name}${container.added ? ' (added for this verification)' : ' (already there)'}`];
    ctx.log.info({ outcome: decision.outcome, containerMs, runningMs: observations.readyAt && observations.readyAt - started, totalMs: Date.now() - started, container: container.name, added: container.added }, 'isolation verified from the suspect\'s network namespace');
    return { outcome: decision.outcome, summary: decision.summary, record: { blocked: decision.outcome === 'blocked', at, method, details } };
  } catch (err) {
    return inconclusive(`probe failed: ${errorMessage(err)}`);
  }
}

/** The pod IP of a ready warm prober on `node`, if the optional component is installed. */
async function warmProber(ctx: PhaseContext, node: string): Promise<string | undefined> {
  const pods = await ctx.kube.core.listNamespacedPod({ namespace: ctx.config.signingNamespace, labelSelector: PROBER_SELECTOR, fieldSelector: `spec.nodeName=${node}` });
  const ready = pods.items.find((p) => !p.metadata?.deletionTimestamp && p.status?.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  return ready?.status?.podIP;
}

const FAILED_START = /Err|BackOff|Invalid/;
/** What the kubelet answers an exec into a container that has not started yet. */
const NOT_STARTED = /container not found|not running|No such container|is not running|does not exist/i;

type Event = { event?: string; port?: number; loopback?: boolean } & Partial<Attempt>;

/**
 * Runs netprobe in the container as soon as it runs. The kubelet reports a started container only at
 * its next relist (up to a second later), so this tries the exec itself every 50 ms (refused in about
 * 10 ms while the container has not started: cheap, and the start is seen within 60 ms) and reads the
 * pod's status at most every 500 ms, only to stop on a failure that waiting cannot fix: an image that
 * cannot be pulled, a container that exited, a pod that is gone.
 * `onEvent` sees each line; when `stop` settles the exec is closed, which closes netprobe's stdin:
 * its listener goes away with it.
 */
async function runNetprobe(
  ctx: PhaseContext,
  pod: V1Pod,
  container: string,
  command: string[],
  timeoutMs: number,
  onEvent: (e: Event) => void,
  stop: Promise<void>,
): Promise<{ reported: boolean; error?: string }> {
  const target = { namespace: pod.metadata!.namespace!, pod: pod.metadata!.name!, container };
  const deadline = Date.now() + CONTAINER_START_MS;
  let statusReadAt = -Infinity;
  for (;;) {
    let failure: string;
    try {
      // A stdin that never ends: netprobe sees it close when the operator closes the exec.
      const exec = await execStream(ctx.kube, target, command, timeoutMs, new PassThrough());
      void stop.then(() => exec.abort());
      let reported = false;
      let buffered = '';
      try {
        for await (const chunk of exec.stdout) {
          buffered += chunk.toString('utf8');
          let nl;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            let event: Event;
            try {
              event = JSON.parse(line) as Event;
            } catch {
              continue;
            }
            reported = true;
            onEvent(event);
          }
        }
      } finally {
        exec.abort();
      }
      if (reported) return { reported };
      const r = await exec.result.then((x) => `exit ${x.exitCode}: ${x.stderrTail.trim() || 'no output'}`, (err: unknown) => errorMessage(err));
      failure = r;
    } catch (err) {
      failure = errorMessage(err);
    }
    if (!NOT_STARTED.test(failure)) return { reported: false, error: `netprobe did not report (${failure})` };
    const past = Date.now() > deadline;
    if (past || Date.now() - statusReadAt >= STATUS_EVERY_MS) {
      statusReadAt = Date.now();
      const current = await ctx.livePod({ fresh: true });
      if (!current) return { reported: false, error: `the suspect pod disappeared while ${container} was starting` };
      const st = current.status?.ephemeralContainerStatuses?.find((x) => x.name === container);
      if (st?.state?.terminated || FAILED_START.test(st?.state?.waiting?.reason ?? '')) return { reported: false, error: `${container} cannot run: ${describeState(st)}` };
      if (past) return { reported: false, error: `${container} not running after ${CONTAINER_START_MS / 1000} s (${describeState(st)}; last exec: ${failure})` };
    }
    await sleep(EXEC_RETRY_MS);
  }
}

/** Runs the four observations concurrently; returns when each has settled (blocked, or its window ended). */
async function probe(
  ctx: PhaseContext,
  pod: V1Pod,
  container: string,
  egressTarget: string,
  api: { host: string; port: number },
  proberIP: string,
): Promise<{ seen: Observations; listener: string; readyAt?: number }> {
  const seen: Observations = { egress: [], ingress: [], egressControl: [], ingressControl: [] };
  const podIP = pod.status!.podIP!;
  const windowMs = WINDOW_MS;
  let listener = `${podIP}:?`;
  let readyAt: number | undefined;
  /** Each until `stop` says so or the window ends, every 100 ms. */
  const repeat = async (into: Attempt[], host: string, port: number, stop: (a: Attempt) => boolean) => {
    const deadline = Date.now() + windowMs;
    for (;;) {
      const a = await tryConnect(host, port, ATTEMPT_MS);
      into.push(a);
      if (stop(a) || Date.now() >= deadline) return;
      await sleep(100);
    }
  };
  // Controls run alongside: each until it connects or the window ends.
  const controls = Promise.all([
    repeat(seen.egressControl, api.host, api.port, (a) => a.result === 'open'),
    repeat(seen.ingressControl, proberIP, PROBER_PORT, (a) => a.result === 'open'),
  ]);
  let ingress: Promise<void> | undefined;
  let finished: () => void = () => undefined;
  const stop = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const run = await runNetprobe(
    ctx,
    pod,
    container,
    ['/usr/bin/node', NETPROBE, 'suspect', '--egress', egressTarget, '--window-ms', String(windowMs), '--attempt-ms', String(ATTEMPT_MS)],
    windowMs + 4 * ATTEMPT_MS + 15_000,
    (event) => {
      if (event.event === 'listening' && typeof event.port === 'number' && seen.loopback === undefined) {
        seen.loopback = event.loopback === true;
        readyAt = Date.now();
        listener = `${podIP}:${event.port}`;
        // Ingress: until refused, or the window ends (only to a listener that answered on loopback).
        if (seen.loopback) ingress = repeat(seen.ingress, podIP, event.port, (a) => a.result !== 'open');
      } else if (event.event === 'egress' && (event.result === 'open' || event.result === 'blocked' || event.result === 'error')) {
        seen.egress.push({ result: event.result, detail: String(event.detail ?? ''), ms: Number(event.ms ?? 0) });
      } else if (event.event === 'egress-done') {
        // Egress has settled; once ingress has too, the exec closes.
        void (ingress ?? Promise.resolve()).then(finished);
      }
    },
    stop,
  ).then((r) => r, (err: unknown) => ({ reported: false, error: errorMessage(err) }));
  await Promise.all([ingress, controls]);
  if (!run.reported) seen.egress.push({ result: 'error', detail: run.error ?? 'netprobe did not report', ms: 0 });
  return { seen, listener, readyAt };
}
