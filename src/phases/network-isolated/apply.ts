// NetworkIsolated, applying: contain without destroying. The deny-all NetworkPolicy is created first and
// selects only a label unique to this Investigation, so it matches nothing until that label lands on the
// suspect pod, and then matches the suspect alone (never its sibling replicas, never the owner's
// selector). Every other policy that selects the pod and allows traffic is patched to exclude the label;
// originals are saved before anything changes, and the generation each patch produced is recorded so
// release can tell casefile's change from anyone else's. A ContainFirst case has usually made the policy
// and the label already (contain-now.ts, or intake ahead of the create: isolation-id.ts): they are found
// here and recorded with the time they were applied.
import type { V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { isConflict } from '../../kube/errors.js';
import { during, TerminalError } from '../../errors.js';
import { podGone } from '../manifest-captured.js';
import type { PhaseContext, PhaseOutcome } from '../phase.js';
import { originalArtifact } from '../shared/originals.js';
import { detachFromWorkload } from './detach.js';
import { resolveIsolationId } from './isolation-id.js';
import { verifyIsolation } from './isolation-probe.js';
import { prepareVerification } from './probe-container.js';
import { APPLIED_AT, describeAllowances, excludesLabel, incidentLabel, incidentLabelPatch, INVESTIGATION_UID, isolationPolicy, needsExclusion, ownerOf, PHASE } from './policy.js';

export interface PatchedPolicy {
  name: string;
  original: string;
  /** metadata.generation right after casefile's patch: anything later is someone else's change. */
  generation?: number;
}

export async function isolate(ctx: PhaseContext): Promise<PhaseOutcome> {
  const pod = await ctx.livePod();
  if (!pod) return podGone(ctx.spec.target.pod);
  // Verification's probe container starts while the policy is written (no wait here, no case-file write).
  if (ctx.spec.containment.network.verify) prepareVerification(ctx, pod, ctx.status.target?.container);
  const inv = ctx.investigation;
  const { namespace } = inv.metadata;
  // One list serves both: the claim that names the case's id, and step 2 (casefile's own policy, found
  // there or made below, is never one to exclude the label from).
  const policies = (await ctx.kube.networking.listNamespacedNetworkPolicy({ namespace })).items;
  const id = await resolveIsolationId(ctx.kube, inv, ctx.status, policies);
  const { key, value } = incidentLabel(id);
  // The labels as they were before casefile: its own incident label (unique to this case) may already be
  // there, put on by the first writes (contain-now.ts).
  const { [key]: _ours, ...before } = pod.metadata?.labels ?? {};
  await ctx.caseFile.writeJSON('containment/pod-labels-before.json', before, { phase: PHASE });

  // 1. The policy, selecting a label no pod carries yet (unless the first writes already made both).
  const desired = isolationPolicy(ownerOf(inv), id, ctx.spec, new Date());
  const name = desired.metadata!.name!;
  const policyPath = `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`;
  try {
    await ctx.kube.networking.createNamespacedNetworkPolicy({ namespace, body: desired });
    await ctx.caseFile.record('networkpolicy-created', { name, appliedAt: desired.metadata!.annotations![APPLIED_AT] }, PHASE);
  } catch (err) {
    if (!isConflict(err)) throw during(`creating NetworkPolicy ${name}`, err);
    const existing = await ctx.kube.networking.readNamespacedNetworkPolicy({ name, namespace });
    if (existing.metadata?.annotations?.[INVESTIGATION_UID] !== inv.metadata.uid) {
      throw new TerminalError(`NetworkPolicy ${name} exists and is not this Investigation's; nothing was changed`, 'PolicyNameTaken');
    }
    // Applied ahead of the bookkeeping, or before a restart: recorded now, with the time it was applied.
    if (!inCustody(ctx, 'networkpolicy-created', name)) {
      await ctx.caseFile.record('networkpolicy-created', { name, appliedAt: existing.metadata?.annotations?.[APPLIED_AT], foundInCluster: true }, PHASE);
    }
  }
  // Recorded before the label lands: release finds the policy from status even if the phase stops here.
  ctx.status.containment = { ...ctx.status.containment, networkPolicy: name };
  await ctx.caseFile.captureOnce('containment/networkpolicy.yaml', async () => stringify(await ctx.kube.getJSON(`${policyPath}/${name}`)), { phase: PHASE });

  // 2. Other policies that would let traffic through (policies are additive).
  const labelled = { ...(pod.metadata?.labels ?? {}), [key]: value };
  const recorded = new Map((ctx.status.containment.patchedPolicies ?? []).map((p) => [p.original, p]));
  const patched: PatchedPolicy[] = [];
  for (const p of policies) {
    const policy = p.metadata!.name!;
    const original = originalArtifact('NetworkPolicy', namespace, policy, p.metadata!.uid!);
    if (excludesLabel(p, key) && ctx.caseFile.has(original)) {
      patched.push(recorded.get(original) ?? { name: policy, original, generation: p.metadata?.generation });
      continue;
    }
    if (!needsExclusion(p, labelled)) continue;
    // The original as served (wire field names), and the patch guarded by that same resourceVersion.
    const served = (await ctx.kube.getJSON(`${policyPath}/${encodeURIComponent(policy)}`)) as { metadata: { resourceVersion: string } };
    await ctx.caseFile.writeText(original, stringify(served), { phase: PHASE });
    const expressions = [...(p.spec?.podSelector?.matchExpressions ?? []), { key, operator: 'DoesNotExist' }];
    let after;
    try {
      after = await ctx.kube.networking.patchNamespacedNetworkPolicy(
        { name: policy, namespace, body: { metadata: { resourceVersion: served.metadata.resourceVersion }, spec: { podSelector: { matchExpressions: expressions } } } },
        ctx.kube.mergePatch,
      );
    } catch (err) {
      throw during(`excluding the incident label from NetworkPolicy ${policy}`, err);
    }
    const generation = after.metadata?.generation;
    await ctx.caseFile.record('networkpolicy-patched', { name: policy, added: { key, operator: 'DoesNotExist' }, original, generation }, PHASE);
    patched.push({ name: policy, original, generation });
  }
  ctx.status.containment.patchedPolicies = patched;

  // 3. The label: from here on the deny-all selects the suspect, and only the suspect.
  ctx.status.containment.label = `${key}=${value}`;
  await labelPod(ctx, pod, key, value);
  const detached = ctx.spec.containment.network.detachFromWorkload ? await detachFromWorkload(ctx, pod) : undefined;
  const base = `pod labelled ${key}=${value}; NetworkPolicy ${name} denies all ingress and egress${describeAllowances(ctx.spec)}; ${patched.length} other polic${patched.length === 1 ? 'y' : 'ies'} patched to exclude it` +
    (detached ? `; ${detached}` : '');
  await ctx.caseFile.record('limitation', {
    finding: 'NetworkPolicy governs new connections: connections established before isolation may survive on some CNIs (conntrack), and traffic from the node itself is not policed',
  }, PHASE);
  if (!ctx.spec.containment.network.verify) return { status: 'True', reason: 'Isolated', message: `${base}; enforcement not verified (spec.containment.network.verify is false)` };

  const verification = await verifyIsolation(ctx, { key, value });
  ctx.status.containment.verification = verification.record;
  await ctx.caseFile.captureOnce('containment/verification.json', () => JSON.stringify(verification.record, null, 2) + '\n', { phase: PHASE });
  if (verification.outcome === 'blocked') return { status: 'True', reason: 'Isolated', message: `${base}; enforcement verified: ${verification.summary}` };
  if (verification.outcome === 'leaking') {
    return { status: 'False', reason: 'NotEnforced', message: `${base}, but the probe still connected (${verification.summary}): the cluster's CNI may not enforce NetworkPolicy` };
  }
  return { status: 'False', reason: 'VerificationInconclusive', message: `${base}; the probe could not tell (${verification.summary})` };
}

/** Whether the custody log already records `action` on the object named `name` for this phase. */
function inCustody(ctx: PhaseContext, action: string, name: string): boolean {
  return ctx.caseFile.custodyRecords().some((r) => r.phase === PHASE && r.action === action && (r.detail?.name === name || r.detail?.pod === name));
}

async function labelPod(ctx: PhaseContext, pod: V1Pod, key: string, value: string): Promise<void> {
  const detail = { pod: pod.metadata!.name, uid: pod.metadata!.uid, label: `${key}=${value}` };
  if (pod.metadata?.labels?.[key] === value) {
    // Put on ahead of the bookkeeping, or before a restart: the key is this case's alone.
    if (!inCustody(ctx, 'pod-labelled', pod.metadata!.name!)) await ctx.caseFile.record('pod-labelled', { ...detail, foundInCluster: true }, PHASE);
    return;
  }
  try {
    await ctx.kube.core.patchNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: incidentLabelPatch(pod, key, value) });
  } catch (err) {
    throw during(`labelling pod ${pod.metadata!.name}`, err);
  }
  await ctx.caseFile.record('pod-labelled', detail, PHASE);
}
