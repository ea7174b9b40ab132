// RBACNarrowed, reading the authorizer (pure, unit-tested): SubjectAccessReview answers before and after
// narrowing, which grant the RBAC authorizer names for a check still allowed, and the verdict per check.
import type { RbacV1Subject, V1PolicyRule } from '@kubernetes/client-node';
import { bindingLabel, namesServiceAccount, serviceAccountGroups, type BindingKind, type BindingRef, type GroupBinding } from './plan.js';

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
