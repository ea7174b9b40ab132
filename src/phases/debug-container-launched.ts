// DebugContainerLaunched: an ephemeral container beside the suspect, sharing its process namespace
// (targetContainerName), from which the collectors read /proc. Nothing ever runs in the suspect's
// own container. Kubernetes cannot remove an ephemeral container, so it stays in the pod spec for
// the pod's life: the observer effect the report records. Its idle process exits on its own.
import { PatchStrategy, setHeaderOptions, type V1ContainerStatus, type V1EphemeralContainer, type V1Pod } from '@kubernetes/client-node';
import { errorCode, isForbidden } from '../kube/errors.js';
import { errorMessage } from '../errors.js';
import { DEBUG_CAPABILITIES, collectorSecurityContext, debugImage, describeState, NO_IMAGE_MESSAGE, idleSeconds, waitForContainer, type ContainerStart } from './casefile-containers.js';
import type { Phase, PhaseContext, PhaseOutcome } from './phase.js';

const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

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
  const image = debugImage(ctx);
  if (!image) {
    return { status: 'False', reason: 'NoDebugImage', message: NO_IMAGE_MESSAGE };
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

  const start = await waitForContainer(async () => {
    const current = await ctx.livePod({ fresh: true });
    return current && { status: ephemeralStatus(current, name) };
  }, ctx.spec.evidence.live.timeoutSeconds * 1000);
  if ('problem' in start) return notStarted(name, start);
  const started = start.running;
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
    command: ['/bin/sleep', String(idleSeconds(timeoutSeconds))],
    stdin: false,
    tty: false,
    terminationMessagePolicy: 'File',
    securityContext: collectorSecurityContext(),
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

function notStarted(name: string, start: Extract<ContainerStart, { problem: string }>): PhaseOutcome {
  switch (start.problem) {
    case 'gone':
      return { status: 'False', reason: 'TargetGone', message: `the target pod disappeared while ${name} was starting` };
    case 'image':
      return { status: 'False', reason: 'DebugImageUnavailable', message: `${name} cannot start: ${start.detail} (is the debug image present on the node or pullable?)` };
    case 'exited':
      return { status: 'False', reason: 'DebugContainerFailed', message: `${name} exited at once (${start.detail})` };
    case 'timeout':
      return { status: 'False', reason: 'DebugContainerNotStarted', message: `${name} was ${start.detail}` };
  }
}

function ephemeralStatus(pod: V1Pod, name: string): V1ContainerStatus | undefined {
  return pod.status?.ephemeralContainerStatuses?.find((s) => s.name === name);
}
