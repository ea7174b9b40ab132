// TargetResolved: alert -> namespace/pod -> pod UID, node, container, container ID, image digest,
// ServiceAccount, owner chain. Each field records how it was derived (the seeds: never invent a
// field the alert lacks; derive it and say from where).
import type { V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import type { OwnerRef, TargetStatus } from '../api/investigation.js';
import { type Kube } from '../kube/client.js';
import { isNotFound } from '../kube/errors.js';
import { errorMessage, RetryableError } from '../errors.js';
import { type Phase, type PhaseOutcome } from './phase.js';
import { alertContainerHints, allContainers, allStatuses, chooseContainer } from './shared/container-choice.js';

export const targetResolved: Phase = {
  condition: 'TargetResolved',
  async run(ctx): Promise<PhaseOutcome> {
    const { namespace } = ctx.investigation.metadata;
    const podName = ctx.spec.target.pod;
    let pod: V1Pod;
    try {
      pod = await ctx.kube.core.readNamespacedPod({ name: podName, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw new RetryableError(`reading pod ${namespace}/${podName}: ${errorMessage(err)}`);
      await ctx.caseFile.record('negative-finding', {
        finding: `pod ${namespace}/${podName} does not exist: live state, logs and the manifest are unavailable; surviving evidence (events) is still captured`,
      }, 'TargetResolved');
      return {
        status: 'False',
        reason: 'TargetNotFound',
        message: `pod ${namespace}/${podName} does not exist (deleted, replaced or never created); events that survive are still captured`,
      };
    }
    const uid = pod.metadata!.uid!;
    const expected = ctx.spec.target.uid ?? ctx.status.target?.podUID;
    if (expected && expected !== uid) {
      await ctx.caseFile.record('refused', { reason: 'TargetReplaced', expectedUID: expected, liveUID: uid }, 'TargetResolved');
      return {
        status: 'False',
        reason: 'TargetReplaced',
        message: `pod ${namespace}/${podName} now has UID ${uid}, not ${expected}: a replacement pod is not the evidence, so nothing was touched`,
      };
    }

    const derivation: string[] = [`pod UID ${uid} from the API server (GET pods/${podName} in ${namespace})`];
    const choice = chooseContainer(pod, ctx.spec.target.container, alertContainerHints(ctx.spec.alert?.raw));
    if ('error' in choice) return { status: 'False', reason: 'ContainerNotFound', message: choice.error };
    derivation.push(choice.how);
    const containerStatus = allStatuses(pod).find((s) => s.name === choice.name);
    const specImage = allContainers(pod).find((c) => c.name === choice.name)?.image;
    if (containerStatus?.containerID) {
      derivation.push(`container ID and image digest from status.containerStatuses[${choice.name}] (the kubelet's CRI report)`);
    } else {
      derivation.push(`container ${choice.name} has no container ID yet: it has not started`);
    }
    if (specImage && containerStatus?.imageID) {
      derivation.push(`image ${specImage} ran as ${containerStatus.imageID}: the digest, not the tag, is the evidence`);
    }
    const owners = await ownerChain(ctx.kube, namespace, pod.metadata?.ownerReferences);
    if (owners.length > 0) derivation.push(`owners followed through controller ownerReferences: ${owners.map((o) => `${o.kind}/${o.name}`).join(' -> ')}`);

    const target: TargetStatus = {
      podUID: uid,
      node: pod.spec?.nodeName,
      container: choice.name,
      containerID: containerStatus?.containerID,
      image: containerStatus?.image ?? specImage,
      imageID: containerStatus?.imageID,
      serviceAccount: pod.spec?.serviceAccountName ?? 'default',
      owners,
      podIP: pod.status?.podIP,
      derivation,
    };
    ctx.status.target = target;
    await ctx.caseFile.writeJSON('identity.json', {
      alert: ctx.spec.alert ? { source: ctx.spec.alert.source, rule: ctx.spec.alert.rule, time: ctx.spec.alert.time } : null,
      namespace,
      pod: podName,
      ...target,
      resolvedAt: new Date().toISOString(),
    }, { phase: 'TargetResolved' });
    return {
      status: 'True',
      reason: 'Resolved',
      message: `pod UID ${uid} on node ${target.node ?? '(unscheduled)'}, container ${choice.name} ${target.containerID ?? '(not started)'}, image ${target.imageID ?? target.image ?? 'unknown'}`,
    };
  },
};

const ownerReaders: Record<string, (kube: Kube, name: string, namespace: string) => Promise<{ metadata?: { uid?: string; ownerReferences?: V1OwnerReference[] } }>> = {
  ReplicaSet: (kube, name, namespace) => kube.apps.readNamespacedReplicaSet({ name, namespace }),
  Deployment: (kube, name, namespace) => kube.apps.readNamespacedDeployment({ name, namespace }),
  StatefulSet: (kube, name, namespace) => kube.apps.readNamespacedStatefulSet({ name, namespace }),
  DaemonSet: (kube, name, namespace) => kube.apps.readNamespacedDaemonSet({ name, namespace }),
  Job: (kube, name, namespace) => kube.batch.readNamespacedJob({ name, namespace }),
  CronJob: (kube, name, namespace) => kube.batch.readNamespacedCronJob({ name, namespace }),
};

/** The controller chain up to the top owner (pod -> ReplicaSet -> Deployment), as far as it still exists. */
async function ownerChain(kube: Kube, namespace: string, refs: V1OwnerReference[] | undefined): Promise<OwnerRef[]> {
  const chain: OwnerRef[] = [];
  let next = refs?.find((r) => r.controller) ?? refs?.[0];
  while (next && chain.length < 8) {
    const ref = next;
    chain.push({ kind: ref.kind, name: ref.name, uid: ref.uid });
    const read = ownerReaders[ref.kind];
    if (!read) break;
    try {
      const owner = await read(kube, ref.name, namespace);
      const parents = owner.metadata?.ownerReferences;
      next = parents?.find((r) => r.controller) ?? parents?.[0];
    } catch (err) {
      if (isNotFound(err)) break;
      throw new RetryableError(`reading owner ${ref.kind}/${ref.name}: ${errorMessage(err)}`);
    }
  }
  return chain;
}

