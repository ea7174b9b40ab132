// RBACNarrowed, applying: take the suspect pod's ServiceAccount out of every RoleBinding and
// ClusterRoleBinding that names it, saving each as found first, and take the API server's own answer
// (SubjectAccessReview) before and after. Bindings are only updated, never deleted: one whose sole
// subject was the ServiceAccount stays, empty, so release is an update back and nothing is re-created.
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1RoleBinding, V1PolicyRule } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { ContainmentStatus } from '../../api/investigation.js';
import { isConflict, isNotFound } from '../../kube/errors.js';
import { RetryableError } from '../../errors.js';
import type { PhaseContext, PhaseOutcome, ReleaseContext } from '../phase.js';
import { originalArtifact, savedOriginals } from '../shared/originals.js';
import { recordOnce } from '../shared/record-once.js';
import { reviewAccess } from '../scope-mapped.js';
import { exposureLine, judgeAccess, type AccessJudgement, type AccessSnapshot, type GroupGrant } from './access.js';
import { listBindings, readBinding, updateBinding } from './client.js';
import {
  bindingLabel,
  describeSubject,
  namesServiceAccount,
  PHASE,
  planNarrowing,
  RBAC_API_VERSION,
  serviceAccountGroups,
  serviceAccountUser,
  type BindingKind,
  type BindingRef,
  type GroupBinding,
} from './plan.js';

export const ACCESS_BEFORE = 'containment/rbac/access-before.json';
export const ACCESS_AFTER = 'containment/rbac/access-after.json';
/** Attempts for one object when the API server answers 409 (changed meanwhile): re-read, re-plan, retry. */
const CONFLICT_ATTEMPTS = 3;
/** The RBAC authorizer works from a watch cache: a removed grant can still answer "allowed" for a moment. */
export const SETTLE_ATTEMPTS = 8;
export const SETTLE_DELAY_MS = 500;
/** Rounds of list-and-narrow when the authorizer still names the ServiceAccount's own subject. */
const NARROW_ROUNDS = 3;

type RbacAction = NonNullable<ContainmentStatus['rbac']>[number];

const yamlOf = (value: unknown) => stringify(value, { aliasDuplicateObjects: false });

export async function narrow(ctx: PhaseContext, namespace: string, sa: string, podUID: string | undefined): Promise<PhaseOutcome> {
  const before = await captureAccess(ctx, ACCESS_BEFORE, namespace, sa);

  let groupGrants: GroupGrant[] = [];
  let after: AccessSnapshot | undefined;
  let judgement: AccessJudgement | undefined;
  let stillNaming: BindingRef[] = [];
  for (let round = 0; round < NARROW_ROUNDS; round++) {
    const plan = planNarrowing(await listBindings(ctx), namespace, sa);
    for (const c of plan.changes) await narrowBinding(ctx, c.ref, c.binding, namespace, sa);
    groupGrants = await withRules(ctx, plan.groupBindings);
    // The authorizer's cache may still hold a grant just removed: ask again until no answer names the account itself.
    for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(SETTLE_DELAY_MS);
      after = await accessSnapshot(ctx, namespace, sa);
      judgement = judgeAccess(before.checks, after.checks, groupGrants, namespace, sa);
      if (judgement.direct.length === 0) break;
    }
    const final = planNarrowing(await listBindings(ctx), namespace, sa);
    stillNaming = final.changes.map((x) => x.ref);
    if (judgement!.direct.length === 0 && stillNaming.length === 0) break;
  }
  await ctx.caseFile.captureOnce(ACCESS_AFTER, () => `${JSON.stringify(after, null, 2)}\n`, { phase: PHASE });

  const actions = await actionsFromCase(ctx, namespace, sa);
  const containment = (ctx.status.containment ??= {} as ContainmentStatus);
  containment.rbac = actions;

  // What cannot be narrowed to one account: group grants reach every ServiceAccount in the group.
  const exposure = [...new Set(groupGrants.map(exposureLine))];
  containment.remainingExposure = exposure;
  if (exposure.length > 0) {
    await recordOnce(ctx, PHASE, 'limitation', {
      finding: `group grants cannot be narrowed to ServiceAccount ${sa} and were left in force: ${exposure.join('; ')}`,
      grants: exposure,
    });
  }

  // Blast radius: every other live pod running as this ServiceAccount loses the same permissions.
  const shared = (await ctx.kube.core.listNamespacedPod({ namespace })).items
    .filter((p) => p.metadata?.uid !== podUID && (p.spec?.serviceAccountName ?? 'default') === sa)
    .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
    .map((p) => p.metadata!.name!)
    .sort();
  containment.sharedServiceAccountPods = shared;
  if (shared.length > 0 && actions.length > 0) {
    await recordOnce(ctx, PHASE, 'limitation', {
      finding: `narrowing ServiceAccount ${sa} also removes these pods' permissions: ${shared.join(', ')}`,
      pods: shared,
    });
  }

  const j = judgement!;
  const emptied = actions.filter((a) => a.emptied).length;
  const parts: string[] = [];
  parts.push(
    actions.length > 0
      ? `ServiceAccount ${sa} removed from ${actions.length} binding(s) (${emptied} left without subjects, not deleted)`
      : `no RoleBinding or ClusterRoleBinding names ServiceAccount ${sa}: nothing to remove`,
  );
  if (j.denied.length > 0) parts.push(j.denied.join(', '));
  else if (!before.checks.some((c) => c.allowed)) parts.push('the account was allowed none of the checked actions before narrowing either');
  if (exposure.length > 0) parts.push(`${exposure.length} group grant(s) remain: ${exposure.join('; ')}`);
  if (j.expected.length > 0) parts.push(j.expected.join(', '));
  if (shared.length > 0) parts.push(`${shared.length} other pod(s) run as ${sa} and lose the same permissions: ${shared.join(', ')}`);
  const caveat =
    'the mounted token stays valid: only future API requests are denied; running processes and network traffic are not stopped';

  if (j.notNarrowed.length > 0 || stillNaming.length > 0) {
    const problems = [...j.notNarrowed, ...stillNaming.map((r) => `${bindingLabel(r)} names ServiceAccount ${sa} again (re-added while narrowing: GitOps or an attacker?)`)];
    return { status: 'False', reason: 'NotNarrowed', message: `${parts[0]}, but ${problems.join('; ')}` };
  }
  return { status: 'True', reason: actions.length > 0 ? 'Narrowed' : 'NothingToNarrow', message: `${parts.join('; ')}; ${caveat}` };
}

/** Saves the binding as found, then updates it without the ServiceAccount (never deletes it). */
async function narrowBinding(ctx: PhaseContext, ref: BindingRef, found: V1RoleBinding, namespace: string, sa: string): Promise<void> {
  const original = originalArtifact(ref.kind, ref.namespace, ref.name, found.metadata!.uid!);
  // The original first: no change without a record of what it changed. A rerun keeps the first copy.
  await ctx.caseFile.captureOnce(
    original,
    () => yamlOf({ apiVersion: RBAC_API_VERSION, kind: ref.kind, metadata: found.metadata, roleRef: found.roleRef, subjects: found.subjects }),
    { phase: PHASE },
  );
  let current: V1RoleBinding | undefined = found;
  for (let attempt = 0; attempt < CONFLICT_ATTEMPTS && current; attempt++) {
    const change = planNarrowing([{ kind: ref.kind, binding: current }], namespace, sa).changes[0];
    if (!change) return; // no longer names the ServiceAccount
    try {
      await updateBinding(ctx, ref, { ...current, subjects: change.keep });
      await ctx.caseFile.record('rbac-narrowed', {
        kind: ref.kind,
        ...(ref.namespace ? { namespace: ref.namespace } : {}),
        name: ref.name,
        action: 'SubjectRemoved',
        removedSubjects: change.removed.map(describeSubject),
        keptSubjects: change.keep.length,
        original,
      }, PHASE);
      return;
    } catch (err) {
      if (isNotFound(err)) return; // deleted meanwhile: it grants nothing now
      if (!isConflict(err)) throw err;
      current = await readBinding(ctx, ref);
    }
  }
  if (current) throw new RetryableError(`${bindingLabel(ref)} kept changing while casefile narrowed it (409 Conflict ${CONFLICT_ATTEMPTS} times)`, 'Conflict');
}

/**
 * What narrowing did, derived from the saved originals, the custody log and the cluster as it is now,
 * so that a rerun after a restart reports the actions of the earlier run too.
 */
async function actionsFromCase(ctx: PhaseContext, namespace: string, sa: string): Promise<RbacAction[]> {
  const actions: RbacAction[] = [];
  const recorded = new Set<string>();
  for (const r of ctx.caseFile.custodyRecords()) {
    if (r.action === 'rbac-narrowed' && typeof r.detail?.original === 'string') recorded.add(r.detail.original);
  }
  for (const o of await savedOriginals<V1RoleBinding>(ctx, 'RoleBinding').then(async (rb) => [...rb, ...(await savedOriginals<V1RoleBinding>(ctx, 'ClusterRoleBinding'))])) {
    const kind = o.object.kind as BindingKind;
    const ref: BindingRef = kind === 'RoleBinding' ? { kind, namespace: o.object.metadata?.namespace, name: o.object.metadata!.name! } : { kind, name: o.object.metadata!.name! };
    const current = await readBinding(ctx, ref);
    const namesSA = (b: V1RoleBinding) => (b.subjects ?? []).some((s) => namesServiceAccount(s, ref.namespace, namespace, sa));
    if (!current || namesSA(current) || !namesSA(o.object)) continue; // not (or no longer) narrowed by casefile
    if (!recorded.has(o.artifact)) {
      // Saved and changed, but the process stopped before the custody record: write it now.
      await ctx.caseFile.record('rbac-narrowed', { kind, ...(ref.namespace ? { namespace: ref.namespace } : {}), name: ref.name, action: 'SubjectRemoved', original: o.artifact, recovered: true }, PHASE);
    }
    const emptied = (current.subjects ?? []).length === 0;
    actions.push({ kind, ...(ref.namespace ? { namespace: ref.namespace } : {}), name: ref.name, action: 'SubjectRemoved', original: o.artifact, ...(emptied ? { emptied } : {}) });
  }
  return actions;
}

/** Group bindings with the rules their role grants; a role that is missing or empty grants nothing and is not exposure. */
async function withRules(ctx: PhaseContext, groups: readonly GroupBinding[]): Promise<GroupGrant[]> {
  const cache = new Map<string, Promise<V1PolicyRule[]>>();
  const rulesOf = (g: GroupBinding) => {
    const key = `${g.roleRef.kind}/${g.ref.namespace ?? ''}/${g.roleRef.name}`;
    let p = cache.get(key);
    if (!p) {
      p = (async () => {
        try {
          const role = g.roleRef.kind === 'ClusterRole'
            ? await ctx.kube.rbac.readClusterRole({ name: g.roleRef.name })
            : await ctx.kube.rbac.readNamespacedRole({ name: g.roleRef.name, namespace: g.ref.namespace! });
          return role.rules ?? [];
        } catch (err) {
          if (isNotFound(err)) return [];
          throw err;
        }
      })();
      cache.set(key, p);
    }
    return p;
  };
  const out: GroupGrant[] = [];
  for (const g of groups) {
    const rules = await rulesOf(g);
    if (rules.length > 0) out.push({ ...g, rules });
  }
  return out;
}

export async function accessSnapshot(ctx: ReleaseContext, namespace: string, sa: string): Promise<AccessSnapshot> {
  const checks = await reviewAccess(ctx, namespace, sa);
  return { serviceAccount: sa, namespace, user: serviceAccountUser(namespace, sa), groups: serviceAccountGroups(namespace), at: new Date().toISOString(), checks };
}

export async function readJSONArtifact<T>(ctx: ReleaseContext, artifact: string): Promise<T | undefined> {
  if (!ctx.caseFile.has(artifact)) return undefined;
  return JSON.parse(await ctx.caseFile.readText(artifact)) as T;
}

/** Captured once: a rerun (after a restart, when access is already narrowed) reads the first answer back. */
async function captureAccess(ctx: PhaseContext, artifact: string, namespace: string, sa: string): Promise<AccessSnapshot> {
  let fresh: AccessSnapshot | undefined;
  const rec = await ctx.caseFile.captureOnce(artifact, async () => {
    fresh = await accessSnapshot(ctx, namespace, sa);
    return `${JSON.stringify(fresh, null, 2)}\n`;
  }, { phase: PHASE });
  if (fresh && !rec.reused) return fresh;
  const saved = await readJSONArtifact<AccessSnapshot>(ctx, artifact);
  if (!saved) throw new RetryableError(`${artifact} is recorded but could not be read back`);
  return saved;
}
