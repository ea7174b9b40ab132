// NetworkIsolated, first writes on the containment lane (ContainFirst): the deny-all policy and the
// incident label, both at once and before any read (first-writes.ts), ahead of the case's finalizer
// (which follows them), case file and status. An exfiltrating attacker does not wait for fsyncs, nor for a GET. Nothing is
// lost by going first: the policy carries this Investigation's UID and the time it was applied, and the
// label key is unique to the case. run() finds the writes in the cluster and records them; release()
// finds and undoes them even if run() never did.
import type { ContainNowContext, TakeBack } from '../phase.js';
import { kubeIsolationApi, takeBackIsolation, writeIsolation } from './first-writes.js';
import { prepareVerification } from './probe-container.js';
import { caseIsolationId, incidentLabel, isolationPolicy, ownerOf } from './policy.js';

export async function isolateNow(ctx: ContainNowContext): Promise<TakeBack | undefined> {
  const inv = ctx.investigation;
  const { namespace } = inv.metadata;
  const id = caseIsolationId(inv);
  const { key, value } = incidentLabel(id);
  const policy = isolationPolicy(ownerOf(inv), id, ctx.spec, new Date());
  const api = kubeIsolationApi(ctx.kube);
  const written = await writeIsolation(api, { namespace, spec: ctx.spec, policy, key, value }, ctx.log);
  if (written.target && ctx.spec.containment.network.verify) prepareVerification(ctx, written.pod!, written.target);
  // A policy of that name already there is run()'s to judge (this case's, or a name taken).
  if (written.error) throw written.error;
  if (!written.target) return undefined; // taken back already
  ctx.log.info({ pod: written.pod!.metadata!.name, policy: policy.metadata!.name }, 'isolated ahead of the bookkeeping (ContainFirst)');
  return () => takeBackIsolation(api, namespace, { policy: written.policy, pod: written.pod, key, value }, ctx.log);
}
