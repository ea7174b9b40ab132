// The fallback verification, where the fast one (isolation-probe.ts) cannot be attributed: no warm
// prober on the suspect's node, or a suspect that could deceive a probe in its own network namespace.
// Proving that the deny-all policy is enforced, without touching the suspect: two short-lived canary
// pods in the suspect's namespace, one carrying the incident label (so the same policy selects it) and
// one without (the control), each serving TCP and trying to reach the API server; and a prober that
// connects to both. Enforced = the labelled canary is cut off both ways while the control is not. A
// control that is cut off too (e.g. a namespace default-deny) makes the answer inconclusive, never a pass.
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { isNotFound } from '../../kube/errors.js';
import { errorMessage } from '../../errors.js';
import { debugImage, NO_IMAGE_MESSAGE } from '../casefile-containers.js';
import type { PhaseContext } from '../phase.js';

const PORT = 8080;
const TIMEOUT_MS = 60_000;

import type { Verification, VerificationRecord } from './isolation-probe.js';

const restricted = {
  runAsNonRoot: true,
  runAsUser: 65532,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function probePod(name: string, image: string, labels: Record<string, string>, script: string): V1Pod {
  return {
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'casefile', 'casefile.dev/probe': 'isolation', ...labels } },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      containers: [{ name: 'probe', image, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script], securityContext: restricted }],
    },
  };
}

/**
 * Prints `egress=open|blocked`, then serves until deleted. A new pod is isolated only once the CNI has
 * programmed its address, so the attempt repeats for a few seconds: blocked at any point means enforced.
 */
const canaryScript = (apiHost: string, apiPort: string) =>
  `httpd -f -p ${PORT} -h /tmp & r=open; for i in 1 2 3 4 5 6 7 8 9 10; do ` +
  `if ! echo | nc -w 2 ${apiHost} ${apiPort} >/dev/null 2>&1; then r=blocked; break; fi; sleep 0.5; done; echo egress=$r; sleep 120`;

export async function verifyWithCanaries(ctx: PhaseContext, label: { key: string; value: string }, why: string): Promise<Verification> {
  const at = new Date().toISOString();
  const method = `${why}: fell back to canary pods: one with the incident label, one control without; TCP from a prober to each, and from each to the API server`;
  const image = debugImage(ctx);
  if (!image) return inconclusive(at, method, NO_IMAGE_MESSAGE);
  const namespace = ctx.investigation.metadata.namespace;
  const api = await apiEndpoint(ctx);
  const id = randomBytes(3).toString('hex');
  const names = { isolated: `casefile-probe-${id}-isolated`, control: `casefile-probe-${id}-control`, prober: `casefile-probe-${id}-prober` };
  const created: string[] = [];
  const create = async (pod: V1Pod) => {
    await ctx.kube.core.createNamespacedPod({ namespace, body: pod });
    created.push(pod.metadata!.name!);
    await ctx.caseFile.record('probe-pod-created', { pod: pod.metadata!.name, labels: pod.metadata!.labels }, 'NetworkIsolated');
  };
  try {
    await create(probePod(names.isolated, image, { [label.key]: label.value }, canaryScript(api.host, api.port)));
    await create(probePod(names.control, image, {}, canaryScript(api.host, api.port)));
    const [isolatedIP, controlIP] = await Promise.all([podIP(ctx, namespace, names.isolated), podIP(ctx, namespace, names.control)]);
    await create(
      probePod(names.prober, image, {}, `sleep 1; for t in isolated:${isolatedIP} control:${controlIP}; do ` +
        `if echo | nc -w 2 \${t#*:} ${PORT} >/dev/null 2>&1; then echo ingress-\${t%%:*}=open; else echo ingress-\${t%%:*}=blocked; fi; done`),
    );
    const [isolatedLog, controlLog, proberLog] = await Promise.all([
      logLine(ctx, namespace, names.isolated, /egress=\w+/),
      logLine(ctx, namespace, names.control, /egress=\w+/),
      logLine(ctx, namespace, names.prober, /ingress-control=\w+/),
    ]);
    const result = {
      isolatedEgress: isolatedLog.includes('egress=open') ? 'open' : 'blocked',
      controlEgress: controlLog.includes('egress=open') ? 'open' : 'blocked',
      isolatedIngress: proberLog.includes('ingress-isolated=open') ? 'open' : 'blocked',
      controlIngress: proberLog.includes('ingress-control=open') ? 'open' : 'blocked',
    };
    const details = [
      `egress to the API server ${api.host}:${api.port}: labelled canary ${result.isolatedEgress}, control ${result.controlEgress}`,
      `ingress to port ${PORT}: labelled canary ${result.isolatedIngress}, control ${result.controlIngress}`,
      'connections established before isolation are not tested: some CNIs let them live on',
    ];
    const record = (blocked: boolean): VerificationRecord => ({ blocked, at, method, details });
    if (result.isolatedEgress === 'open' || result.isolatedIngress === 'open') {
      return { outcome: 'leaking', summary: details.slice(0, 2).join('; '), record: record(false) };
    }
    if (result.controlEgress === 'blocked' || result.controlIngress === 'blocked') {
      return { outcome: 'inconclusive', summary: `the control canary was cut off too (${details.slice(0, 2).join('; ')})`, record: record(false) };
    }
    return { outcome: 'blocked', summary: `labelled canary refused in both directions while the control connected (${at})`, record: record(true) };
  } catch (err) {
    return inconclusive(at, method, `probe failed: ${errorMessage(err)}`);
  } finally {
    for (const name of created) {
      await ctx.kube.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }).catch((err: unknown) => {
        if (!isNotFound(err)) ctx.log.warn({ pod: name, err: errorMessage(err) }, 'probe pod not deleted');
      });
      await ctx.caseFile.record('probe-pod-deleted', { pod: name }, 'NetworkIsolated').catch(() => undefined);
    }
  }
}

function inconclusive(at: string, method: string, why: string): Verification {
  return { outcome: 'inconclusive', summary: why, record: { blocked: false, at, method, details: [why] } };
}

export async function apiEndpoint(ctx: PhaseContext): Promise<{ host: string; port: string }> {
  if (process.env.KUBERNETES_SERVICE_HOST) {
    return { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT ?? '443' };
  }
  const svc = await ctx.kube.core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
  return { host: svc.spec!.clusterIP!, port: String(svc.spec?.ports?.[0]?.port ?? 443) };
}

async function podIP(ctx: PhaseContext, namespace: string, name: string): Promise<string> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const pod = await ctx.kube.core.readNamespacedPod({ name, namespace });
    if (pod.status?.podIP && pod.status.phase === 'Running') return pod.status.podIP;
    const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
    if (waiting?.reason && /Err|Invalid|BackOff/.test(waiting.reason)) throw new Error(`probe pod ${name}: ${waiting.reason} ${waiting.message ?? ''}`);
    if (Date.now() > deadline) throw new Error(`probe pod ${name} did not start within ${TIMEOUT_MS / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function logLine(ctx: PhaseContext, namespace: string, name: string, until: RegExp): Promise<string> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const log = await ctx.kube.core.readNamespacedPodLog({ name, namespace }).catch(() => '');
    if (until.test(log)) return log;
    if (Date.now() > deadline) throw new Error(`probe pod ${name} printed no result within ${TIMEOUT_MS / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
