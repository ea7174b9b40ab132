// NetworkIsolated, releasing: undo what the record says was applied (status.containment and the
// custody log), never what the spec says now, then re-read everything and claim only what was found.
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { isNotFound } from '../../kube/errors.js';
import { during, RequeueAfter, RetryableError } from '../../errors.js';
import type { ReleaseContext, ReleaseOutcome } from '../phase.js';
import { jsonPointer } from '../shared/json-pointer.js';
import { savedOriginals } from '../shared/originals.js';
import type { PatchedPolicy } from './apply.js';
import { reattachToWorkload } from './detach.js';
import { resolveIsolationId } from './isolation-id.js';
import { incidentLabel, INVESTIGATION_UID, PHASE, policyName } from './policy.js';

/** What isolation applied, from status first and the custody log second (a status write may have been lost). */
export function appliedIsolation(ctx: ReleaseContext): { policy?: string; labelKey?: string; patched: PatchedPolicy[] } {
  const c = ctx.status.containment ?? {};
  const records = ctx.caseFile.custodyRecords().filter((r) => r.phase === PHASE);
  const detail = (action: string, field: string) => records.filter((r) => r.action === action).map((r) => r.detail?.[field]).find((v) => typeof v === 'string') as string | undefined;
  const patched = new Map<string, PatchedPolicy>();
  for (const r of records.filter((r) => r.action === 'networkpolicy-patched')) {
    const d = r.detail as { name?: string; original?: string; generation?: number } | undefined;
    if (d?.name && d.original) patched.set(d.original, { name: d.name, original: d.original, generation: d.generation });
  }
  for (const p of c.patchedPolicies ?? []) patched.set(p.original, { ...patched.get(p.original), ...p });
  const label = c.label ?? detail('pod-labelled', 'label');
  return { policy: c.networkPolicy ?? detail('networkpolicy-created', 'name'), labelKey: label?.split('=')[0], patched: [...patched.values()] };
}

/**
 * What the first writes (contain-now.ts, or intake's ahead of the create) may have applied before
 * anything recorded it: the policy named for this case and carrying its UID, and the incident label,
 * whose key is this case's alone. Resolves with the pods carrying the label (recorded or not), listed
 * once for the release to unlabel.
 */
async function appliedAhead(ctx: ReleaseContext, applied: ReturnType<typeof appliedIsolation>): Promise<V1Pod[]> {
  const inv = ctx.investigation;
  const { namespace } = inv.metadata;
  // A case released (or deleted: intake creates it with the finalizer) before intake's claim waits for it.
  const id = await resolveIsolationId(ctx.kube, inv, ctx.status);
  if (!applied.policy) {
    const name = policyName(id);
    try {
      const found = await ctx.kube.networking.readNamespacedNetworkPolicy({ name, namespace });
      if (found.metadata?.annotations?.[INVESTIGATION_UID] === inv.metadata.uid) applied.policy = name;
    } catch (err) {
      if (!isNotFound(err)) throw during(`reading NetworkPolicy ${name}`, err);
    }
  }
  const key = applied.labelKey ?? incidentLabel(id).key;
  const labelled = await labelledPods(ctx, key);
  if (labelled.length > 0) applied.labelKey ??= key;
  return labelled;
}

/** Pods in the namespace carrying the incident label: found by the label, so a pod the record never named is found too. */
async function labelledPods(ctx: ReleaseContext, key: string): Promise<V1Pod[]> {
  return (await ctx.kube.core.listNamespacedPod({ namespace: ctx.investigation.metadata.namespace, labelSelector: key })).items;
}

export async function releaseIsolation(ctx: ReleaseContext): Promise<ReleaseOutcome> {
  const { namespace } = ctx.investigation.metadata;
  const applied = appliedIsolation(ctx);
  const labelled = await appliedAhead(ctx, applied);
  const saved = await savedOriginals<V1NetworkPolicy>(ctx, 'NetworkPolicy');
  if (!applied.policy && !applied.labelKey && applied.patched.length === 0 && saved.length === 0) return { message: 'nothing was isolated' };
  const differences: string[] = [];
  // Workload labels first (the pod rejoins its owner while still isolated), then the incident label.
  differences.push(...(await reattachToWorkload(ctx)));
  if (applied.labelKey) await unlabelPods(ctx, applied.labelKey, labelled);
  if (applied.policy) {
    try {
      await ctx.kube.networking.deleteNamespacedNetworkPolicy({ name: applied.policy, namespace });
      await ctx.caseFile.record('networkpolicy-deleted', { name: applied.policy }, 'Released');
    } catch (err) {
      if (!isNotFound(err)) throw during(`deleting NetworkPolicy ${applied.policy}`, err);
    }
  }
  const restored: string[] = [];
  const originals = new Map(saved.map((o) => [o.artifact, o.object]));
  // An original saved without a record of its patch (the process stopped in between) is undone too.
  for (const [original, object] of originals) {
    if (!applied.patched.some((p) => p.original === original)) applied.patched.push({ name: object.metadata!.name!, original });
  }
  for (const p of applied.patched) {
    // The name as saved in the original (a file name may be shortened), else as recorded.
    const saved = originals.get(p.original);
    const name = saved?.metadata?.name ?? p.name;
    const outcome = await restorePolicy(ctx, name, applied.labelKey, p.generation ?? (saved?.metadata?.generation !== undefined ? saved.metadata.generation + 1 : undefined));
    if (outcome.restored) restored.push(name);
    differences.push(...outcome.differences);
  }
  await verifyReleased(ctx, applied);
  const parts = [
    applied.labelKey && `incident label ${applied.labelKey} gone from the pod`,
    applied.policy && `NetworkPolicy ${applied.policy} gone`,
    applied.patched.length > 0 && `${restored.length} of ${applied.patched.length} patched polic${applied.patched.length === 1 ? 'y' : 'ies'} restored`,
  ].filter(Boolean);
  return { message: `${parts.join(', ')} (re-read)`, differences };
}

/** Takes casefile's DoesNotExist expression out again; any other change someone made meanwhile stays. */
async function restorePolicy(ctx: ReleaseContext, name: string, key: string | undefined, appliedGeneration: number | undefined): Promise<{ restored: boolean; differences: string[] }> {
  const { namespace } = ctx.investigation.metadata;
  let current: V1NetworkPolicy;
  try {
    current = await ctx.kube.networking.readNamespacedNetworkPolicy({ name, namespace });
  } catch (err) {
    if (!isNotFound(err)) throw during(`reading NetworkPolicy ${name}`, err);
    return { restored: false, differences: [`NetworkPolicy ${name} was deleted by someone else meanwhile; not recreated`] };
  }
  const differences: string[] = [];
  // Compared before casefile's own restore changes the generation again.
  const generation = current.metadata?.generation;
  if (appliedGeneration !== undefined && generation !== undefined && generation !== appliedGeneration) {
    differences.push(`NetworkPolicy ${name} was also changed by someone else while the case was open (generation ${appliedGeneration} -> ${generation}); their change was kept`);
  }
  const expressions = current.spec?.podSelector?.matchExpressions ?? [];
  const kept = expressions.filter((e) => e.key !== key);
  if (key && kept.length !== expressions.length) {
    try {
      await ctx.kube.networking.patchNamespacedNetworkPolicy(
        { name, namespace, body: { metadata: { resourceVersion: current.metadata!.resourceVersion }, spec: { podSelector: { matchExpressions: kept.length ? kept : null } } } },
        ctx.kube.mergePatch,
      );
    } catch (err) {
      throw during(`restoring NetworkPolicy ${name}`, err);
    }
    await ctx.caseFile.record('networkpolicy-restored', { name, removed: { key, operator: 'DoesNotExist' } }, 'Released');
  }
  return { restored: true, differences };
}

async function unlabelPods(ctx: ReleaseContext, key: string, labelled: V1Pod[]): Promise<void> {
  for (const pod of labelled) {
    const value = pod.metadata!.labels![key];
    try {
      await ctx.kube.core.patchNamespacedPod({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        body: [{ op: 'test', path: `/metadata/labels/${jsonPointer(key)}`, value }, { op: 'remove', path: `/metadata/labels/${jsonPointer(key)}` }],
      });
    } catch (err) {
      if (isNotFound(err)) continue;
      throw during(`removing the incident label from pod ${pod.metadata!.name}`, err);
    }
    await ctx.caseFile.record('pod-unlabelled', { pod: pod.metadata!.name, label: key }, 'Released');
  }
}

/** Released is claimed only for what was read back: the policy gone, the label gone, no policy still excluding it. */
async function verifyReleased(ctx: ReleaseContext, applied: ReturnType<typeof appliedIsolation>): Promise<void> {
  const { namespace } = ctx.investigation.metadata;
  if (applied.policy) {
    try {
      const still = await ctx.kube.networking.readNamespacedNetworkPolicy({ name: applied.policy, namespace });
      if (still.metadata?.deletionTimestamp) throw new RequeueAfter(`NetworkPolicy ${applied.policy} is still being deleted`, 1000, 'ReleasePending');
      throw new RetryableError(`NetworkPolicy ${applied.policy} still exists after its deletion`, 'ReleaseNotConfirmed');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (applied.labelKey) {
    const still = await labelledPods(ctx, applied.labelKey);
    if (still.length > 0) {
      throw new RetryableError(`pod ${still.map((p) => p.metadata?.name).join(', ')} still carries ${applied.labelKey}`, 'ReleaseNotConfirmed');
    }
  }
  const policies = (await ctx.kube.networking.listNamespacedNetworkPolicy({ namespace })).items;
  const excluding = policies.filter((p) => applied.labelKey && (p.spec?.podSelector?.matchExpressions ?? []).some((e) => e.key === applied.labelKey));
  if (excluding.length > 0) {
    throw new RetryableError(`NetworkPolicy ${excluding.map((p) => p.metadata?.name).join(', ')} still excludes ${applied.labelKey}`, 'ReleaseNotConfirmed');
  }
}
