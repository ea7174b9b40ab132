// NetworkIsolated, first writes (ContainFirst): the deny-all policy and the incident label, both at
// once and before any read, ahead of the case's finalizer, case file and status. An exfiltrating
// attacker does not wait for fsyncs, nor for a GET. Nothing is lost by going first: the policy carries
// this Investigation's UID and the time it was applied, the label key is unique to the case, and the
// label patch is tested against the pod UID the spec names. The labelled pod comes back in the patch's
// answer and is checked as TargetResolved will check it; a pod the case would not accept (terminating,
// or no container the target can name) has both writes taken back at once, and TargetResolved says why.
// run() finds the writes in the cluster and records them; release() finds and undoes them even if
// run() never did.
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { during, errorMessage } from '../../errors.js';
import { errorCode, isConflict, isNotFound } from '../../kube/errors.js';
import type { InvestigationSpec } from '../../api/investigation.js';
import type { ContainNowContext } from '../phase.js';
import { jsonPointer } from '../shared/json-pointer.js';
import { alertContainerHints, chooseContainer } from '../target-resolved.js';
import { prepareVerification } from './probe-container.js';
import { incidentLabel, incidentLabelPatch, isolationPolicy } from './policy.js';

/**
 * The target container if the first writes may act on this pod: the one the spec names, and one
 * TargetResolved will accept (undefined: leave it to TargetResolved and run()).
 */
export function containNowTarget(pod: V1Pod, spec: InvestigationSpec): string | undefined {
  if (spec.target.uid && pod.metadata?.uid !== spec.target.uid) return undefined;
  if (pod.metadata?.deletionTimestamp) return undefined;
  const choice = chooseContainer(pod, spec.target.container, alertContainerHints(spec.alert?.raw));
  return 'error' in choice ? undefined : choice.name;
}

export async function isolateNow(ctx: ContainNowContext): Promise<void> {
  const inv = ctx.investigation;
  const { namespace } = inv.metadata;
  const { key, value } = incidentLabel(inv);
  const policy = isolationPolicy(inv, ctx.spec, new Date());
  const [created, labelled] = await Promise.allSettled([
    ctx.kube.networking.createNamespacedNetworkPolicy({ namespace, body: policy }),
    labelPod(ctx, key, value),
  ]);
  const pod = labelled.status === 'fulfilled' ? labelled.value : undefined;
  const target = pod && containNowTarget(pod, ctx.spec);
  if (!target) {
    // Not a pod this case acts on (or none): give back what went out. A policy of that name already
    // there (a conflict) is not this step's to remove.
    await takeBack(ctx, created.status === 'fulfilled' ? created.value : undefined, pod, key, value);
  } else if (ctx.spec.containment.network.verify) {
    prepareVerification(ctx, pod, target);
  }
  if (labelled.status === 'rejected') throw labelled.reason;
  // A policy of that name already there is run()'s to judge (this case's, or a name taken).
  if (created.status === 'rejected' && !isConflict(created.reason)) throw during(`creating NetworkPolicy ${policy.metadata!.name}`, created.reason);
  if (target) ctx.log.info({ pod: pod!.metadata!.name, policy: policy.metadata!.name }, 'isolated ahead of the bookkeeping (ContainFirst)');
}

/**
 * Adds the incident label to the pod the spec names, without reading it first: a JSON patch, tested
 * against the spec's pod UID when it names one. Resolves with the labelled pod, or undefined when
 * there is no such pod (or only one with another UID). A pod without any label needs the labels
 * object made: that alone costs a read.
 */
async function labelPod(ctx: ContainNowContext, key: string, value: string): Promise<V1Pod | undefined> {
  const { namespace } = ctx.investigation.metadata;
  const name = ctx.spec.target.pod;
  const uid = ctx.spec.target.uid;
  const patch = (body: object[]) => ctx.kube.core.patchNamespacedPod({ name, namespace, body });
  try {
    return await patch([...(uid ? [{ op: 'test', path: '/metadata/uid', value: uid }] : []), { op: 'add', path: `/metadata/labels/${jsonPointer(key)}`, value }]);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    // 422: the UID test failed (a replaced pod), or the pod has no labels object to add to.
    if (errorCode(err) !== 422) throw during(`labelling pod ${name}`, err);
  }
  let pod: V1Pod;
  try {
    pod = await ctx.kube.core.readNamespacedPod({ name, namespace });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw during(`reading pod ${name}`, err);
  }
  if ((uid && pod.metadata?.uid !== uid) || pod.metadata?.labels) return undefined;
  try {
    return await patch(incidentLabelPatch(pod, key, value));
  } catch (err) {
    throw during(`labelling pod ${name}`, err);
  }
}

/** Removes what the first writes made, each pinned to what they made (the policy's UID, the pod's UID and the label's value). */
async function takeBack(ctx: ContainNowContext, policy: V1NetworkPolicy | undefined, pod: V1Pod | undefined, key: string, value: string): Promise<void> {
  const { namespace } = ctx.investigation.metadata;
  const undone = await Promise.allSettled([
    policy && ctx.kube.networking.deleteNamespacedNetworkPolicy({ name: policy.metadata!.name!, namespace, body: { preconditions: { uid: policy.metadata!.uid } } }),
    pod?.metadata?.labels?.[key] === value &&
      ctx.kube.core.patchNamespacedPod({
        name: pod.metadata!.name!,
        namespace,
        body: [{ op: 'test', path: '/metadata/uid', value: pod.metadata!.uid }, { op: 'test', path: `/metadata/labels/${jsonPointer(key)}`, value }, { op: 'remove', path: `/metadata/labels/${jsonPointer(key)}` }],
      }),
  ]);
  for (const u of undone) {
    // Left for release, which finds both by the case's policy name and label key.
    if (u.status === 'rejected' && !isNotFound(u.reason)) ctx.log.warn({ err: errorMessage(u.reason) }, 'could not take back a first containment write; release will');
  }
}
