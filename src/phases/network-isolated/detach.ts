// detachFromWorkload: take the suspect out of its workload without killing it. The labels its
// controller's selector and the Services' selectors use are removed from the pod (saved first), so the
// ReplicaSet lets go of it and starts a clean replacement, and Services stop sending it traffic, while
// the suspect itself lives on, isolated, for the investigation. Release puts back exactly those labels.
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { isNotFound } from '../../kube/errors.js';
import { errorMessage, RetryableError } from '../../errors.js';
import { selectorMatches } from '../../kube/selectors.js';
import { jsonPointer } from '../shared/json-pointer.js';
import type { PhaseContext, ReleaseContext } from '../phase.js';

const SAVED = 'containment/originals/detached-labels.json';

/** Label keys that tie the pod to its controller and to Services: what must go for it to be let go. */
async function workloadKeys(ctx: PhaseContext, pod: V1Pod): Promise<{ keys: Set<string>; why: string[] }> {
  const namespace = pod.metadata!.namespace!;
  const labels = pod.metadata?.labels ?? {};
  const keys = new Set<string>();
  const why: string[] = [];
  const addSelector = (selector: V1LabelSelector | undefined, owner: string) => {
    const used = [...Object.keys(selector?.matchLabels ?? {}), ...(selector?.matchExpressions ?? []).map((e) => e.key)].filter((k) => k in labels);
    used.forEach((k) => keys.add(k));
    if (used.length) why.push(`${owner} selects on ${used.join(', ')}`);
  };
  const controller = pod.metadata?.ownerReferences?.find((o) => o.controller);
  if (controller?.kind === 'ReplicaSet') {
    const rs = await ctx.kube.apps.readNamespacedReplicaSet({ name: controller.name, namespace });
    addSelector(rs.spec?.selector, `ReplicaSet/${controller.name}`);
  } else if (controller?.kind === 'StatefulSet') {
    const sts = await ctx.kube.apps.readNamespacedStatefulSet({ name: controller.name, namespace });
    addSelector(sts.spec?.selector, `StatefulSet/${controller.name}`);
  }
  const services = await ctx.kube.core.listNamespacedService({ namespace });
  for (const svc of services.items) {
    const selector = svc.spec?.selector;
    if (selector && Object.keys(selector).length && selectorMatches({ matchLabels: selector }, labels)) {
      addSelector({ matchLabels: selector }, `Service/${svc.metadata!.name}`);
    }
  }
  return { keys, why };
}

export async function detachFromWorkload(ctx: PhaseContext, pod: V1Pod): Promise<string> {
  const labels = pod.metadata?.labels ?? {};
  const { keys, why } = await workloadKeys(ctx, pod);
  const removed = Object.fromEntries(Object.entries(labels).filter(([k]) => keys.has(k)));
  await ctx.caseFile.writeJSON(SAVED, { pod: pod.metadata!.name, uid: pod.metadata!.uid, removed, why }, { phase: 'NetworkIsolated' });
  if (Object.keys(removed).length === 0) return 'detach requested, but no controller or Service selects the pod by label';
  // test-then-remove per key: a concurrent change to one of these labels fails the patch instead of being lost.
  const body = Object.entries(removed).flatMap(([k, v]) => [
    { op: 'test', path: `/metadata/labels/${jsonPointer(k)}`, value: v },
    { op: 'remove', path: `/metadata/labels/${jsonPointer(k)}` },
  ]);
  try {
    await ctx.kube.core.patchNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body });
  } catch (err) {
    throw new RetryableError(`detaching pod ${pod.metadata!.name} from its workload: ${errorMessage(err)}`);
  }
  await ctx.caseFile.record('pod-detached', { pod: pod.metadata!.name, removed, why }, 'NetworkIsolated');
  return `detached from its workload (${why.join('; ')}): the controller starts a clean replacement and Services stop routing to it`;
}

/** Puts back the saved labels that are missing; a label someone set meanwhile is kept and reported. */
export async function reattachToWorkload(ctx: ReleaseContext): Promise<string[]> {
  if (!ctx.caseFile.has(SAVED)) return [];
  const { removed } = JSON.parse(await ctx.caseFile.readText(SAVED)) as { removed: Record<string, string> };
  const pod = await ctx.livePod();
  if (!pod) return ['the suspect pod is gone: its workload labels could not be restored'];
  const current = pod.metadata?.labels ?? {};
  const differences: string[] = [];
  const ops: object[] = [];
  for (const [k, v] of Object.entries(removed)) {
    if (!(k in current)) ops.push({ op: 'add', path: `/metadata/labels/${jsonPointer(k)}`, value: v });
    else if (current[k] !== v) differences.push(`label ${k} was set to ${current[k]} by someone else meanwhile (was ${v}); kept`);
  }
  if (ops.length) {
    try {
      await ctx.kube.core.patchNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: ops });
    } catch (err) {
      if (isNotFound(err)) return ['the suspect pod is gone: its workload labels could not be restored'];
      throw new RetryableError(`restoring workload labels of ${pod.metadata!.name}: ${errorMessage(err)}`);
    }
    await ctx.caseFile.record('pod-reattached', { pod: pod.metadata!.name, restored: removed }, 'Released');
  }
  return differences;
}
