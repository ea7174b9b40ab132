// RBACNarrowed, pure decisions (unit-tested): which bindings name the suspect's ServiceAccount, what to
// take out of each, and how to put it back. Narrowing never deletes or creates a binding: it only
// updates subjects (a binding whose sole subject was the ServiceAccount is kept with none), so release
// is an update back to the recorded subjects, and nothing ever has to be re-created.
import type { RbacV1Subject, V1RoleBinding, V1RoleRef } from '@kubernetes/client-node';
import { subjectReachesServiceAccount } from '../scope-mapped.js';

export const PHASE = 'RBACNarrowed';
export const RBAC_API_VERSION = 'rbac.authorization.k8s.io/v1';

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
  /** Bindings that name the ServiceAccount: update them to `keep` (possibly no subject at all). */
  changes: { ref: BindingRef; binding: V1RoleBinding; keep: RbacV1Subject[]; removed: RbacV1Subject[] }[];
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

/** Which bindings to update without the ServiceAccount, which group grants stay. */
export function planNarrowing(items: readonly BindingItem[], namespace: string, sa: string): NarrowingPlan {
  const plan: NarrowingPlan = { changes: [], groupBindings: [] };
  for (const item of items) {
    const ref = refOf(item);
    const subjects = item.binding.subjects ?? [];
    const own = (s: RbacV1Subject) => namesServiceAccount(s, ref.namespace, namespace, sa);
    const removed = subjects.filter(own);
    const keep = subjects.filter((s) => !own(s));
    if (removed.length > 0) plan.changes.push({ ref, binding: item.binding, keep, removed });
    for (const s of keep.filter((s) => isServiceAccountGroup(s, namespace))) {
      plan.groupBindings.push({ ref, roleRef: { kind: item.binding.roleRef.kind, name: item.binding.roleRef.name }, group: s.name });
    }
  }
  return plan;
}

const subjectKey = (s: RbacV1Subject, bindingNs: string | undefined) =>
  `${s.kind}|${s.apiGroup ?? ''}|${s.name}|${s.kind === 'ServiceAccount' ? (s.namespace || bindingNs || '') : ''}`;
export const describeSubject = (s: RbacV1Subject) => `${s.kind} ${s.kind === 'ServiceAccount' && s.namespace ? `${s.namespace}/` : ''}${s.name}`;

export type RestorePlan =
  | { action: 'AddSubjects'; subjects: RbacV1Subject[]; added: RbacV1Subject[]; differences: string[] }
  | { action: 'None'; outcome: 'AlreadyPresent' | 'NotRestored'; differences: string[] };

/**
 * How to undo narrowing on one binding, merging into what is there now: only the ServiceAccount's
 * subject(s) go back; every subject someone added meanwhile is kept, and every difference from the
 * original other than the ServiceAccount is reported. A binding that is gone is not re-created: it was
 * deleted by someone else (or went with its namespace), and `gone` says which.
 */
export function planRestore(
  kind: BindingKind,
  original: V1RoleBinding,
  current: V1RoleBinding | undefined,
  namespace: string,
  sa: string,
  artifact: string,
  gone = 'was deleted by someone else',
): RestorePlan {
  const ref: BindingRef = { kind, namespace: kind === 'RoleBinding' ? original.metadata?.namespace : undefined, name: original.metadata?.name ?? '' };
  const label = bindingLabel(ref);
  const own = (s: RbacV1Subject) => namesServiceAccount(s, ref.namespace, namespace, sa);
  const originalSubjects = original.subjects ?? [];
  const ownOriginal = originalSubjects.filter(own);
  if (!current) {
    return { action: 'None', outcome: 'NotRestored', differences: [`${label} ${gone} after casefile removed ServiceAccount ${sa} from it: not re-created; the original is ${artifact}`] };
  }
  const differences: string[] = [];
  const roleOf = (r: V1RoleRef | undefined) => `${r?.kind ?? '?'} ${r?.name ?? '?'}`;
  if (roleOf(original.roleRef) !== roleOf(current.roleRef) || (original.metadata?.uid && current.metadata?.uid && original.metadata.uid !== current.metadata.uid)) {
    return {
      action: 'None',
      outcome: 'NotRestored',
      differences: [
        `${label} was replaced meanwhile (now ${roleOf(current.roleRef)}, was ${roleOf(original.roleRef)}): ServiceAccount ${sa} not re-added, as that could grant it something it never had; the original is ${artifact}`,
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
  // Nobody else touched the subjects: put back the original list exactly (order included).
  const subjects = differences.length === 0 ? originalSubjects : [...currentSubjects, ...added];
  return { action: 'AddSubjects', subjects, added, differences };
}
