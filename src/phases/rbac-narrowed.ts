// RBACNarrowed: take the suspect pod's ServiceAccount out of every RoleBinding and ClusterRoleBinding
// that names it, so its (possibly stolen) token can no longer act through the API. Contain, do not
// destroy: each binding is saved as found before it is changed, a binding whose sole subject was the
// ServiceAccount keeps existing with no subjects (casefile never deletes or creates bindings, so restoring
// is an update), and the API server's own answer (SubjectAccessReview) is taken before and after. What this cannot do is said too: group grants (system:serviceaccounts, ...) cannot be
// narrowed to one account, other pods running as the same ServiceAccount lose the same permissions, and
// the mounted token stays valid: only future API requests are denied, running processes are not stopped.
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1RoleRef, RbacV1Subject, V1PolicyRule, V1RoleBinding } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import type { ContainmentStatus } from '../api/investigation.js';
import { errorMessage, isConflict, isForbidden, isNotFound } from '../engine/kube.js';
import { sanitizeSegment } from '../evidence/paths.js';
import { evidenceErrorReason } from '../evidence/store.js';
import { nodeActionRefusal } from '../security/node-actions.js';
import { podGone } from './manifest-captured.js';
import { RetryableError, type Phase, type PhaseContext, type PhaseOutcome, type ReleaseOutcome } from './phase.js';
import { reviewAccess, subjectReachesServiceAccount } from './scope-mapped.js';

const PHASE = 'RBACNarrowed';
const RBAC_API_VERSION = 'rbac.authorization.k8s.io/v1';
export const ORIGINALS_DIR = 'containment/originals/rbac/';
export const ACCESS_BEFORE = 'containment/rbac/access-before.json';
export const ACCESS_AFTER = 'containment/rbac/access-after.json';
/** Attempts for one object when the API server answers 409 (changed meanwhile): re-read, re-plan, retry. */
const CONFLICT_ATTEMPTS = 3;
/** The RBAC authorizer works from a watch cache: a removed grant can still answer "allowed" for a moment. */
const SETTLE_ATTEMPTS = 8;
const SETTLE_DELAY_MS = 500;
/** Rounds of list-and-narrow when the authorizer still names the ServiceAccount's own subject. */
const NARROW_ROUNDS = 3;

const yamlOf = (value: unknown) => stringify(value, { aliasDuplicateObjects: false });

// ---- pure decision logic (unit-tested) ----

export type BindingKind = 'RoleBinding' | 'ClusterRoleBinding';

/** A RoleBinding or ClusterRoleBinding (the two have the same shape) with its kind, which list items lack. */
export interface BindingItem {
  kind: BindingKind;
  binding: V1RoleBinding;
}

export interface BindingRef {
  kind: BindingKind;
  namespace?: string;
  name: string;
}

export interface GroupBinding {
  ref: BindingRef;
  roleRef: { kind: string; name: string };
  group: string;
}

export interface NarrowingPlan {
  /** Replace the binding with the ServiceAccount's subject(s) taken out (possibly leaving none). */
  patches: { ref: BindingRef; binding: V1RoleBinding; keep: RbacV1Subject[]; removed: RbacV1Subject[] }[];
  /** Group subjects that reach the ServiceAccount: not changed (they reach every account in the group). */
  groupBindings: GroupBinding[];
}

export const serviceAccountGroups = (namespace: string): string[] => [
  'system:serviceaccounts',
  `system:serviceaccounts:${namespace}`,
  'system:authenticated',
];

export const serviceAccountUser = (namespace: string, sa: string) => `system:serviceaccount:${namespace}:${sa}`;

export function refOf(item: BindingItem): BindingRef {
  const name = item.binding.metadata?.name ?? '';
  return item.kind === 'RoleBinding' ? { kind: item.kind, namespace: item.binding.metadata?.namespace, name } : { kind: item.kind, name };
}

export function bindingLabel(ref: BindingRef): string {
  return ref.kind === 'RoleBinding' ? `RoleBinding ${ref.namespace}/${ref.name}` : `ClusterRoleBinding ${ref.name}`;
}

/** Where the binding as found before narrowing is saved: `containment/originals/rbac/<Kind>-<ns or _cluster>-<name>.yaml`. */
export function originalArtifact(ref: BindingRef): string {
  return `${ORIGINALS_DIR}${sanitizeSegment(`${ref.kind}-${ref.kind === 'RoleBinding' ? ref.namespace : '_cluster'}-${ref.name}`)}.yaml`;
}

/**
 * The subject is the ServiceAccount itself (kind ServiceAccount, or kind User with its username), not a
 * group it belongs to. A ServiceAccount subject of a RoleBinding without a namespace means the binding's own.
 */
export function namesServiceAccount(subject: RbacV1Subject, bindingNamespace: string | undefined, namespace: string, sa: string): boolean {
  if (subject.kind === 'Group') return false;
  const s = subject.kind === 'ServiceAccount' && !subject.namespace && bindingNamespace ? { ...subject, namespace: bindingNamespace } : subject;
  return subjectReachesServiceAccount(s, namespace, sa);
}

/** The subject is one of the groups every ServiceAccount of the namespace belongs to. */
export function isServiceAccountGroup(subject: RbacV1Subject, namespace: string): boolean {
  return subject.kind === 'Group' && subjectReachesServiceAccount(subject, namespace, '');
}

/** Which bindings to replace without the ServiceAccount, which group grants stay. */
export function planNarrowing(items: readonly BindingItem[], namespace: string, sa: string): NarrowingPlan {
  const plan: NarrowingPlan = { patches: [], groupBindings: [] };
  for (const item of items) {
    const ref = refOf(item);
    const subjects = item.binding.subjects ?? [];
    const own = (s: RbacV1Subject) => namesServiceAccount(s, ref.namespace, namespace, sa);
    const removed = subjects.filter(own);
    const keep = subjects.filter((s) => !own(s));
    if (removed.length > 0) plan.patches.push({ ref, binding: item.binding, keep, removed });
    for (const s of keep.filter((s) => isServiceAccountGroup(s, namespace))) {
      plan.groupBindings.push({ ref, roleRef: { kind: item.binding.roleRef.kind, name: item.binding.roleRef.name }, group: s.name });
    }
  }
  return plan;
}

/** What narrowing does to a binding as saved: the ServiceAccount's subject(s) removed, if it names it. */
export function actionFor(original: V1RoleBinding, kind: BindingKind, namespace: string, sa: string): 'SubjectRemoved' | undefined {
  const bindingNs = kind === 'RoleBinding' ? original.metadata?.namespace : undefined;
  return (original.subjects ?? []).some((s) => namesServiceAccount(s, bindingNs, namespace, sa)) ? 'SubjectRemoved' : undefined;
}

const subjectKey = (s: RbacV1Subject, bindingNs: string | undefined) =>
  `${s.kind}|${s.apiGroup ?? ''}|${s.name}|${s.kind === 'ServiceAccount' ? (s.namespace || bindingNs || '') : ''}`;
const describeSubject = (s: RbacV1Subject) => `${s.kind} ${s.kind === 'ServiceAccount' && s.namespace ? `${s.namespace}/` : ''}${s.name}`;

export type RestorePlan =
  | { action: 'AddSubjects'; subjects: RbacV1Subject[]; added: RbacV1Subject[]; differences: string[] }
  | { action: 'None'; outcome: 'AlreadyPresent' | 'NotRestored'; differences: string[] };

/**
 * How to undo narrowing on one binding, merging into what is there now: only the ServiceAccount's
 * subject(s) go back; every subject someone added meanwhile is kept, and every difference from the
 * original other than the ServiceAccount is reported.
 */
export function planRestore(
  kind: BindingKind,
  original: V1RoleBinding,
  current: V1RoleBinding | undefined,
  namespace: string,
  sa: string,
  artifact: string,
): RestorePlan {
  const ref: BindingRef = { kind, namespace: kind === 'RoleBinding' ? original.metadata?.namespace : undefined, name: original.metadata?.name ?? '' };
  const label = bindingLabel(ref);
  const own = (s: RbacV1Subject) => namesServiceAccount(s, ref.namespace, namespace, sa);
  const originalSubjects = original.subjects ?? [];
  const ownOriginal = originalSubjects.filter(own);
  if (!current) {
    return {
      action: 'None',
      outcome: 'NotRestored',
      differences: [
        `${label} was deleted (by someone else, or with its namespace) after casefile removed ServiceAccount ${sa} from it: not recreated (casefile never creates bindings, and that would also bring back the subjects the deletion removed); the original is ${artifact}`,
      ],
    };
  }
  const differences: string[] = [];
  const roleOf = (r: V1RoleRef | undefined) => `${r?.kind ?? '?'} ${r?.name ?? '?'}`;
  if (roleOf(original.roleRef) !== roleOf(current.roleRef)) {
    return {
      action: 'None',
      outcome: 'NotRestored',
      differences: [
        `${label}: roleRef is now ${roleOf(current.roleRef)}, was ${roleOf(original.roleRef)} (the binding was replaced meanwhile): ServiceAccount ${sa} not re-added, as that would grant it a different role; the original is ${artifact}`,
      ],
    };
  }
  const currentSubjects = current.subjects ?? [];
  const originalOthers = new Map(originalSubjects.filter((s) => !own(s)).map((s) => [subjectKey(s, ref.namespace), s]));
  const currentOthers = new Map(currentSubjects.filter((s) => !own(s)).map((s) => [subjectKey(s, ref.namespace), s]));
  for (const [k, s] of currentOthers) if (!originalOthers.has(k)) differences.push(`${label}: subject ${describeSubject(s)} was added since narrowing (kept)`);
  for (const [k, s] of originalOthers) if (!currentOthers.has(k)) differences.push(`${label}: subject ${describeSubject(s)} was removed since narrowing (left removed)`);
  const present = new Set(currentSubjects.map((s) => subjectKey(s, ref.namespace)));
  const added = ownOriginal.filter((s) => !present.has(subjectKey(s, ref.namespace)));
  if (added.length === 0) return { action: 'None', outcome: 'AlreadyPresent', differences };
  return { action: 'AddSubjects', subjects: [...currentSubjects, ...added], added, differences };
}

export interface AccessResult {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  allowed: boolean;
  reason: string;
}

export interface AccessSnapshot {
  serviceAccount: string;
  namespace: string;
  user: string;
  groups: string[];
  at: string;
  checks: AccessResult[];
}

export function checkLabel(c: Pick<AccessResult, 'verb' | 'group' | 'resource' | 'subresource'>): string {
  return `${c.verb} ${c.resource}${c.group ? `.${c.group}` : ''}${c.subresource ? `/${c.subresource}` : ''}`;
}

export interface AuthorizerGrant {
  bindingKind: BindingKind;
  bindingName: string;
  bindingNamespace?: string;
  roleKind: string;
  roleName: string;
  subjectKind: string;
  subjectName: string;
}

/**
 * The RBAC authorizer names the grant that allowed a request, e.g.
 * `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to Group "system:serviceaccounts"` or
 * `RBAC: allowed by RoleBinding "x/ns" of Role "y" to ServiceAccount "web/ns"`.
 */
export function parseAuthorizerReason(reason: string): AuthorizerGrant | undefined {
  const m = /allowed by (ClusterRoleBinding|RoleBinding) "([^"]+)" of (\w+) "([^"]+)" to (\w+) "([^"]+)"/.exec(reason);
  if (!m) return undefined;
  const [, bindingKind, binding, roleKind, roleName, subjectKind, subjectName] = m as unknown as [string, BindingKind, string, string, string, string, string];
  let bindingName = binding;
  let bindingNamespace: string | undefined;
  if (bindingKind === 'RoleBinding' && binding.includes('/')) {
    bindingName = binding.slice(0, binding.lastIndexOf('/'));
    bindingNamespace = binding.slice(binding.lastIndexOf('/') + 1);
  }
  return { bindingKind, bindingName, ...(bindingNamespace ? { bindingNamespace } : {}), roleKind, roleName, subjectKind, subjectName };
}

/** Whether one policy rule allows a resource check (no resourceNames: a rule limited to names does not grant the verb at large). */
export function ruleAllows(rule: V1PolicyRule, check: Pick<AccessResult, 'verb' | 'group' | 'resource' | 'subresource'>): boolean {
  const has = (list: string[] | undefined, value: string) => (list ?? []).some((v) => v === '*' || v === value);
  const resource = check.subresource ? `${check.resource}/${check.subresource}` : check.resource;
  const resourceMatch = (rule.resources ?? []).some((r) => r === '*' || r === resource || (check.subresource !== undefined && r === `*/${check.subresource}`));
  return has(rule.verbs, check.verb) && has(rule.apiGroups, check.group) && resourceMatch && (rule.resourceNames ?? []).length === 0;
}

export interface GroupGrant extends GroupBinding {
  rules: V1PolicyRule[];
}

export function exposureLine(g: GroupBinding): string {
  return `${bindingLabel(g.ref)} grants ${g.roleRef.kind} ${g.roleRef.name} to group ${g.group}`;
}

export type Attribution =
  | { source: 'group'; grant: string }
  | { source: 'direct'; binding: BindingRef }
  | { source: 'unknown'; reason: string };

/** Why a check is still allowed: a group grant casefile leaves alone, the ServiceAccount's own subject, or something else. */
export function attribute(check: AccessResult, groupGrants: readonly GroupGrant[], namespace: string, sa: string): Attribution {
  const parsed = parseAuthorizerReason(check.reason);
  if (parsed) {
    const bindingNs = parsed.bindingKind === 'RoleBinding' ? parsed.bindingNamespace : undefined;
    if (parsed.subjectKind === 'Group' && serviceAccountGroups(namespace).includes(parsed.subjectName)) {
      const ref: BindingRef = { kind: parsed.bindingKind, ...(bindingNs ? { namespace: bindingNs } : {}), name: parsed.bindingName };
      return { source: 'group', grant: exposureLine({ ref, roleRef: { kind: parsed.roleKind, name: parsed.roleName }, group: parsed.subjectName }) };
    }
    // The authorizer writes a ServiceAccount subject as "name/namespace".
    const subject: RbacV1Subject =
      parsed.subjectKind === 'ServiceAccount' && parsed.subjectName.includes('/')
        ? { kind: 'ServiceAccount', name: parsed.subjectName.split('/')[0]!, namespace: parsed.subjectName.split('/')[1]! }
        : { kind: parsed.subjectKind, name: parsed.subjectName };
    if (namesServiceAccount(subject, bindingNs, namespace, sa)) {
      return { source: 'direct', binding: { kind: parsed.bindingKind, ...(bindingNs ? { namespace: bindingNs } : {}), name: parsed.bindingName } };
    }
    return { source: 'unknown', reason: check.reason };
  }
  // Not the RBAC authorizer's wording (or no reason given): a group grant whose rules cover the check explains it.
  const g = groupGrants.find(
    (grant) => (grant.ref.kind === 'ClusterRoleBinding' || grant.ref.namespace === check.namespace) && grant.rules.some((r) => ruleAllows(r, check)),
  );
  if (g) return { source: 'group', grant: exposureLine(g) };
  return { source: 'unknown', reason: check.reason || 'no reason given by the authorizer' };
}

export interface AccessJudgement {
  /** "get secrets: allowed -> denied" */
  denied: string[];
  /** Still allowed through a group grant: expected, named. */
  expected: string[];
  /** Still allowed for a reason narrowing should have removed or cannot explain. */
  notNarrowed: string[];
  /** Still allowed through the ServiceAccount's own subject (authorizer lag or a binding added meanwhile). */
  direct: BindingRef[];
}

/** Compares the access before and after narrowing, check by check. */
export function judgeAccess(before: readonly AccessResult[], after: readonly AccessResult[], groupGrants: readonly GroupGrant[], namespace: string, sa: string): AccessJudgement {
  const j: AccessJudgement = { denied: [], expected: [], notNarrowed: [], direct: [] };
  const afterByLabel = new Map(after.map((a) => [`${checkLabel(a)}@${a.namespace ?? ''}`, a]));
  for (const b of before.filter((c) => c.allowed)) {
    const label = checkLabel(b);
    const a = afterByLabel.get(`${label}@${b.namespace ?? ''}`);
    if (!a) {
      j.notNarrowed.push(`${label}: not checked after narrowing`);
      continue;
    }
    if (!a.allowed) {
      j.denied.push(`${label}: allowed -> denied`);
      continue;
    }
    const why = attribute(a, groupGrants, namespace, sa);
    if (why.source === 'group') j.expected.push(`${label}: still allowed via ${why.grant}`);
    else if (why.source === 'direct') {
      j.notNarrowed.push(`${label}: still allowed by ${bindingLabel(why.binding)} naming ServiceAccount ${sa}`);
      j.direct.push(why.binding);
    } else j.notNarrowed.push(`${label}: still allowed (${why.reason})`);
  }
  return j;
}

// ---- the phase ----

export const rbacNarrowed: Phase = {
  condition: 'RBACNarrowed',
  containment: true,
  needsTarget: true,
  enabled: (spec) => spec.containment.rbac.narrow,
  async run(ctx): Promise<PhaseOutcome> {
    const pod = await ctx.livePod();
    if (!pod) return podGone(ctx.spec.target.pod);
    const refusal = await nodeActionRefusal(ctx, 'rbac-narrowing');
    if (refusal) return refusal;
    const namespace = ctx.investigation.metadata.namespace;
    const sa = pod.spec?.serviceAccountName ?? 'default';
    try {
      return await narrow(ctx, namespace, sa, pod.metadata?.uid);
    } catch (err) {
      if (isForbidden(err)) {
        return {
          status: 'False',
          reason: 'Forbidden',
          message:
            `the operator may not change RBAC: ${errorMessage(err)}; it needs update/delete on rolebindings and clusterrolebindings ` +
            `(and bind on the roles they reference); anything already changed is recorded in ${ORIGINALS_DIR} and restored on release`,
        };
      }
      throw passThrough(err, 'narrowing RBAC');
    }
  },
  async release(ctx): Promise<ReleaseOutcome> {
    try {
      return await restore(ctx);
    } catch (err) {
      throw passThrough(err, 'restoring RBAC');
    }
  },
};

/** Evidence-store failures and RetryableErrors keep their type; other failures are transient API trouble. */
function passThrough(err: unknown, doing: string): unknown {
  if (err instanceof RetryableError || evidenceErrorReason(err)) return err;
  return new RetryableError(`${doing}: ${errorMessage(err)}`);
}

async function narrow(ctx: PhaseContext, namespace: string, sa: string, podUID: string | undefined): Promise<PhaseOutcome> {
  const before = await captureAccess(ctx, ACCESS_BEFORE, namespace, sa);

  let groupGrants: GroupGrant[] = [];
  let after: AccessSnapshot | undefined;
  let judgement: AccessJudgement | undefined;
  let stillNaming: BindingRef[] = [];
  for (let round = 0; round < NARROW_ROUNDS; round++) {
    const plan = planNarrowing(await listBindings(ctx), namespace, sa);
    for (const p of plan.patches) await narrowBinding(ctx, p.ref, p.binding, namespace, sa);
    groupGrants = await withRules(ctx, plan.groupBindings);
    // The authorizer's cache may still hold a grant just removed: ask again until no answer names the account itself.
    for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(SETTLE_DELAY_MS);
      after = await accessSnapshot(ctx, namespace, sa);
      judgement = judgeAccess(before.checks, after.checks, groupGrants, namespace, sa);
      if (judgement.direct.length === 0) break;
    }
    const final = planNarrowing(await listBindings(ctx), namespace, sa);
    stillNaming = final.patches.map((x) => x.ref);
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
    await recordOnce(ctx, 'limitation', {
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
    await recordOnce(ctx, 'limitation', {
      finding: `narrowing ServiceAccount ${sa} also removes these pods' permissions: ${shared.join(', ')}`,
      pods: shared,
    });
  }

  const j = judgement!;
  const parts: string[] = [];
  parts.push(
    actions.length > 0
      ? `ServiceAccount ${sa} removed from ${actions.length} binding(s) (a binding left with no subjects is kept: release restores it by update)`
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

async function listBindings(ctx: PhaseContext): Promise<BindingItem[]> {
  const [roleBindings, clusterRoleBindings] = await Promise.all([
    // Every namespace: a RoleBinding elsewhere may name this ServiceAccount and grant it access there.
    ctx.kube.rbac.listRoleBindingForAllNamespaces({}),
    ctx.kube.rbac.listClusterRoleBinding({}),
  ]);
  return [
    ...roleBindings.items.map((binding) => ({ kind: 'RoleBinding' as const, binding })),
    ...clusterRoleBindings.items.map((binding) => ({ kind: 'ClusterRoleBinding' as const, binding })),
  ];
}

async function readBinding(ctx: PhaseContext, ref: BindingRef): Promise<V1RoleBinding | undefined> {
  try {
    return ref.kind === 'RoleBinding'
      ? await ctx.kube.rbac.readNamespacedRoleBinding({ name: ref.name, namespace: ref.namespace! })
      : await ctx.kube.rbac.readClusterRoleBinding({ name: ref.name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function replaceBinding(ctx: PhaseContext, ref: BindingRef, body: V1RoleBinding) {
  // body carries the resourceVersion it was read with: a concurrent change answers 409 instead of being lost.
  const withKind = { ...body, apiVersion: RBAC_API_VERSION, kind: ref.kind };
  return ref.kind === 'RoleBinding'
    ? ctx.kube.rbac.replaceNamespacedRoleBinding({ name: ref.name, namespace: ref.namespace!, body: withKind })
    : ctx.kube.rbac.replaceClusterRoleBinding({ name: ref.name, body: withKind });
}

/** Saves the binding as found, then deletes it or takes the ServiceAccount out of it. */
async function narrowBinding(ctx: PhaseContext, ref: BindingRef, found: V1RoleBinding, namespace: string, sa: string): Promise<void> {
  const original = originalArtifact(ref);
  // The original first: no change without a record of what it changed. A rerun keeps the first copy.
  await ctx.caseFile.captureOnce(
    original,
    () => yamlOf({ apiVersion: RBAC_API_VERSION, kind: ref.kind, metadata: found.metadata, roleRef: found.roleRef, subjects: found.subjects }),
    { phase: PHASE },
  );
  let current: V1RoleBinding | undefined = found;
  for (let attempt = 0; attempt < CONFLICT_ATTEMPTS && current; attempt++) {
    const plan = planNarrowing([{ kind: ref.kind, binding: current }], namespace, sa);
    const patch = plan.patches[0];
    if (!patch) return; // no longer names the ServiceAccount
    try {
      await replaceBinding(ctx, ref, { ...current, subjects: patch.keep });
      const action = 'SubjectRemoved';
      await ctx.caseFile.record('rbac-narrowed', {
        kind: ref.kind,
        ...(ref.namespace ? { namespace: ref.namespace } : {}),
        name: ref.name,
        action,
        removedSubjects: patch.removed.map(describeSubject),
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

interface SavedOriginal {
  artifact: string;
  kind: BindingKind;
  ref: BindingRef;
  object: V1RoleBinding;
}

/** The bindings casefile saved before changing them, read back from the case file (never from memory). */
async function savedOriginals(ctx: PhaseContext): Promise<SavedOriginal[]> {
  const out: SavedOriginal[] = [];
  const records = ctx.caseFile.artifacts().filter((a) => a.artifact.startsWith(ORIGINALS_DIR) && a.artifact.endsWith('.yaml'));
  for (const { artifact } of records.sort((a, b) => (a.artifact < b.artifact ? -1 : 1))) {
    const object = parse(await ctx.caseFile.readText(artifact)) as (V1RoleBinding & { kind?: string }) | null;
    const kind = object?.kind;
    if (!object || (kind !== 'RoleBinding' && kind !== 'ClusterRoleBinding') || !object.metadata?.name) {
      ctx.log.warn({ artifact }, 'saved RBAC original is not a binding; skipped');
      continue;
    }
    const ref: BindingRef = kind === 'RoleBinding' ? { kind, namespace: object.metadata.namespace, name: object.metadata.name } : { kind, name: object.metadata.name };
    out.push({ artifact, kind, ref, object });
  }
  return out;
}

/**
 * What narrowing did, derived from the saved originals, the custody log and the cluster as it is now,
 * so that a rerun after a restart reports the actions of the earlier run too.
 */
async function actionsFromCase(ctx: PhaseContext, namespace: string, sa: string): Promise<NonNullable<ContainmentStatus['rbac']>> {
  const actions: NonNullable<ContainmentStatus['rbac']> = [];
  const recorded = new Map<string, string>();
  for (const r of ctx.caseFile.custodyRecords()) {
    if (r.action === 'rbac-narrowed' && typeof r.detail?.original === 'string' && typeof r.detail.action === 'string') recorded.set(r.detail.original, r.detail.action);
  }
  for (const o of await savedOriginals(ctx)) {
    const current = await readBinding(ctx, o.ref);
    const stillNames = current && (current.subjects ?? []).some((s) => namesServiceAccount(s, o.ref.namespace, namespace, sa));
    if (stillNames) continue; // not (or no longer) narrowed: reported as NotNarrowed
    const planned = actionFor(o.object, o.kind, namespace, sa);
    let action = recorded.get(o.artifact) as 'Deleted' | 'SubjectRemoved' | undefined;
    if (!action) {
      // Saved but no custody record: the process stopped between the change and its record, or someone else removed the binding.
      if (!planned || (!current && planned === 'SubjectRemoved')) continue;
      action = planned;
      await ctx.caseFile.record('rbac-narrowed', { kind: o.kind, ...(o.ref.namespace ? { namespace: o.ref.namespace } : {}), name: o.ref.name, action, original: o.artifact, recovered: true }, PHASE);
    }
    actions.push({ kind: o.kind, ...(o.ref.namespace ? { namespace: o.ref.namespace } : {}), name: o.ref.name, action, original: o.artifact });
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

async function accessSnapshot(ctx: PhaseContext, namespace: string, sa: string): Promise<AccessSnapshot> {
  const checks = await reviewAccess(ctx, namespace, sa);
  return { serviceAccount: sa, namespace, user: serviceAccountUser(namespace, sa), groups: serviceAccountGroups(namespace), at: new Date().toISOString(), checks };
}

async function readJSONArtifact<T>(ctx: PhaseContext, artifact: string): Promise<T | undefined> {
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

/** A custody note written once, however often the phase runs. */
async function recordOnce(ctx: PhaseContext, action: string, detail: Record<string, unknown>): Promise<void> {
  const key = JSON.stringify(detail);
  if (ctx.caseFile.custodyRecords().some((r) => r.action === action && r.phase === PHASE && JSON.stringify(r.detail) === key)) return;
  await ctx.caseFile.record(action, detail, PHASE);
}

// ---- release ----

async function restore(ctx: PhaseContext): Promise<ReleaseOutcome> {
  const namespace = ctx.investigation.metadata.namespace;
  const originals = await savedOriginals(ctx);
  const before = await readJSONArtifact<AccessSnapshot>(ctx, ACCESS_BEFORE);
  if (originals.length === 0) return { message: 'RBAC was not narrowed (no saved originals): nothing to restore' };
  const sa = before?.serviceAccount ?? ctx.status.target?.serviceAccount;
  if (!sa) return { message: `cannot tell which ServiceAccount was narrowed: ${originals.length} saved binding(s) left as they are`, differences: originals.map((o) => `${bindingLabel(o.ref)} not restored; original is ${o.artifact}`) };

  const counts = { SubjectRestored: 0, AlreadyPresent: 0, NotRestored: 0 };
  const differences: string[] = [];
  for (const o of originals) {
    const { outcome, differences: diffs } = await restoreBinding(ctx, o, namespace, sa);
    counts[outcome]++;
    differences.push(...diffs);
    const detail = { kind: o.kind, ...(o.ref.namespace ? { namespace: o.ref.namespace } : {}), name: o.ref.name, outcome, original: o.artifact, ...(diffs.length ? { differences: diffs } : {}) };
    if (outcome === 'AlreadyPresent' || outcome === 'NotRestored') await recordOnce(ctx, 'rbac-restored', detail);
    else await ctx.caseFile.record('rbac-restored', detail, PHASE);
  }

  // The API server's answer after the restore: is the access the account had before narrowing back?
  const wanted = (before?.checks ?? []).filter((c) => c.allowed);
  let now: AccessSnapshot | undefined;
  let missing: AccessResult[] = [];
  for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(SETTLE_DELAY_MS);
    now = await accessSnapshot(ctx, namespace, sa);
    const allowedNow = new Set(now.checks.filter((c) => c.allowed).map((c) => `${checkLabel(c)}@${c.namespace ?? ''}`));
    missing = wanted.filter((c) => !allowedNow.has(`${checkLabel(c)}@${c.namespace ?? ''}`));
    if (missing.length === 0) break;
  }
  const back = wanted.filter((c) => !missing.includes(c)).map(checkLabel);
  // Custody only: the case may already be sealed, and an artifact written now would not be in the manifest.
  await ctx.caseFile.record('rbac-access-after-release', {
    serviceAccount: sa,
    allowedAgain: back,
    stillDenied: missing.map(checkLabel),
    checks: now?.checks ?? [],
  }, PHASE);

  const summary = `ServiceAccount ${sa}: ${originals.length} saved binding(s): ${counts.SubjectRestored} ServiceAccount re-added, ${counts.AlreadyPresent} already restored, ${counts.NotRestored} not restored`;
  let access: string;
  if (!before) access = 'no pre-narrowing SubjectAccessReview was saved to compare with';
  else if (wanted.length === 0) access = 'the account was allowed none of the checked actions before narrowing either';
  else if (missing.length === 0) {
    // Checks a group grant kept allowed while narrowed were never revoked: only the others are "allowed again".
    const afterNarrowing = await readJSONArtifact<AccessSnapshot>(ctx, ACCESS_AFTER);
    const keptAllowed = new Set((afterNarrowing?.checks ?? []).filter((c) => c.allowed).map(checkLabel));
    const regained = back.filter((c) => !keptAllowed.has(c));
    const kept = back.filter((c) => keptAllowed.has(c));
    access = `pre-narrowing access is back: ${regained.length ? `${regained.join(', ')} allowed again` : 'nothing had been revoked'}${kept.length ? ` (${kept.join(', ')} stayed allowed throughout)` : ''}`;
  }
  else access = `pre-narrowing access is NOT fully back: ${missing.map(checkLabel).join(', ')} still denied${back.length ? `; ${back.join(', ')} allowed again` : ''}`;
  return { message: `${summary}; ${access}`, ...(differences.length ? { differences } : {}) };
}

async function restoreBinding(
  ctx: PhaseContext,
  o: SavedOriginal,
  namespace: string,
  sa: string,
): Promise<{ outcome: 'SubjectRestored' | 'AlreadyPresent' | 'NotRestored'; differences: string[] }> {
  let current = await readBinding(ctx, o.ref);
  for (let attempt = 0; attempt < CONFLICT_ATTEMPTS; attempt++) {
    const plan = planRestore(o.kind, o.object, current, namespace, sa, o.artifact);
    try {
      if (plan.action === 'None') return { outcome: plan.outcome, differences: plan.differences };
      await replaceBinding(ctx, o.ref, { ...current!, subjects: plan.subjects });
      return { outcome: 'SubjectRestored', differences: plan.differences };
    } catch (err) {
      // 409: changed meanwhile; 404: deleted meanwhile. Read again and re-plan.
      if (isConflict(err) || isNotFound(err)) {
        current = await readBinding(ctx, o.ref);
        continue;
      }
      throw err;
    }
  }
  throw new RetryableError(`${bindingLabel(o.ref)} kept changing while casefile restored it (409 Conflict ${CONFLICT_ATTEMPTS} times)`, 'Conflict');
}
