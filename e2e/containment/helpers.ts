// Shared pieces of the containment e2e suites: the test workloads (a suspect Deployment that serves
// TCP and logs its own egress attempts, an echo server to reach, a client to probe from), TCP checks
// run from the client (never from the suspect), reading the suspect's egress verdicts from its log,
// and waiting for a condition while telling "not yet" from "this operator never runs that phase".
import { randomBytes } from 'node:crypto';
import { expect } from '@jest/globals';
import { AppsV1Api, AuthorizationV1Api, NetworkingV1Api, type V1NetworkPolicy, type V1Pod } from '@kubernetes/client-node';
import { apiError, assertPodCanProgress, GiveUp, kubeFromEnv, podExec, podSummary, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxContainer,
  busyboxPod,
  conditionOf,
  core,
  getInvestigation,
  kubectlRun,
  sha256Check,
  type ConditionType,
  type Investigation,
} from '../operator/support.js';

export const kc = kubeFromEnv();
export const apps = kc.makeApiClient(AppsV1Api);
export const networking = kc.makeApiClient(NetworkingV1Api);
const authz = kc.makeApiClient(AuthorizationV1Api);

/** Every containment test's own budget (jest ignores the per-project testTimeout). */
export const TEST_TIMEOUT_MS = 240_000;
/** The containment contract: traffic is cut (and restored) within 10 s of the condition turning True. */
export const ENFORCEMENT_WINDOW_MS = 10_000;
export const PORT = 8080;

export const token = (): string => randomBytes(4).toString('hex');

/** The per-Investigation short id: first 8 hex of the UID without dashes. */
export const shortId = (inv: Investigation): string => inv.metadata.uid.replace(/-/g, '').slice(0, 8);
export const incidentKey = (inv: Investigation): string => `casefile.dev/incident-${shortId(inv)}`;
export const policyName = (inv: Investigation): string => `casefile-${shortId(inv)}`;

// ---- workloads ----

/** A busybox TCP server on 8080 (httpd answers anything, so `nc` connects and exits 0). */
const SERVE = `httpd -f -p ${PORT} -h /tmp &`;

/** The echo-server pod the suspect tries to reach; returns its IP. */
export async function startEchoServer(namespace: string): Promise<string> {
  await core.createNamespacedPod({ namespace, body: busyboxPod('echo-server', `${SERVE} wait`) });
  const pod = await waitForPodReady(kc, namespace, 'echo-server', 90_000);
  return pod.status!.podIP!;
}

/** The pod the tests probe from (exec in it is fine: it is not a suspect). */
export async function startClient(namespace: string): Promise<void> {
  await core.createNamespacedPod({ namespace, body: busyboxPod('client', 'exec sleep 3600') });
  await waitForPodReady(kc, namespace, 'client', 90_000);
}

/**
 * The suspect workload: serves on 8080 and, once a second, tries to connect to $TARGET_IP:8080 and
 * prints `egress=open|blocked <unix seconds>`. Its egress is read from that log: the tests never
 * exec in a suspect, just as the operator never does.
 */
const WEB_SCRIPT =
  `${SERVE} while true; do ` +
  `if echo | nc -w 2 "$TARGET_IP" ${PORT} >/dev/null 2>&1; then echo "egress=open $(date +%s)"; else echo "egress=blocked $(date +%s)"; fi; ` +
  `sleep 1; done`;

export interface WebPods {
  suspect: V1Pod;
  sibling: V1Pod;
}

/** Deployment `web` (2 replicas, app=web); returns replica #1 (the suspect) and #2 (its sibling), both Ready with IPs. */
export async function startWeb(namespace: string, targetIP: string, opts: { serviceAccountName?: string } = {}): Promise<WebPods> {
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            terminationGracePeriodSeconds: 0,
            automountServiceAccountToken: false,
            ...(opts.serviceAccountName ? { serviceAccountName: opts.serviceAccountName } : {}),
            containers: [busyboxContainer('app', WEB_SCRIPT, { env: [{ name: 'TARGET_IP', value: targetIP }] })],
          },
        },
      },
    },
  });
  let pods: V1Pod[] = [];
  await waitFor(
    `2 Ready replicas of web in ${namespace}`,
    async () => {
      pods = (await core.listNamespacedPod({ namespace, labelSelector: 'app=web' })).items.filter((p) => !p.metadata?.deletionTimestamp);
      pods.forEach(assertPodCanProgress);
      return pods.map((p) => ({ name: p.metadata?.name, ip: p.status?.podIP, ...podSummary(p) }));
    },
    {
      timeoutMs: 90_000,
      until: () =>
        pods.length === 2 && pods.every((p) => p.status?.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')),
    },
  );
  pods.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  return { suspect: pods[0]!, sibling: pods[1]! };
}

// ---- traffic ----

/**
 * How one TCP attempt from the client pod ended. A policy drop times out; a policy reject (kube-router
 * answers with ICMP port-unreachable) reads as refused, as does a port nobody listens on. So "not
 * connected" proves a block only next to a baseline that connected to the same listener before, and
 * a connect again after release (see expectBlockedBetween). Anything else (exec failure, no nc,
 * a bad address) throws rather than counting as blocked.
 */
export type TcpOutcome = 'connected' | 'refused' | 'timed-out' | 'unreachable';

export async function tcpAttempt(namespace: string, ip: string): Promise<TcpOutcome> {
  const started = Date.now();
  const r = await podExec(kc, namespace, 'client', 'app', ['sh', '-c', `echo | nc -w 2 ${ip} ${PORT} 2>&1 >/dev/null`], 20_000);
  if (r.exitCode === 0) return 'connected';
  const said = `${r.stdout}${r.stderr}`.trim();
  if (/refused/i.test(said)) return 'refused';
  if (/timed out|timeout/i.test(said) || (said === '' && Date.now() - started >= 1900)) return 'timed-out';
  if (/unreachable|no route/i.test(said)) return 'unreachable';
  throw new Error(`nc from client to ${ip}:${PORT} failed in an unexpected way (exit ${r.exitCode}): ${JSON.stringify(said)}`);
}

/** One TCP attempt from the client pod: true if it connected, false if refused, timed out or unreachable. */
export async function connects(namespace: string, ip: string): Promise<boolean> {
  return (await tcpAttempt(namespace, ip)) === 'connected';
}

/**
 * A block that proves itself: `pod` (which serves on PORT from container start) accepted a
 * connection before `contain`, refuses or drops them while contained, and accepts again after
 * `release`, without its container restarting in between. A listener that never started, or died,
 * would fail the baseline or the reconnect.
 */
export async function expectBlockedBetween(
  namespace: string,
  pod: string,
  steps: { contain: () => Promise<void>; whileContained?: () => Promise<void>; release: () => Promise<void> },
): Promise<void> {
  const before = await core.readNamespacedPod({ name: pod, namespace });
  const ip = before.status!.podIP!;
  const restarts = (p: V1Pod) => p.status?.containerStatuses?.find((c) => c.name === 'app')?.restartCount;
  await waitConnects(namespace, `${pod} before containment (baseline)`, ip, true, 30_000);
  await steps.contain();
  await waitConnects(namespace, `${pod} while contained`, ip, false, 30_000);
  expect(['refused', 'timed-out', 'unreachable']).toContain(await tcpAttempt(namespace, ip));
  await steps.whileContained?.();
  await steps.release();
  await waitConnects(namespace, `${pod} after release`, ip, true, 60_000);
  const after = await core.readNamespacedPod({ name: pod, namespace });
  expect({ uid: after.metadata?.uid, restarts: restarts(after) }).toEqual({ uid: before.metadata?.uid, restarts: restarts(before) });
}

/** Waits (bounded) until a TCP attempt from the client to ip gives `want`. */
export async function waitConnects(namespace: string, what: string, ip: string, want: boolean, timeoutMs: number): Promise<void> {
  await waitFor(`client -> ${what} (${ip}:${PORT}) to ${want ? 'connect' : 'be blocked'}`, () => connects(namespace, ip), {
    timeoutMs,
    intervalMs: 250,
    until: (ok) => ok === want,
  });
}

/** Repeated attempts over `ms`: every one must give `want` (a state that holds, not a lucky sample). */
export async function expectConnectsThroughout(namespace: string, what: string, ip: string, want: boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  const seen: boolean[] = [];
  do {
    seen.push(await connects(namespace, ip));
    await new Promise((r) => setTimeout(r, 500));
  } while (Date.now() < end);
  expect({ what, attempts: seen.map((ok) => (ok ? 'connected' : 'blocked')) }).toEqual({ what, attempts: seen.map(() => (want ? 'connected' : 'blocked')) });
}

/** Remaining time until a deadline, for a bounded wait that must finish by it (at least one attempt is made). */
export const until = (deadline: number): number => Math.max(0, deadline - Date.now());

/** The suspect's egress verdicts, oldest first (`open` or `blocked`). */
export async function egressLog(namespace: string, pod: string): Promise<('open' | 'blocked')[]> {
  const log = await core.readNamespacedPodLog({ name: pod, namespace, container: 'app' });
  return log
    .split('\n')
    .map((l) => /^egress=(open|blocked) \d+$/.exec(l.trim())?.[1] as 'open' | 'blocked' | undefined)
    .filter((v): v is 'open' | 'blocked' => v !== undefined);
}

/**
 * Waits until the suspect logs `egress=<want>` in a line after the first `after` lines (lines printed
 * before the moment of interest do not count); returns the number of lines then.
 */
export async function waitEgress(namespace: string, pod: string, want: 'open' | 'blocked', after: number, timeoutMs: number): Promise<number> {
  let lines: ('open' | 'blocked')[] = [];
  await waitFor(
    `suspect ${pod} to log egress=${want} after line ${after}`,
    async () => {
      lines = await egressLog(namespace, pod);
      return lines.slice(after);
    },
    { timeoutMs, intervalMs: 250, until: (fresh) => fresh.length > 0 && fresh[fresh.length - 1] === want },
  );
  return lines.length;
}

// ---- Investigations ----

function summary(inv: Investigation): string {
  return JSON.stringify({ phase: inv.status?.phase, conditions: (inv.status?.conditions ?? []).map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`) });
}

/**
 * Waits for condition `type` to reach `status`; returns the Investigation and when the condition was
 * first seen so (polled every 250 ms). Stops at once, saying so, when the case settled (Ready True or
 * False at the current generation) without the operator ever reporting `type`: the deployed operator
 * does not run that phase.
 */
export async function waitForConditionObserved(
  namespace: string,
  name: string,
  type: ConditionType,
  status: 'True' | 'False',
  timeoutMs = 120_000,
): Promise<{ inv: Investigation; observedAt: number }> {
  let inv: Investigation | undefined;
  await waitFor(
    `Investigation ${namespace}/${name} condition ${type}=${status}`,
    async () => {
      inv = await getInvestigation(namespace, name);
      const ready = conditionOf(inv, 'Ready');
      const settled = (ready?.status === 'True' || ready?.status === 'False') && ready.observedGeneration === inv.metadata.generation;
      if (!conditionOf(inv, type) && settled) {
        throw new GiveUp(`the case settled (Ready=${ready!.status} ${ready!.reason} at generation ${inv.metadata.generation}) and the operator never reported ${type}: the deployed operator does not run that phase. ${summary(inv)}`);
      }
      return summary(inv);
    },
    { timeoutMs, intervalMs: 250, until: () => inv !== undefined && conditionOf(inv, type)?.status === status },
  );
  return { inv: inv!, observedAt: Date.now() };
}

/** Sets spec.release: true with a merge patch, as a user would with kubectl. */
export async function requestRelease(namespace: string, name: string): Promise<void> {
  const r = await kubectlRun(['-n', namespace, 'patch', 'investigation', name, '--type', 'merge', '-p', '{"spec":{"release":true}}']);
  if (r.exitCode !== 0) throw new Error(`kubectl patch investigation ${name} release=true exited ${r.exitCode}: ${r.stderr.trim()}`);
}

/** The NetworkPolicy, or undefined if it does not exist. */
export async function readPolicy(namespace: string, name: string): Promise<V1NetworkPolicy | undefined> {
  try {
    return await networking.readNamespacedNetworkPolicy({ name, namespace });
  } catch (err) {
    if (apiError(err).code === 404) return undefined;
    throw err;
  }
}

/** The pod's labels as they are now. */
export async function podLabels(namespace: string, name: string): Promise<Record<string, string>> {
  return (await core.readNamespacedPod({ name, namespace })).metadata?.labels ?? {};
}

/** `sha256sum -c MANIFEST.sha256` passes in the case directory, with every line OK. */
export async function expectCaseVerifies(caseDir: string): Promise<void> {
  const check = await sha256Check(caseDir);
  expect({ caseDir, exitCode: check.exitCode, stderr: check.stderr }).toEqual({ caseDir, exitCode: 0, stderr: '' });
  const lines = check.stdout.split('\n').filter(Boolean);
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.filter((l) => !/: OK$/.test(l))).toEqual([]);
}

// ---- authorization ----

/** The API server's answer: may ServiceAccount `sa` of `namespace` do `verb` on `resource` there? */
export async function allowed(namespace: string, sa: string, verb: string, resource: string): Promise<boolean> {
  const review = await authz.createSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${namespace}:${sa}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
        resourceAttributes: { namespace, verb, resource },
      },
    },
  });
  return review.status?.allowed === true;
}

/** The authorizer works from a watch cache: wait (bounded) for the answer to settle on `want`. */
export async function waitAllowed(namespace: string, sa: string, verb: string, resource: string, want: boolean, timeoutMs = 15_000): Promise<void> {
  await waitFor(`SubjectAccessReview ${verb} ${resource} for ${namespace}:${sa} to be ${want ? 'allowed' : 'denied'}`, () => allowed(namespace, sa, verb, resource), {
    timeoutMs,
    until: (v) => v === want,
  });
}
