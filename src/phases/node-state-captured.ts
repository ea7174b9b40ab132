// NodeStateCaptured: a short-lived collector pod pinned to the target's node (only when
// spec.evidence.node.enabled) reads what only the node knows: the container's host PID, cgroup,
// runtime state and the overlay upper layer (what the container added or changed). It mounts the
// host's /proc and the runtime's directories read-only, runs in the operator's collector namespace
// (the suspect's namespace may forbid it), and is removed after its run; both go into custody.
import type { V1Pod } from '@kubernetes/client-node';
import { isForbidden, isNotFound } from '../kube/errors.js';
import { bareContainerID } from '../kube/container-id.js';
import { errorMessage } from '../errors.js';
import { COLLECTOR_ENTRY, runCollector, walkSeconds } from './collector-run.js';
import { collectorSecurityContext, DEBUG_CAPABILITIES, debugImage, idleSeconds, NO_IMAGE_MESSAGE, waitForContainer } from './casefile-containers.js';
import type { Phase, PhaseContext, PhaseOutcome } from './phase.js';
import { nodeActionRefusal } from './shared/node-actions.js';

/** containerd's CRI shim state under its state dir, one directory per container ID (init.pid, config.json). */
const TASK_BUNDLES = 'io.containerd.runtime.v2.task/k8s.io';
/** The host is seen under this prefix in the collector pod: host path P is /host/P. */
const HOST_PREFIX = '/host';

export const nodeStateCaptured: Phase = {
  condition: 'NodeStateCaptured',
  needsTarget: true,
  enabled: (spec) => spec.evidence.node.enabled,
  run: captureNode,
};

async function captureNode(ctx: PhaseContext): Promise<PhaseOutcome> {
  const pod = await ctx.livePod({ fresh: true });
  const node = ctx.status.target?.node;
  if (!pod || !node) return { status: 'False', reason: 'TargetGone', message: 'the target pod no longer exists: its container state on the node is gone' };
  const image = debugImage(ctx);
  if (!image) return { status: 'False', reason: 'NoDebugImage', message: NO_IMAGE_MESSAGE };
  const refusal = await nodeActionRefusal(ctx, 'node-collector');
  if (refusal) return refusal;

  const namespace = ctx.config.collectorNamespace;
  await removeLeftovers(ctx, namespace);
  const name = `casefile-node-${ctx.investigation.metadata.uid.slice(0, 8)}-${collectorRuns(ctx) + 1}`;
  const timeoutSeconds = ctx.spec.evidence.live.timeoutSeconds;
  const runtimeDirs = [ctx.config.runtimeState, ctx.config.runtimeRoot];
  const manifest = nodeCollectorPod({ name, namespace, node, image, timeoutSeconds, runtimeDirs, investigation: ctx.investigation.metadata });
  try {
    await ctx.kube.core.createNamespacedPod({ namespace, body: manifest });
  } catch (err) {
    const message = errorMessage(err);
    if (isNotFound(err)) return { status: 'False', reason: 'CollectorNamespaceMissing', message: `namespace ${namespace} does not exist: apply config/ (it creates it) or set --collector-namespace` };
    if (isForbidden(err) && /PodSecurity/i.test(message)) {
      return { status: 'False', reason: 'PodSecurityRejected', message: `PodSecurity of namespace ${namespace} refused the node collector (${message}); label it pod-security.kubernetes.io/enforce=privileged (config/ does)` };
    }
    if (isForbidden(err)) return { status: 'False', reason: 'Forbidden', message: `creating the node collector pod was refused: ${message}` };
    throw err;
  }
  await ctx.caseFile.record('node-collector-created', { namespace, pod: name, node, image, hostPID: true, readOnlyHostPaths: ['/proc', ...runtimeDirs], capabilities: DEBUG_CAPABILITIES }, 'NodeStateCaptured');
  ctx.status.live = { ...ctx.status.live, nodeCollector: { namespace, pod: name } };
  try {
    const started = await waitRunning(ctx, namespace, name, timeoutSeconds * 1000);
    if (started) return started;
    return await collect(ctx, namespace, name);
  } finally {
    await removeCollector(ctx, namespace, name);
  }
}

async function collect(ctx: PhaseContext, namespace: string, pod: string): Promise<PhaseOutcome> {
  const command = [
    '/usr/bin/node',
    COLLECTOR_ENTRY,
    'node',
    '--container-id', bareContainerID(ctx.status.target?.containerID),
    '--host-proc', `${HOST_PREFIX}/proc`,
    '--host-prefix', HOST_PREFIX,
    '--runtime-state', `${ctx.config.runtimeState}/${TASK_BUNDLES}`,
    '--max-file-bytes', String(ctx.spec.evidence.live.maxFileBytes),
    '--walk-seconds', String(walkSeconds(ctx.spec.evidence.live.timeoutSeconds)),
  ];
  return runCollector(ctx, {
    phase: 'NodeStateCaptured',
    prefix: 'node',
    target: { namespace, pod, container: 'collector' },
    command,
    afterCapture: (base) => recordHostPID(ctx, `${base}/host-process.json`),
  });
}

export function nodeCollectorPod(o: {
  name: string;
  namespace: string;
  node: string;
  image: string;
  timeoutSeconds: number;
  /** containerd's state and root directories: mounted read-only at the same paths under /host. */
  runtimeDirs: string[];
  investigation: { name: string; namespace: string; uid: string };
}): V1Pod {
  const hostDirs = ['/proc', ...o.runtimeDirs];
  const volumeName = (i: number) => (i === 0 ? 'host-proc' : `runtime-${i}`);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      namespace: o.namespace,
      labels: { 'app.kubernetes.io/managed-by': 'casefile', 'app.kubernetes.io/component': 'node-collector', 'casefile.dev/investigation-uid': o.investigation.uid },
      annotations: { 'casefile.dev/investigation': `${o.investigation.namespace}/${o.investigation.name}` },
    },
    spec: {
      // nodeName skips the scheduler: the collector reaches a cordoned node, and only that node.
      nodeName: o.node,
      hostPID: true,
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 0,
      activeDeadlineSeconds: idleSeconds(o.timeoutSeconds),
      tolerations: [{ operator: 'Exists' }],
      containers: [
        {
          name: 'collector',
          image: o.image,
          imagePullPolicy: 'IfNotPresent',
          command: ['/bin/sleep', String(idleSeconds(o.timeoutSeconds))],
          securityContext: collectorSecurityContext(),
          resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '512Mi' } },
          volumeMounts: hostDirs.map((path, i) => ({ name: volumeName(i), mountPath: `${HOST_PREFIX}${path}`, readOnly: true })),
        },
      ],
      volumes: hostDirs.map((path, i) => ({ name: volumeName(i), hostPath: { path, type: 'Directory' } })),
    },
  };
}

function collectorRuns(ctx: PhaseContext): number {
  return ctx.caseFile.custodyRecords().filter((r) => r.action === 'node-collector-created').length;
}

const NOT_STARTED = { image: 'CollectorImageUnavailable', timeout: 'CollectorNotStarted', exited: 'CollectorFailed', gone: 'CollectorFailed' } as const;

async function waitRunning(ctx: PhaseContext, namespace: string, name: string, timeoutMs: number): Promise<PhaseOutcome | undefined> {
  const start = await waitForContainer(async () => {
    const pod = await ctx.kube.core.readNamespacedPod({ name, namespace }).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    return pod && { status: pod.status?.containerStatuses?.[0], failed: pod.status?.phase === 'Failed' ? (pod.status.reason ?? 'failed') : undefined };
  }, timeoutMs);
  if ('running' in start) return undefined;
  return { status: 'False', reason: NOT_STARTED[start.problem], message: `node collector ${namespace}/${name}: ${start.detail}` };
}

/** A collector pod an interrupted run (operator restart) left behind is removed before a new one starts. */
async function removeLeftovers(ctx: PhaseContext, namespace: string): Promise<void> {
  let pods: V1Pod[];
  try {
    pods = (await ctx.kube.core.listNamespacedPod({ namespace, labelSelector: `casefile.dev/investigation-uid=${ctx.investigation.metadata.uid}` })).items;
  } catch (err) {
    if (isNotFound(err)) return; // no namespace: the create below says so
    throw err;
  }
  for (const pod of pods) await removeCollector(ctx, namespace, pod.metadata!.name!);
}

async function removeCollector(ctx: PhaseContext, namespace: string, name: string): Promise<void> {
  try {
    await ctx.kube.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
  } catch (err) {
    if (!isNotFound(err)) {
      ctx.log.warn({ pod: `${namespace}/${name}`, err: errorMessage(err) }, 'could not remove the node collector pod');
      await ctx.caseFile.record('node-collector-not-removed', { namespace, pod: name, error: errorMessage(err) }, 'NodeStateCaptured');
      return;
    }
  }
  ctx.status.live = { ...ctx.status.live, nodeCollector: { namespace, pod: name, removed: true } };
  await ctx.caseFile.record('node-collector-removed', { namespace, pod: name }, 'NodeStateCaptured');
}

async function recordHostPID(ctx: PhaseContext, artifact: string): Promise<void> {
  if (!ctx.caseFile.has(artifact)) return;
  try {
    const hostPid = (JSON.parse(await ctx.caseFile.readText(artifact)) as { hostPid?: unknown }).hostPid;
    if (typeof hostPid === 'number' && ctx.status.target) ctx.status.target.hostPID = hostPid;
  } catch (err) {
    ctx.log.warn({ artifact, err: errorMessage(err) }, 'host process artifact unreadable');
  }
}
