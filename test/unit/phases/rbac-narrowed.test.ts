import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RbacV1Subject, V1PolicyRule, V1Pod, V1RoleBinding } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { parseSpec, type Investigation, type InvestigationStatus } from '../../../src/api/investigation.js';
import type { OperatorConfig } from '../../../src/config.js';
import type { Kube } from '../../../src/kube/client.js';
import { nodeActionsApi } from './shared/fake-node-actions.js';
import { CaseFile } from '../../../src/evidence/store.js';
import { logger } from '../../../src/log.js';
import type { PhaseContext } from '../../../src/phases/phase.js';
import { attribute, judgeAccess, parseAuthorizerReason, ruleAllows, type AccessResult, type GroupGrant } from '../../../src/phases/rbac-narrowed/access.js';
import { rbacNarrowed } from '../../../src/phases/rbac-narrowed/index.js';
import { bindingLabel, describeSubject, isServiceAccountGroup, namesServiceAccount, planNarrowing, planRestore, refOf, serviceAccountGroups, serviceAccountUser, type BindingItem } from '../../../src/phases/rbac-narrowed/plan.js';
import { originalArtifact } from '../../../src/phases/shared/originals.js';

const NS = 'shop';
const SA = 'web';
const saSubject: RbacV1Subject = { kind: 'ServiceAccount', name: SA, namespace: NS };
const rb = (name: string, subjects: RbacV1Subject[], roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' }, namespace = NS): BindingItem => ({
  kind: 'RoleBinding',
  binding: { metadata: { name, namespace, resourceVersion: '7', uid: `uid-${name}` }, roleRef, subjects },
});
const crb = (name: string, subjects: RbacV1Subject[], roleName = 'view'): BindingItem => ({
  kind: 'ClusterRoleBinding',
  binding: { metadata: { name, resourceVersion: '9' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName }, subjects },
});

describe('planNarrowing', () => {
  test('a binding whose only subject is the ServiceAccount is kept with no subjects, never deleted', () => {
    const plan = planNarrowing([rb('only-web', [saSubject])], NS, SA);
    expect(plan.changes.map((c) => [c.ref, c.keep])).toEqual([[{ kind: 'RoleBinding', namespace: NS, name: 'only-web' }, []]]);
  });

  test('a binding with two subjects keeps the other one', () => {
    const other: RbacV1Subject = { kind: 'ServiceAccount', name: 'worker', namespace: NS };
    const plan = planNarrowing([rb('shared', [saSubject, other])], NS, SA);
    expect(plan.changes).toHaveLength(1);
    expect(plan.changes[0]!.keep).toEqual([other]);
    expect(plan.changes[0]!.removed).toEqual([saSubject]);
  });

  test('the SA named without a namespace in its own namespace RoleBinding, or as its User name, is the SA itself', () => {
    const plan = planNarrowing([
      rb('no-ns', [{ kind: 'ServiceAccount', name: SA }]),
      crb('as-user', [{ kind: 'User', name: `system:serviceaccount:${NS}:${SA}` }, { kind: 'User', name: 'alice' }]),
    ], NS, SA);
    expect(plan.changes.map((p) => [p.ref.name, p.keep])).toEqual([['no-ns', []], ['as-user', [{ kind: 'User', name: 'alice' }]]]);
  });

  test('a RoleBinding in another namespace naming the SA is narrowed; same name in another namespace is not the SA', () => {
    const plan = planNarrowing([
      rb('elsewhere', [saSubject], undefined, 'payments'),
      // No namespace on a RoleBinding subject means the binding's namespace: payments/web, a different account.
      rb('payments-web', [{ kind: 'ServiceAccount', name: SA }], undefined, 'payments'),
      crb('other-ns', [{ kind: 'ServiceAccount', name: SA, namespace: 'payments' }]),
    ], NS, SA);
    expect(plan.changes.map((d) => d.ref)).toEqual([{ kind: 'RoleBinding', namespace: 'payments', name: 'elsewhere' }]);
  });

  test('a group-only binding is reported as exposure and left untouched', () => {
    const plan = planNarrowing([
      crb('all-sa', [{ kind: 'Group', name: 'system:serviceaccounts' }]),
      rb('ns-sa', [{ kind: 'Group', name: `system:serviceaccounts:${NS}` }, saSubject]),
      crb('other-group', [{ kind: 'Group', name: 'system:serviceaccounts:payments' }]),
    ], NS, SA);
    // ns-sa: the SA comes out, the group stays (and is exposure).
    expect(plan.changes.map((p) => [p.ref.name, p.keep])).toEqual([['ns-sa', [{ kind: 'Group', name: `system:serviceaccounts:${NS}` }]]]);
    expect(plan.groupBindings).toEqual([
      { ref: { kind: 'ClusterRoleBinding', name: 'all-sa' }, roleRef: { kind: 'ClusterRole', name: 'view' }, group: 'system:serviceaccounts' },
      { ref: { kind: 'RoleBinding', namespace: NS, name: 'ns-sa' }, roleRef: { kind: 'ClusterRole', name: 'edit' }, group: `system:serviceaccounts:${NS}` },
    ]);
  });

  test('original names cannot collide (dev-team/edit vs dev/team-edit) and stay under the file-name limit', () => {
    const a = originalArtifact('RoleBinding', 'dev-team', 'edit', 'u-1');
    const b = originalArtifact('RoleBinding', 'dev', 'team-edit', 'u-2');
    expect(a).toBe('containment/originals/RoleBinding/dev-team/edit.u-1.yaml');
    expect(b).toBe('containment/originals/RoleBinding/dev/team-edit.u-2.yaml');
    expect(originalArtifact('ClusterRoleBinding', undefined, 'system:auth-delegator', 'u-3')).toBe('containment/originals/ClusterRoleBinding/_cluster/system%3Aauth-delegator.u-3.yaml');
    const long = originalArtifact('NetworkPolicy', NS, 'p'.repeat(253), '0a1b2c3d-0000-1111-2222-333344445555');
    expect(path.basename(long).length).toBeLessThanOrEqual(220);
    expect(long).not.toContain('p'.repeat(200));
  });
});

describe('planRestore', () => {
  const alice: RbacV1Subject = { kind: 'User', name: 'alice' };
  const bob: RbacV1Subject = { kind: 'User', name: 'bob' };
  const original = rb('shared', [saSubject, bob]).binding;
  const art = 'containment/originals/rbac/RoleBinding-shop-shared.yaml';

  test('merges the SA back without dropping a subject added meanwhile, and reports the difference', () => {
    const current: V1RoleBinding = { ...original, metadata: { ...original.metadata, resourceVersion: '12' }, subjects: [bob, alice] };
    const plan = planRestore('RoleBinding', original, current, NS, SA, art);
    expect(plan.action).toBe('AddSubjects');
    if (plan.action !== 'AddSubjects') throw new Error('unreachable');
    expect(plan.subjects).toEqual([bob, alice, saSubject]);
    expect(plan.added).toEqual([saSubject]);
    expect(plan.differences).toEqual([expect.stringContaining('subject User alice was added since narrowing')]);
  });

  test('reports a subject removed meanwhile and does not bring it back', () => {
    const plan = planRestore('RoleBinding', original, { ...original, subjects: [] }, NS, SA, art);
    if (plan.action !== 'AddSubjects') throw new Error(`expected AddSubjects, got ${plan.action}`);
    expect(plan.subjects).toEqual([saSubject]);
    expect(plan.differences).toEqual([expect.stringContaining('subject User bob was removed since narrowing')]);
  });

  test('idempotent: the SA already present changes nothing', () => {
    expect(planRestore('RoleBinding', original, original, NS, SA, art)).toEqual({ action: 'None', outcome: 'AlreadyPresent', differences: [] });
  });

  test('a binding that is gone is never re-created, and the reason is given', () => {
    const plan = planRestore('RoleBinding', original, undefined, NS, SA, art);
    expect(plan).toMatchObject({ action: 'None', outcome: 'NotRestored' });
    expect(plan.differences[0]).toContain(art);
    expect(plan.differences[0]).toContain('deleted by someone else');
    expect(planRestore('RoleBinding', rb('only', [saSubject]).binding, undefined, NS, SA, art).action).toBe('None');
  });

  test('a binding recreated with another role does not get the SA (it would grant a different role)', () => {
    const current: V1RoleBinding = { ...original, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [bob] };
    const plan = planRestore('RoleBinding', original, current, NS, SA, art);
    expect(plan).toMatchObject({ action: 'None', outcome: 'NotRestored' });
    expect(plan.differences[0]).toMatch(/replaced meanwhile \(now ClusterRole cluster-admin, was ClusterRole edit\)/);
  });
});

describe('planRestore: exact outcomes', () => {
  const bob: RbacV1Subject = { kind: 'User', name: 'bob' };
  const art = 'containment/originals/RoleBinding/shop/shared.uid-shared.yaml';

  test('nobody touched the subjects: the original list comes back exactly, order included', () => {
    const original = rb('shared', [bob, saSubject, { kind: 'Group', name: 'devs' }]).binding;
    const current = { ...original, subjects: [bob, { kind: 'Group', name: 'devs' }] };
    expect(planRestore('RoleBinding', original, current, NS, SA, art)).toEqual({ action: 'AddSubjects', subjects: original.subjects, added: [saSubject], differences: [] });
  });

  test('a binding left with no subjects at all gets the ServiceAccount back', () => {
    const original = rb('only-web', [saSubject]).binding;
    const { subjects: _, ...current } = original;
    expect(planRestore('RoleBinding', original, current, NS, SA, art)).toEqual({ action: 'AddSubjects', subjects: [saSubject], added: [saSubject], differences: [] });
  });

  test('differences name the binding and the subject, kind and namespace included', () => {
    const worker: RbacV1Subject = { kind: 'ServiceAccount', name: 'worker', namespace: 'jobs' };
    const original = crb('view-all', [saSubject, bob]).binding;
    const plan = planRestore('ClusterRoleBinding', original, { ...original, subjects: [worker] }, NS, SA, art);
    expect(plan).toEqual({
      action: 'AddSubjects',
      subjects: [worker, saSubject],
      added: [saSubject],
      differences: [
        'ClusterRoleBinding view-all: subject ServiceAccount jobs/worker was added since narrowing (kept)',
        'ClusterRoleBinding view-all: subject User bob was removed since narrowing (left removed)',
      ],
    });
  });

  test("a ServiceAccount subject without a namespace is the binding's own: not a difference, not added twice", () => {
    const original = rb('shared', [saSubject, { kind: 'ServiceAccount', name: 'worker' }]).binding;
    const current = { ...original, subjects: [{ kind: 'ServiceAccount', name: 'worker', namespace: NS }, { kind: 'ServiceAccount', name: SA }] };
    expect(planRestore('RoleBinding', original, current, NS, SA, art)).toEqual({ action: 'None', outcome: 'AlreadyPresent', differences: [] });
  });

  test('subjects differing only in apiGroup are different subjects', () => {
    const original = rb('shared', [saSubject, { kind: 'User', name: 'bob', apiGroup: 'rbac.authorization.k8s.io' }]).binding;
    const plan = planRestore('RoleBinding', original, { ...original, subjects: [bob] }, NS, SA, art);
    expect(plan.differences).toEqual(['RoleBinding shop/shared: subject User bob was added since narrowing (kept)', 'RoleBinding shop/shared: subject User bob was removed since narrowing (left removed)']);
  });

  test('the same name and role but another uid: a different binding, not restored', () => {
    const original = rb('shared', [saSubject, bob]).binding;
    const current = { ...original, metadata: { ...original.metadata, uid: 'uid-new' }, subjects: [bob] };
    expect(planRestore('RoleBinding', original, current, NS, SA, art)).toEqual({
      action: 'None',
      outcome: 'NotRestored',
      differences: [`RoleBinding shop/shared was replaced meanwhile (now ClusterRole edit, was ClusterRole edit): ServiceAccount ${SA} not re-added, as that could grant it something it never had; the original is ${art}`],
    });
    // A uid missing on either side (an original saved without one) is no evidence of replacement.
    const noUid = { ...original, metadata: { ...original.metadata, uid: undefined } };
    expect(planRestore('RoleBinding', noUid, current, NS, SA, art).action).toBe('AddSubjects');
    expect(planRestore('RoleBinding', original, { ...current, metadata: { ...current.metadata, uid: undefined } }, NS, SA, art).action).toBe('AddSubjects');
  });

  test('a missing roleRef reads as "? ?"; the reason a binding is gone is the caller\'s', () => {
    const original = crb('view-all', [saSubject]).binding;
    const plan = planRestore('ClusterRoleBinding', original, { ...original, roleRef: undefined as never }, NS, SA, art);
    expect(plan.differences[0]).toContain('(now ? ?, was ClusterRole view)');
    expect(planRestore('ClusterRoleBinding', original, undefined, NS, SA, art, 'went with its namespace').differences).toEqual([
      `ClusterRoleBinding view-all went with its namespace after casefile removed ServiceAccount ${SA} from it: not re-created; the original is ${art}`,
    ]);
  });
});

describe('plan helpers', () => {
  test('the groups and user name a ServiceAccount authenticates as', () => {
    expect(serviceAccountGroups(NS)).toEqual(['system:serviceaccounts', 'system:serviceaccounts:shop', 'system:authenticated']);
    expect(serviceAccountUser(NS, SA)).toBe('system:serviceaccount:shop:web');
  });

  test('refOf and bindingLabel: a ClusterRoleBinding has no namespace', () => {
    expect(refOf(rb('edit', [])).namespace).toBe(NS);
    expect(refOf({ kind: 'ClusterRoleBinding', binding: { metadata: { name: 'view', namespace: 'ignored' }, roleRef: { apiGroup: '', kind: 'ClusterRole', name: 'view' } } })).toEqual({ kind: 'ClusterRoleBinding', name: 'view' });
    expect(refOf({ kind: 'RoleBinding', binding: { roleRef: { apiGroup: '', kind: 'Role', name: 'r' } } })).toEqual({ kind: 'RoleBinding', namespace: undefined, name: '' });
    expect(bindingLabel({ kind: 'RoleBinding', namespace: NS, name: 'edit' })).toBe('RoleBinding shop/edit');
    expect(bindingLabel({ kind: 'ClusterRoleBinding', name: 'view' })).toBe('ClusterRoleBinding view');
  });

  test('describeSubject shows a namespace only for a ServiceAccount that has one', () => {
    expect(describeSubject(saSubject)).toBe('ServiceAccount shop/web');
    expect(describeSubject({ kind: 'ServiceAccount', name: 'web' })).toBe('ServiceAccount web');
    expect(describeSubject({ kind: 'User', name: 'bob', namespace: 'shop' })).toBe('User bob');
  });

  test('namesServiceAccount: never a group; a User only by the full user name', () => {
    expect(namesServiceAccount({ kind: 'Group', name: 'system:serviceaccounts' }, NS, NS, SA)).toBe(false);
    expect(namesServiceAccount({ kind: 'User', name: 'web' }, NS, NS, SA)).toBe(false);
    expect(namesServiceAccount({ kind: 'User', name: 'system:serviceaccount:shop:web' }, undefined, NS, SA)).toBe(true);
    expect(isServiceAccountGroup({ kind: 'Group', name: 'system:authenticated' }, NS)).toBe(true);
    expect(isServiceAccountGroup({ kind: 'User', name: 'system:authenticated' }, NS)).toBe(false);
  });
});

describe('plan edges (mutation testing, third round)', () => {
  const art = 'containment/originals/RoleBinding/shop/shared.uid-shared.yaml';
  const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' };

  test('a subject is told from another by its namespace only when it is a ServiceAccount', () => {
    // The same ServiceAccount name in another namespace is another subject: a difference both ways.
    const original = rb('shared', [saSubject, { kind: 'ServiceAccount', name: 'worker', namespace: 'jobs' }]).binding;
    const moved = planRestore('RoleBinding', original, { ...original, subjects: [{ kind: 'ServiceAccount', name: 'worker', namespace: 'batch' }] }, NS, SA, art);
    expect(moved.differences).toEqual([
      'RoleBinding shop/shared: subject ServiceAccount batch/worker was added since narrowing (kept)',
      'RoleBinding shop/shared: subject ServiceAccount jobs/worker was removed since narrowing (left removed)',
    ]);
    // A namespace on a User or Group subject means nothing to RBAC: not a difference, in either kind of binding.
    for (const item of [rb('shared', [saSubject, { kind: 'User', name: 'bob', namespace: 'jobs' }]), crb('view-all', [saSubject, { kind: 'Group', name: 'devs', namespace: 'jobs' }])]) {
      const others = item.binding.subjects!.slice(1).map(({ namespace: _, ...s }) => s);
      expect(planRestore(item.kind, item.binding, { ...item.binding, subjects: others }, NS, SA, art)).toEqual({ action: 'AddSubjects', subjects: item.binding.subjects, added: [saSubject], differences: [] });
    }
  });

  test("an empty apiGroup and none are the same subject (the API server omits a ServiceAccount's empty one)", () => {
    const worker: RbacV1Subject = { kind: 'ServiceAccount', name: 'worker', namespace: 'jobs' };
    const original = rb('shared', [saSubject, { ...worker, apiGroup: '' }]).binding;
    expect(planRestore('RoleBinding', original, { ...original, subjects: [worker] }, NS, SA, art)).toEqual({ action: 'AddSubjects', subjects: original.subjects, added: [saSubject], differences: [] });
  });

  test('a ClusterRoleBinding has no namespace even if its metadata names one: its namespace-less ServiceAccount subject is the target namespace\'s', () => {
    const odd: V1RoleBinding = { metadata: { name: 'view-all', namespace: 'payments', uid: 'u-1' }, roleRef, subjects: [{ kind: 'ServiceAccount', name: SA }] };
    expect(planRestore('ClusterRoleBinding', odd, { ...odd, subjects: [] }, NS, SA, art)).toEqual({ action: 'AddSubjects', subjects: odd.subjects, added: [{ kind: 'ServiceAccount', name: SA }], differences: [] });
    expect(planNarrowing([{ kind: 'ClusterRoleBinding', binding: odd }], NS, SA).changes.map((c) => c.removed)).toEqual([[{ kind: 'ServiceAccount', name: SA }]]);
  });

  test('bindings without metadata or subjects are planned without throwing', () => {
    const bare: V1RoleBinding = { roleRef, subjects: [saSubject] };
    expect(planRestore('ClusterRoleBinding', bare, undefined, NS, SA, art).differences).toEqual([
      `ClusterRoleBinding  was deleted by someone else after casefile removed ServiceAccount ${SA} from it: not re-created; the original is ${art}`,
    ]);
    expect(planRestore('RoleBinding', bare, undefined, NS, SA, art)).toMatchObject({ action: 'None', outcome: 'NotRestored' });
    expect(planRestore('RoleBinding', bare, { roleRef, subjects: [] }, NS, SA, art)).toEqual({ action: 'AddSubjects', subjects: [saSubject], added: [saSubject], differences: [] });
    // The original has a uid, the current object no metadata at all: no evidence of replacement.
    const withUid = rb('shared', [saSubject]).binding;
    expect(planRestore('RoleBinding', withUid, { roleRef, subjects: [] }, NS, SA, art).action).toBe('AddSubjects');
    // An original without subjects has nothing to put back and no difference to report.
    const { subjects: _, ...noSubjects } = withUid;
    expect(planRestore('RoleBinding', noSubjects, { ...noSubjects, subjects: [] }, NS, SA, art)).toEqual({ action: 'None', outcome: 'AlreadyPresent', differences: [] });
    expect(planNarrowing([{ kind: 'RoleBinding', binding: noSubjects }], NS, SA)).toEqual({ changes: [], groupBindings: [] });
  });

  test('isServiceAccountGroup is only ever a Group, whatever the subject would match otherwise', () => {
    expect(isServiceAccountGroup({ kind: 'ServiceAccount', name: '', namespace: NS }, NS)).toBe(false);
    expect(isServiceAccountGroup({ kind: 'User', name: `system:serviceaccount:${NS}:` }, NS)).toBe(false);
    expect(isServiceAccountGroup({ kind: 'Group', name: `system:serviceaccounts:${NS}` }, NS)).toBe(true);
  });
});

describe('reading the authorizer', () => {
  const check = (over: Partial<AccessResult> = {}): AccessResult => ({ verb: 'get', group: '', resource: 'secrets', namespace: NS, allowed: true, reason: '', ...over });
  const grant: GroupGrant = {
    ref: { kind: 'ClusterRoleBinding', name: 'all-sa' }, roleRef: { kind: 'ClusterRole', name: 'secret-reader' }, group: 'system:serviceaccounts',
    rules: [{ verbs: ['get'], apiGroups: [''], resources: ['secrets'] }],
  };

  test('parses ClusterRoleBinding and RoleBinding wording', () => {
    expect(parseAuthorizerReason('RBAC: allowed by ClusterRoleBinding "all-sa" of ClusterRole "view" to Group "system:serviceaccounts"')).toEqual({
      bindingKind: 'ClusterRoleBinding', bindingName: 'all-sa', roleKind: 'ClusterRole', roleName: 'view', subjectKind: 'Group', subjectName: 'system:serviceaccounts',
    });
    expect(parseAuthorizerReason('RBAC: allowed by RoleBinding "web-secrets/shop" of Role "reader" to ServiceAccount "web/shop"')).toMatchObject({
      bindingKind: 'RoleBinding', bindingName: 'web-secrets', bindingNamespace: 'shop', subjectKind: 'ServiceAccount', subjectName: 'web/shop',
    });
    expect(parseAuthorizerReason('')).toBeUndefined();
  });

  test('attributes a remaining grant to a group, to the SA itself, or to nothing it can explain', () => {
    expect(attribute(check({ reason: 'RBAC: allowed by ClusterRoleBinding "all-sa" of ClusterRole "view" to Group "system:serviceaccounts"' }), [], NS, SA))
      .toEqual({ source: 'group', grant: 'ClusterRoleBinding all-sa grants ClusterRole view to group system:serviceaccounts' });
    expect(attribute(check({ reason: 'RBAC: allowed by RoleBinding "x/shop" of Role "r" to ServiceAccount "web/shop"' }), [], NS, SA))
      .toEqual({ source: 'direct', binding: { kind: 'RoleBinding', namespace: 'shop', name: 'x' } });
    // No RBAC wording: a group grant whose rules cover the check explains it; otherwise it is unexplained.
    expect(attribute(check(), [grant], NS, SA)).toMatchObject({ source: 'group' });
    expect(attribute(check({ verb: 'list' }), [grant], NS, SA)).toMatchObject({ source: 'unknown' });
  });

  test('rules: wildcards, subresources, resourceNames', () => {
    const exec = { verb: 'create', group: '', resource: 'pods', subresource: 'exec' };
    expect(ruleAllows({ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }, exec)).toBe(true);
    expect(ruleAllows({ verbs: ['create'], apiGroups: [''], resources: ['pods'] }, exec)).toBe(false);
    expect(ruleAllows({ verbs: ['create'], apiGroups: [''], resources: ['pods/exec'] }, exec)).toBe(true);
    expect(ruleAllows({ verbs: ['get'], apiGroups: [''], resources: ['secrets'], resourceNames: ['one'] }, { verb: 'get', group: '', resource: 'secrets' })).toBe(false);
  });

  test('judgeAccess: denied, expected through a group, not narrowed', () => {
    const before = [check(), check({ verb: 'list' }), check({ verb: 'create', resource: 'pods' }), check({ verb: 'delete', resource: 'pods', allowed: false })];
    const after = [
      check({ allowed: false }),
      check({ verb: 'list', reason: 'RBAC: allowed by ClusterRoleBinding "all-sa" of ClusterRole "view" to Group "system:serviceaccounts"' }),
      check({ verb: 'create', resource: 'pods', reason: 'webhook: allowed by policy' }),
      check({ verb: 'delete', resource: 'pods', allowed: true }),
    ];
    const j = judgeAccess(before, after, [], NS, SA);
    expect(j.denied).toEqual(['get secrets: allowed -> denied']);
    expect(j.expected).toEqual(['list secrets: still allowed via ClusterRoleBinding all-sa grants ClusterRole view to group system:serviceaccounts']);
    expect(j.notNarrowed).toEqual(['create pods: still allowed (webhook: allowed by policy)']);
  });
});

// ---- the phase against an in-memory API server ----

type Obj = V1RoleBinding & { kind?: string };
const notFound = () => Object.assign(new Error('not found'), { code: 404 });
const conflict = () => Object.assign(new Error('conflict'), { code: 409 });

class FakeCluster {
  nodeActions = nodeActionsApi();
  rv = 100;
  roleBindings = new Map<string, Obj>();
  clusterRoleBindings = new Map<string, Obj>();
  roles = new Map<string, V1PolicyRule[]>();
  clusterRoles = new Map<string, V1PolicyRule[]>();
  pods: V1Pod[] = [];
  /** Checks another authorizer allows whatever RBAC says. */
  webhookAllows = new Set<string>();
  /** Namespaces deleted (gone); every other namespace exists. */
  goneNamespaces = new Set<string>();
  calls: string[] = [];

  put(kind: 'RoleBinding' | 'ClusterRoleBinding', b: Obj) {
    const stored: Obj = structuredClone({ ...b, metadata: { ...b.metadata, resourceVersion: String(++this.rv), uid: b.metadata?.uid ?? `uid-${b.metadata!.name}-${this.rv}` } });
    if (kind === 'RoleBinding') this.roleBindings.set(`${b.metadata!.namespace}/${b.metadata!.name}`, stored);
    else this.clusterRoleBindings.set(b.metadata!.name!, stored);
    return structuredClone(stored);
  }

  private replace(map: Map<string, Obj>, key: string, body: Obj, kind: 'RoleBinding' | 'ClusterRoleBinding') {
    const cur = map.get(key);
    if (!cur) throw notFound();
    if (body.metadata?.resourceVersion !== cur.metadata?.resourceVersion) throw conflict();
    this.calls.push(`replace ${kind} ${key}`);
    return this.put(kind, { ...body, metadata: { ...body.metadata, uid: cur.metadata?.uid } });
  }

  private remove(map: Map<string, Obj>, key: string, body: { preconditions?: { resourceVersion?: string } } | undefined, kind: string) {
    const cur = map.get(key);
    if (!cur) throw notFound();
    if (body?.preconditions?.resourceVersion !== undefined && body.preconditions.resourceVersion !== cur.metadata?.resourceVersion) throw conflict();
    this.calls.push(`delete ${kind} ${key}`);
    map.delete(key);
    return {};
  }

  private create(map: Map<string, Obj>, key: string, body: Obj, kind: 'RoleBinding' | 'ClusterRoleBinding') {
    if (map.has(key)) throw conflict();
    if (body.metadata?.resourceVersion || body.metadata?.uid) throw new Error('resourceVersion/uid must not be set on create');
    this.calls.push(`create ${kind} ${key}`);
    return this.put(kind, body);
  }

  private review(spec: { user: string; groups: string[]; resourceAttributes: { verb: string; group: string; resource: string; subresource?: string; namespace?: string } }) {
    const a = spec.resourceAttributes;
    const label = `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ''}`;
    if (this.webhookAllows.has(label)) return { allowed: true, reason: 'webhook: allowed by policy' };
    const matches = (s: RbacV1Subject, bindingNs?: string) =>
      (s.kind === 'Group' && spec.groups.includes(s.name)) ||
      (s.kind === 'User' && s.name === spec.user) ||
      (s.kind === 'ServiceAccount' && spec.user === `system:serviceaccount:${s.namespace ?? bindingNs}:${s.name}`);
    const covers = (rules: V1PolicyRule[]) => rules.some((r) => ruleAllows(r, a));
    const who = (s: RbacV1Subject, ns?: string) => (s.kind === 'ServiceAccount' ? `ServiceAccount "${s.name}/${s.namespace ?? ns}"` : `${s.kind} "${s.name}"`);
    for (const b of this.clusterRoleBindings.values()) {
      const s = (b.subjects ?? []).find((x) => matches(x));
      if (s && covers(this.clusterRoles.get(b.roleRef.name) ?? [])) return { allowed: true, reason: `RBAC: allowed by ClusterRoleBinding "${b.metadata!.name}" of ClusterRole "${b.roleRef.name}" to ${who(s)}` };
    }
    for (const b of this.roleBindings.values()) {
      if (!a.namespace || b.metadata!.namespace !== a.namespace) continue;
      const s = (b.subjects ?? []).find((x) => matches(x, b.metadata!.namespace));
      const rules = b.roleRef.kind === 'ClusterRole' ? this.clusterRoles.get(b.roleRef.name) : this.roles.get(`${b.metadata!.namespace}/${b.roleRef.name}`);
      if (s && covers(rules ?? [])) return { allowed: true, reason: `RBAC: allowed by RoleBinding "${b.metadata!.name}/${b.metadata!.namespace}" of ${b.roleRef.kind} "${b.roleRef.name}" to ${who(s, b.metadata!.namespace)}` };
    }
    return { allowed: false, reason: '' };
  }

  kube(): Kube {
    const read = (map: Map<string, Obj>, key: string) => {
      const b = map.get(key);
      if (!b) throw notFound();
      return structuredClone(b);
    };
    const rules = (r: V1PolicyRule[] | undefined) => {
      if (!r) throw notFound();
      return { rules: structuredClone(r) };
    };
    const rbac = {
      listRoleBindingForAllNamespaces: async () => ({ items: [...this.roleBindings.values()].map((b) => structuredClone(b)) }),
      listClusterRoleBinding: async () => ({ items: [...this.clusterRoleBindings.values()].map((b) => structuredClone(b)) }),
      readNamespacedRoleBinding: async (p: { name: string; namespace: string }) => read(this.roleBindings, `${p.namespace}/${p.name}`),
      readClusterRoleBinding: async (p: { name: string }) => read(this.clusterRoleBindings, p.name),
      deleteNamespacedRoleBinding: async (p: { name: string; namespace: string; body?: { preconditions?: { resourceVersion?: string } } }) =>
        this.remove(this.roleBindings, `${p.namespace}/${p.name}`, p.body, 'RoleBinding'),
      deleteClusterRoleBinding: async (p: { name: string; body?: { preconditions?: { resourceVersion?: string } } }) =>
        this.remove(this.clusterRoleBindings, p.name, p.body, 'ClusterRoleBinding'),
      replaceNamespacedRoleBinding: async (p: { name: string; namespace: string; body: Obj }) =>
        this.replace(this.roleBindings, `${p.namespace}/${p.name}`, p.body, 'RoleBinding'),
      replaceClusterRoleBinding: async (p: { name: string; body: Obj }) => this.replace(this.clusterRoleBindings, p.name, p.body, 'ClusterRoleBinding'),
      createNamespacedRoleBinding: async (p: { namespace: string; body: Obj }) =>
        this.create(this.roleBindings, `${p.namespace}/${p.body.metadata!.name}`, p.body, 'RoleBinding'),
      createClusterRoleBinding: async (p: { body: Obj }) => this.create(this.clusterRoleBindings, p.body.metadata!.name!, p.body, 'ClusterRoleBinding'),
      readClusterRole: async (p: { name: string }) => rules(this.clusterRoles.get(p.name)),
      readNamespacedRole: async (p: { name: string; namespace: string }) => rules(this.roles.get(`${p.namespace}/${p.name}`)),
    };
    const authz = {
      createSubjectAccessReview: async (p: { body: { spec: Parameters<FakeCluster['review']>[0] } }) => ({ status: this.review(p.body.spec) }),
      createSelfSubjectAccessReview: this.nodeActions.createSelfSubjectAccessReview,
    };
    const core = {
      readNamespace: async (p: { name: string }) => {
        if (this.goneNamespaces.has(p.name)) throw notFound();
        return { metadata: { name: p.name }, status: { phase: 'Active' } };
      },
      listNamespacedPod: async (p: { namespace: string }) => ({ items: this.pods.filter((x) => x.metadata?.namespace === p.namespace) }),
    };
    return { rbac, authz, core, admission: this.nodeActions.admission } as unknown as Kube;
  }
}

const pod = (name: string, uid: string, sa: string, phase = 'Running'): V1Pod => ({
  metadata: { name, namespace: NS, uid },
  spec: { serviceAccountName: sa, containers: [{ name: 'app' }] },
  status: { phase },
});

function seed(): FakeCluster {
  const c = new FakeCluster();
  c.clusterRoles.set('secret-reader', [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['secrets'] }]);
  c.clusterRoles.set('node-viewer', [{ verbs: ['get'], apiGroups: [''], resources: ['nodes'] }]);
  c.roles.set(`${NS}/pod-admin`, [{ verbs: ['create', 'delete'], apiGroups: [''], resources: ['pods', 'pods/exec'] }]);
  const ref = (kind: string, name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
  c.put('RoleBinding', { metadata: { name: 'web-secrets', namespace: NS }, roleRef: ref('ClusterRole', 'secret-reader'), subjects: [saSubject] });
  c.put('RoleBinding', { metadata: { name: 'pods-shared', namespace: NS }, roleRef: ref('Role', 'pod-admin'), subjects: [saSubject, { kind: 'ServiceAccount', name: 'worker', namespace: NS }] });
  c.put('RoleBinding', { metadata: { name: 'web-elsewhere', namespace: 'payments' }, roleRef: ref('ClusterRole', 'secret-reader'), subjects: [saSubject] });
  c.put('ClusterRoleBinding', { metadata: { name: 'all-sa-nodes' }, roleRef: ref('ClusterRole', 'node-viewer'), subjects: [{ kind: 'Group', name: 'system:serviceaccounts' }] });
  c.put('ClusterRoleBinding', { metadata: { name: 'other-web' }, roleRef: ref('ClusterRole', 'secret-reader'), subjects: [{ kind: 'ServiceAccount', name: SA, namespace: 'payments' }] });
  c.pods = [pod('web-1', 'pod-uid-1', SA), pod('web-2', 'pod-uid-2', SA), pod('web-old', 'pod-uid-3', SA, 'Succeeded'), pod('db-0', 'pod-uid-4', 'db')];
  return c;
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-rbac-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function context(cluster: FakeCluster, status: InvestigationStatus = {}) {
  const uid = '0a1b2c3d-0000-1111-2222-333344445555';
  const caseFile = await CaseFile.open({ root, namespace: NS, name: 'case-1', uid, actor: 'test' });
  const parsed = parseSpec({ target: { pod: 'web-1' }, containment: { rbac: { narrow: true } } });
  if (!parsed.ok) throw new Error(parsed.message);
  const investigation: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: NS, uid }, spec: {} };
  const target = cluster.pods[0]!;
  const ctx: PhaseContext = {
    investigation,
    spec: parsed.spec,
    kube: cluster.kube(),
    caseFile,
    config: { requireNodeActionsAdmission: true } as OperatorConfig,
    log: logger.child({}, { level: 'silent' }),
    status,
    livePod: async () => target,
    importJournaledAlerts: async () => undefined,
    signingKey: () => Promise.reject(new Error('no key in this test')),
  };
  return ctx;
}

describe('RBACNarrowed against a fake API server', () => {
  test('refused, touching no binding, while the node-actions admission policy is missing', async () => {
    const cluster = seed();
    cluster.nodeActions = nodeActionsApi({ admission: false });
    const before = JSON.stringify([...cluster.roleBindings.values(), ...cluster.clusterRoleBindings.values()]);
    const outcome = await rbacNarrowed.run(await context(cluster));
    expect(outcome).toMatchObject({ status: 'False', reason: 'NodeActionsNotAdmitted' });
    expect(outcome.message).toMatch(/spec\.containment\.rbac\.narrow .*casefile-node-actions is not installed/);
    expect(JSON.stringify([...cluster.roleBindings.values(), ...cluster.clusterRoleBindings.values()])).toBe(before);
  });

  test('narrows, saves originals first, names the group exposure and the blast radius; a rerun reports the same actions', async () => {
    const cluster = seed();
    const ctx = await context(cluster);
    try {
      const out = await rbacNarrowed.run(ctx);
      expect(out).toMatchObject({ status: 'True', reason: 'Narrowed' });
      expect(out.message).toContain('ServiceAccount web removed from 3 binding(s) (2 left without subjects, not deleted)');
      expect(out.message).toContain('get secrets: allowed -> denied');
      expect(out.message).toContain('create pods/exec: allowed -> denied');
      expect(out.message).toContain('get nodes: still allowed via ClusterRoleBinding all-sa-nodes');

      // Cluster: sole-subject bindings kept with no subject (nothing deleted or created), the shared one keeps its
      // other subject, the group and other account's bindings untouched.
      expect(cluster.roleBindings.get(`${NS}/web-secrets`)!.subjects).toEqual([]);
      expect(cluster.roleBindings.get('payments/web-elsewhere')!.subjects).toEqual([]);
      expect(cluster.calls.filter((c) => !c.startsWith('replace '))).toEqual([]);
      expect(cluster.roleBindings.get(`${NS}/pods-shared`)!.subjects).toEqual([{ kind: 'ServiceAccount', name: 'worker', namespace: NS }]);
      expect(cluster.clusterRoleBindings.get('all-sa-nodes')!.subjects).toEqual([{ kind: 'Group', name: 'system:serviceaccounts' }]);
      expect(cluster.clusterRoleBindings.get('other-web')!.subjects).toHaveLength(1);

      const c = ctx.status.containment!;
      const uidOf = (key: string) => cluster.roleBindings.get(key)!.metadata!.uid;
      const sharedOriginal = `containment/originals/RoleBinding/shop/pods-shared.${uidOf(`${NS}/pods-shared`)}.yaml`;
      expect(c.rbac).toEqual([
        { kind: 'RoleBinding', namespace: 'payments', name: 'web-elsewhere', action: 'SubjectRemoved', emptied: true, original: `containment/originals/RoleBinding/payments/web-elsewhere.${uidOf('payments/web-elsewhere')}.yaml` },
        { kind: 'RoleBinding', namespace: NS, name: 'pods-shared', action: 'SubjectRemoved', original: sharedOriginal },
        { kind: 'RoleBinding', namespace: NS, name: 'web-secrets', action: 'SubjectRemoved', emptied: true, original: `containment/originals/RoleBinding/shop/web-secrets.${uidOf(`${NS}/web-secrets`)}.yaml` },
      ]);
      expect(c.remainingExposure).toEqual(['ClusterRoleBinding all-sa-nodes grants ClusterRole node-viewer to group system:serviceaccounts']);
      expect(c.sharedServiceAccountPods).toEqual(['web-2']);

      // The original as found, including the subject that was removed.
      const saved = parse(await readFile(path.join(ctx.caseFile.dir, sharedOriginal), 'utf8')) as Obj;
      expect(saved.kind).toBe('RoleBinding');
      expect(saved.subjects).toContainEqual(saSubject);
      const before = JSON.parse(await readFile(path.join(ctx.caseFile.dir, 'containment/rbac/access-before.json'), 'utf8'));
      const after = JSON.parse(await readFile(path.join(ctx.caseFile.dir, 'containment/rbac/access-after.json'), 'utf8'));
      expect(before.checks.find((x: AccessResult) => x.verb === 'get' && x.resource === 'secrets').allowed).toBe(true);
      expect(after.checks.find((x: AccessResult) => x.verb === 'get' && x.resource === 'secrets').allowed).toBe(false);

      const custody = ctx.caseFile.custodyRecords();
      expect(custody.filter((r) => r.action === 'rbac-narrowed').map((r) => [r.detail?.name, r.detail?.action])).toEqual(
        expect.arrayContaining([['web-secrets', 'SubjectRemoved'], ['pods-shared', 'SubjectRemoved'], ['web-elsewhere', 'SubjectRemoved']]),
      );
      const limitations = custody.filter((r) => r.action === 'limitation').map((r) => String(r.detail?.finding));
      expect(limitations).toEqual([expect.stringContaining('all-sa-nodes'), expect.stringContaining('web-2')]);
      // Each original was recorded before the change it describes.
      const seqOf = (pred: (r: (typeof custody)[number]) => boolean) => custody.find(pred)!.seq;
      expect(seqOf((r) => r.artifact === sharedOriginal)).toBeLessThan(
        seqOf((r) => r.action === 'rbac-narrowed' && r.detail?.name === 'pods-shared'),
      );

      // Rerun (as after a restart): nothing left to change, same actions reported, nothing recorded twice.
      const calls = cluster.calls.length;
      const records = custody.length;
      ctx.status.containment = undefined;
      const again = await rbacNarrowed.run(ctx);
      expect(again).toMatchObject({ status: 'True', reason: 'Narrowed' });
      expect(again.message).toContain('removed from 3 binding(s) (2 left without subjects, not deleted)');
      expect(again.message).toContain('get secrets: allowed -> denied');
      expect(ctx.status.containment!.rbac).toEqual(c.rbac);
      expect(cluster.calls.length).toBe(calls);
      expect(ctx.caseFile.custodyRecords().length).toBe(records);
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('NotNarrowed when access stays allowed by something that is not a group grant', async () => {
    const cluster = seed();
    cluster.webhookAllows.add('get secrets');
    const ctx = await context(cluster);
    try {
      const out = await rbacNarrowed.run(ctx);
      expect(out).toMatchObject({ status: 'False', reason: 'NotNarrowed' });
      expect(out.message).toContain('get secrets: still allowed (webhook: allowed by policy)');
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('release merges the SA back by updates only, keeps subjects added meanwhile; twice is harmless', async () => {
    const cluster = seed();
    const ctx = await context(cluster);
    try {
      await rbacNarrowed.run(ctx);
      // Meanwhile someone adds a subject to the narrowed binding.
      const shared = cluster.roleBindings.get(`${NS}/pods-shared`)!;
      cluster.put('RoleBinding', { ...shared, subjects: [...shared.subjects!, { kind: 'User', name: 'alice' }] });

      const released = await rbacNarrowed.release!(ctx);
      expect(released.message).toContain('3 ServiceAccount re-added');
      expect(cluster.calls.filter((c) => !c.startsWith('replace '))).toEqual([]);
      expect(released.message).toMatch(/pre-narrowing access is back: get secrets, .*delete pods allowed again \(get nodes stayed allowed throughout\)/);
      expect(released.differences).toEqual([expect.stringContaining('subject User alice was added since narrowing (kept)')]);
      expect(cluster.roleBindings.get(`${NS}/pods-shared`)!.subjects).toEqual([
        { kind: 'ServiceAccount', name: 'worker', namespace: NS },
        { kind: 'User', name: 'alice' },
        saSubject,
      ]);
      expect(cluster.roleBindings.get(`${NS}/web-secrets`)!.subjects).toEqual([saSubject]);
      expect(cluster.roleBindings.get('payments/web-elsewhere')!.subjects).toEqual([saSubject]);
      expect(ctx.caseFile.custodyRecords().filter((r) => r.action === 'rbac-restored')).toHaveLength(3);

      const calls = cluster.calls.length;
      const twice = await rbacNarrowed.release!(ctx);
      expect(cluster.calls.length).toBe(calls);
      expect(twice.message).toContain('3 already restored');
      expect(twice.message).toContain('pre-narrowing access is back');
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('a RoleBinding whose namespace was deleted went with it: recorded, not retried, no binding created', async () => {
    const cluster = seed();
    const ctx = await context(cluster);
    try {
      await rbacNarrowed.run(ctx);
      cluster.roleBindings.delete('payments/web-elsewhere');
      cluster.goneNamespaces.add('payments');
      const released = await rbacNarrowed.release!(ctx);
      expect(released.message).toContain('2 ServiceAccount re-added, 0 already restored, 1 went with their namespace, 0 not restored');
      expect(released.differences).toEqual([expect.stringContaining('RoleBinding payments/web-elsewhere went with its namespace payments')]);
      expect(cluster.roleBindings.has('payments/web-elsewhere')).toBe(false);
      expect(cluster.calls.filter((c) => !c.startsWith('replace '))).toEqual([]);
      // The case's own namespace going: access is not waited for.
      cluster.goneNamespaces.add(NS);
      const again = await rbacNarrowed.release!(ctx);
      expect(again.message).toContain(`access not re-checked: namespace ${NS} is being deleted`);
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('bindings whose old artifact names collided (dev-team/edit, dev/team-edit) are both restored byte for byte', async () => {
    const cluster = new FakeCluster();
    cluster.clusterRoles.set('edit', [{ verbs: ['get'], apiGroups: [''], resources: ['configmaps'] }]);
    const ref = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' };
    const alice: RbacV1Subject = { kind: 'User', name: 'alice' };
    cluster.put('RoleBinding', { metadata: { name: 'edit', namespace: 'dev-team' }, roleRef: ref, subjects: [saSubject, alice] });
    cluster.put('RoleBinding', { metadata: { name: 'team-edit', namespace: 'dev' }, roleRef: ref, subjects: [saSubject] });
    cluster.pods = [pod('web-1', 'pod-uid-1', SA)];
    const before = [structuredClone(cluster.roleBindings.get('dev-team/edit')!), structuredClone(cluster.roleBindings.get('dev/team-edit')!)];
    const ctx = await context(cluster);
    try {
      await rbacNarrowed.run(ctx);
      expect(ctx.status.containment!.rbac!.map((r) => r.original)).toHaveLength(2);
      await rbacNarrowed.release!(ctx);
      const after = [cluster.roleBindings.get('dev-team/edit')!, cluster.roleBindings.get('dev/team-edit')!];
      expect(after.map((b) => ({ roleRef: b.roleRef, subjects: b.subjects }))).toEqual(before.map((b) => ({ roleRef: b.roleRef, subjects: b.subjects })));
    } finally {
      await ctx.caseFile.close();
    }
  });
});
