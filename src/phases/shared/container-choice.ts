// Which of a pod's containers a case is about, as pure functions: the one the spec names, else the one
// the alert names (Falco's container.id, then container.name), else the first app container. Shared by
// TargetResolved and by the first containment writes (the containment lane's, and intake's, whose
// thread loads no client-node), so both accept exactly the same pods.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { bareContainerID } from '../../kube/container-id.js';

export function allContainers(pod: V1Pod): { name: string; image?: string }[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? []), ...(pod.spec?.ephemeralContainers ?? [])];
}

export function allStatuses(pod: V1Pod): V1ContainerStatus[] {
  return [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
}

export interface AlertHints {
  containerID?: string;
  containerName?: string;
}

/** Falco puts the 12-character container ID and name in output_fields; any field may be missing. */
export function alertContainerHints(raw: string | undefined): AlertHints {
  if (!raw) return {};
  try {
    const fields = (JSON.parse(raw) as { output_fields?: Record<string, unknown> }).output_fields ?? {};
    const id = fields['container.id'];
    const name = fields['container.name'];
    return {
      containerID: typeof id === 'string' && id !== 'host' ? id : undefined,
      containerName: typeof name === 'string' && name !== 'host' ? name : undefined,
    };
  } catch {
    return {};
  }
}

export function chooseContainer(pod: V1Pod, requested: string | undefined, hints: AlertHints): { name: string; how: string } | { error: string } {
  const names = allContainers(pod).map((c) => c.name);
  if (requested) {
    if (names.includes(requested)) return { name: requested, how: `container ${requested} named by spec.target.container` };
    return { error: `container ${requested} is not in pod ${pod.metadata?.name}; its containers are: ${names.join(', ')}` };
  }
  if (hints.containerID) {
    const match = allStatuses(pod).find((s) => bareContainerID(s.containerID).startsWith(hints.containerID!));
    if (match) return { name: match.name, how: `container ${match.name} matched by the alert's container.id ${hints.containerID}` };
  }
  if (hints.containerName && names.includes(hints.containerName)) {
    return { name: hints.containerName, how: `container ${hints.containerName} named by the alert's container.name` };
  }
  const first = pod.spec?.containers?.[0]?.name;
  if (!first) return { error: `pod ${pod.metadata?.name} has no containers` };
  return { name: first, how: `container ${first}: the first app container (neither the spec nor the alert named one)` };
}
