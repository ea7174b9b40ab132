// DebugContainerLaunched: an ephemeral container beside the suspect, sharing its process namespace
// (targetContainerName), from which the collectors read /proc. Nothing ever runs in the suspect's
// own container. Kubernetes cannot remove an ephemeral container, so it stays in the pod spec for
// the pod's life: the observer effect the report records. Its idle process exits on its own.
import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, setHeaderOptions, type V1ContainerStatus, type V1EphemeralContainer, type V1Pod, type V1SecurityContext } from '@kubernetes/client-node';
import { errorCode, errorMessage, isForbidden } from '../engine/kube.js';
import type { Phase, PhaseContext, PhaseOutcome } from './phase.js';

/** Read /proc/<pid> (environ, fd, maps, root) of processes of any user, and their files whatever the mode. */
export const DEBUG_CAPABILITIES = ['SYS_PTRACE', 'DAC_READ_SEARCH'] as const;
/** How long the idle process outlives the collector's deadline before it exits by itself. */
const IDLE_MARGIN_SECONDS = 600;
const POLL_MS = 250;
const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

const IMAGE_PROBLEMS = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName']);

export const debugContainerLaunched: Phase = {
  condition: 'DebugContainerLaunched',
  needsTarget: true,
  enabled: (spec) => spec.evidence.live.enabled,
  run: launch,
};

async function launch(ctx: PhaseContext): Promise<PhaseOutcome> {
  const pod = await ctx.livePod();
  if (!pod) return { status: 'False', reason: 'TargetGone', message: 'the target pod no longer exists (or was replaced): there is no live state to capture' };
  const targetName = ctx.status.target?.container;
  const target = pod.status?.containerStatuses?.find((c) => c.name === targetName);
  if (!targetName || !target?.state?.running) {
    const message = `container ${targetName ?? '(unknown)'} is not running (${describeState(target)}): an ephemeral container can only share the process namespace of a running container`;
    await ctx.caseFile.record('negative-finding', { finding: `no live state: ${message}` }, 'DebugContainerLaunched');
    return { status: 'False', reason: 'TargetNotRunning', message };
  }
  const image = ctx.spec.evidence.live.image ?? ctx.config.debugImage;
  if (!image) {
    return { status: 'False', reason: 'NoDebugImage', message: "no debug image: set spec.evidence.live.image or the operator's --debug-image (CASEFILE_DEBUG_IMAGE)" };
  }

  const base = `casefile-debug-${ctx.investigation.metadata.uid.slice(0, 8)}`;
  const ours = (pod.spec?.ephemeralContainers ?? []).filter((c) => c.name === base || c.name.startsWith(`${base}-`));
  // A restart between adding and capturing finds ours still usable; a finished one cannot be restarted.
  const usable = ours.find((c) => !ephemeralStatus(pod, c.name)?.state?.terminated);
  let name: string;
  if (usable) {
    name = usable.name;
  } else {
    name = ours.length === 0 ? base : `${base}-${ours.length + 1}`;
    const refused = await addEphemeralContainer(ctx, pod, debugContainerSpec(name, image, targetName, ctx.spec.evidence.live.timeoutSeconds));
    if (refused) return refused;
    await ctx.caseFile.record('debug-container-added', { pod: pod.metadata?.name, container: name, image, target: targetName, capabilities: DEBUG_CAPABILITIES }, 'DebugContainerLaunched');
  }

  const started = await waitRunning(ctx, name, ctx.spec.evidence.live.timeoutSeconds * 1000);
  if ('status' in started) return started;
  ctx.status.live = { ...ctx.status.live, debugContainer: name, image, imageID: started.imageID, launchedAt: new Date().toISOString() };
  await ctx.caseFile.writeJSON(`live/${name}.json`, { spec: pod.spec?.ephemeralContainers?.find((c) => c.name === name) ?? debugContainerSpec(name, image, targetName, ctx.spec.evidence.live.timeoutSeconds), status: started }, { phase: 'DebugContainerLaunched' });
  return {
    status: 'True',
    reason: 'Running',
    message: `ephemeral container ${name} (${image}) is running beside ${targetName}, sharing its process namespace; it stays in the pod spec for the pod's life`,
  };
}

export function debugContainerSpec(name: string, image: string, targetContainer: string, timeoutSeconds: number): V1EphemeralContainer {
  return {
    name,
    image,
    imagePullPolicy: 'IfNotPresent',
    targetContainerName: targetContainer,
    command: ['/bin/sleep', String(timeoutSeconds + IDLE_MARGIN_SECONDS)],
    stdin: false,
    tty: false,
    terminationMessagePolicy: 'File',
    securityContext: collectorSecurityContext(),
  };
}

/** Root with only DEBUG_CAPABILITIES: read-only root filesystem, no escalation, default seccomp. */
export function collectorSecurityContext(): V1SecurityContext {
  return {
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add: [...DEBUG_CAPABILITIES] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

async function addEphemeralContainer(ctx: PhaseContext, pod: V1Pod, container: V1EphemeralContainer): Promise<PhaseOutcome | undefined> {
  const namespace = pod.metadata!.namespace!;
  try {
    await ctx.kube.core.patchNamespacedPodEphemeralcontainers(
      { name: pod.metadata!.name!, namespace, body: { spec: { ephemeralContainers: [container] } } },
      strategicMerge,
    );
    return undefined;
  } catch (err) {
    const message = errorMessage(err);
    if (isForbidden(err) && /PodSecurity/i.test(message)) {
      const fallback = ctx.spec.evidence.node.enabled
        ? 'The node collector (NodeStateCaptured) runs instead, from the collector namespace.'
        : 'Enable spec.evidence.node to collect from the node instead, or relax the namespace\'s pod-security.kubernetes.io/enforce level.';
      await ctx.caseFile.record('negative-finding', { finding: `no debug container: PodSecurity of namespace ${namespace} refused it`, server: message }, 'DebugContainerLaunched');
      return {
        status: 'False',
        reason: 'PodSecurityRejected',
        message: `PodSecurity of namespace ${namespace} refused the debug container (${message}); it needs capabilities ${DEBUG_CAPABILITIES.join(' and ')} to read /proc of processes of any user, which baseline and restricted forbid. ${fallback}`,
      };
    }
    if (isForbidden(err)) {
      return { status: 'False', reason: 'Forbidden', message: `adding the debug container was refused: ${message}; the operator needs patch on pods/ephemeralcontainers` };
    }
    if (errorCode(err) === 422) return { status: 'False', reason: 'DebugContainerRejected', message: `the API server rejected the debug container: ${message}` };
    throw err;
  }
}

async function waitRunning(ctx: PhaseContext, name: string, timeoutMs: number): Promise<V1ContainerStatus | PhaseOutcome> {
  const deadline = Date.now() + timeoutMs;
  let last: V1ContainerStatus | undefined;
  while (Date.now() < deadline) {
    const pod = await ctx.livePod({ fresh: true });
    if (!pod) return { status: 'False', reason: 'TargetGone', message: `the target pod disappeared while ${name} was starting` };
    last = ephemeralStatus(pod, name);
    if (last?.state?.running) return last;
    const waiting = last?.state?.waiting?.reason;
    if (waiting && IMAGE_PROBLEMS.has(waiting)) {
      return { status: 'False', reason: 'DebugImageUnavailable', message: `${name} cannot start: ${waiting}: ${last?.state?.waiting?.message ?? ''} (is the debug image present on the node or pullable?)` };
    }
    if (last?.state?.terminated) {
      return { status: 'False', reason: 'DebugContainerFailed', message: `${name} exited at once (${describeState(last)})` };
    }
    await sleep(POLL_MS);
  }
  return { status: 'False', reason: 'DebugContainerNotStarted', message: `${name} was not running after ${Math.round(timeoutMs / 1000)} s (${describeState(last)})` };
}

function ephemeralStatus(pod: V1Pod, name: string): V1ContainerStatus | undefined {
  return pod.status?.ephemeralContainerStatuses?.find((s) => s.name === name);
}

function describeState(s: V1ContainerStatus | undefined): string {
  if (!s?.state) return 'no status yet';
  if (s.state.running) return 'running';
  if (s.state.waiting) return `waiting: ${s.state.waiting.reason ?? ''}${s.state.waiting.message ? ` ${s.state.waiting.message}` : ''}`;
  const t = s.state.terminated;
  return `terminated: exit code ${t?.exitCode}${t?.reason ? ` (${t.reason})` : ''}`;
}
