// NetworkIsolated, first writes (ContainFirst): the deny-all policy and the incident label, both at
// once, before the case has a finalizer, a case file or a status. An exfiltrating attacker does not
// wait for fsyncs. Nothing is lost by going first: the policy carries this Investigation's UID and the
// time it was applied, the label key is unique to the case, and the label patch is tested against the
// pod's UID; run() finds both in the cluster and records them, release() finds and undoes them even if
// run() never did. Anything this step cannot decide (no pod, a replaced pod, a container the target
// cannot name) is left to TargetResolved and run(), which say why.
import type { V1Pod } from '@kubernetes/client-node';
import { during } from '../../errors.js';
import { isConflict, isNotFound } from '../../kube/client.js';
import type { InvestigationSpec } from '../../api/investigation.js';
import type { ContainNowContext } from '../phase.js';
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
  let pod: V1Pod;
  try {
    pod = await ctx.kube.core.readNamespacedPod({ name: ctx.spec.target.pod, namespace });
  } catch (err) {
    if (isNotFound(err)) return;
    throw during(`reading pod ${ctx.spec.target.pod}`, err);
  }
  const target = containNowTarget(pod, ctx.spec);
  if (!target) return;
  // Verification's probe container starts with the writes: it is running by the time they are in place.
  if (ctx.spec.containment.network.verify) prepareVerification(ctx, pod, target);
  const { key, value } = incidentLabel(inv);
  const policy = isolationPolicy(inv, ctx.spec, new Date());
  const [created, labelled] = await Promise.allSettled([
    ctx.kube.networking.createNamespacedNetworkPolicy({ namespace, body: policy }),
    pod.metadata?.labels?.[key] === value
      ? Promise.resolve()
      : ctx.kube.core.patchNamespacedPod({ name: pod.metadata!.name!, namespace, body: incidentLabelPatch(pod, key, value) }),
  ]);
  // A policy of that name already there is run()'s to judge (this case's, or a name taken).
  if (created.status === 'rejected' && !isConflict(created.reason)) throw during(`creating NetworkPolicy ${policy.metadata!.name}`, created.reason);
  if (labelled.status === 'rejected') throw during(`labelling pod ${pod.metadata!.name}`, labelled.reason);
  ctx.log.info({ pod: pod.metadata!.name, policy: policy.metadata!.name }, 'isolated ahead of the bookkeeping (ContainFirst)');
}
