// End-to-end tests of RBAC narrowing and node cordon: what the suspect's ServiceAccount may do, by the
// API server's own answer (SubjectAccessReview), before, during and after containment; bindings with
// are narrowed (subjects updated), never deleted; a node cordoned for a case is uncordoned on release (and
// by the test's cleanup, whatever happens: the cluster has one node).
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { RbacAuthorizationV1Api, type RbacV1Subject, type V1RoleBinding } from '@kubernetes/client-node';
import { apiError, createTestNamespace, registerCleanup, useCleanup, waitForPodReady } from '../support/cluster.js';
import { busyboxPod, caseDirOf, conditionOf, core, createInvestigation, deployOperator, ensureEvidenceReader, waitForCondition } from '../operator/support.js';
import { allowed, expectCaseVerifies, kc, requestRelease, TEST_TIMEOUT_MS, waitAllowed, waitForConditionObserved } from './helpers.js';

const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

useCleanup();


async function readRoleBinding(namespace: string, name: string): Promise<V1RoleBinding | undefined> {
  try {
    return await rbac.readNamespacedRoleBinding({ name, namespace });
  } catch (err) {
    if (apiError(err).code === 404) return undefined;
    throw err;
  }
}

async function readClusterRoleBinding(name: string): Promise<V1RoleBinding | undefined> {
  try {
    return await rbac.readClusterRoleBinding({ name });
  } catch (err) {
    if (apiError(err).code === 404) return undefined;
    throw err;
  }
}

const subjectNames = (subjects: RbacV1Subject[] | undefined): string[] =>
  (subjects ?? []).map((s) => `${s.kind}:${s.namespace ?? ''}:${s.name}`).sort();

async function ignoreNotFound(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (apiError(err).code !== 404) throw err;
  }
}

/** spec.unschedulable of the node. */
async function unschedulable(node: string): Promise<boolean> {
  return (await core.readNode({ name: node })).spec?.unschedulable === true;
}

/**
 * Uncordons the node and removes casefile cordon holds of Investigations in `namespace` (their value
 * names the Investigation as namespace/name), so a failed test leaves the one-node cluster usable.
 */
async function uncordon(node: string, namespace: string): Promise<void> {
  const current = await core.readNode({ name: node });
  const holds = Object.entries(current.metadata?.annotations ?? {})
    .filter(([k, v]) => k.startsWith('cordon.casefile.dev/') && v.includes(`"${namespace}/`))
    .map(([k]) => k);
  if (!current.spec?.unschedulable && holds.length === 0) return;
  await core.patchNode({
    name: node,
    body: [
      ...holds.map((k) => ({ op: 'remove', path: `/metadata/annotations/${k.replace(/~/g, '~0').replace(/\//g, '~1')}` })),
      { op: 'replace', path: '/spec/unschedulable', value: false },
    ],
  });
}

describe('RBAC narrowing and node cordon', () => {
  beforeAll(async () => {
    await deployOperator();
    await ensureEvidenceReader();
  }, 300_000);

  test(
    'RBAC: the ServiceAccount is taken out of its bindings, denied by the API server, and restored on release',
    async () => {
      // Cluster-scoped objects: registered before the namespace, so their deletion runs after the
      // namespace (and its Investigation, whose finalizer may restore the binding) is gone.
      const run = randomBytes(4).toString('hex');
      const clusterRole = `casefile-e2e-get-pods-${run}`;
      const clusterRoleBinding = `casefile-e2e-web-${run}`;
      registerCleanup(`delete ClusterRole ${clusterRole}`, () => ignoreNotFound(() => rbac.deleteClusterRole({ name: clusterRole })));
      registerCleanup(`delete ClusterRoleBinding ${clusterRoleBinding}`, () => ignoreNotFound(() => rbac.deleteClusterRoleBinding({ name: clusterRoleBinding })));

      const ns = await createTestNamespace('cn-rbac');
      for (const name of ['web', 'other']) await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
      await rbac.createNamespacedRole({
        namespace: ns,
        body: { metadata: { name: 'secrets-reader' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }] },
      });
      const webSubject: RbacV1Subject = { kind: 'ServiceAccount', name: 'web', namespace: ns };
      const otherSubject: RbacV1Subject = { kind: 'ServiceAccount', name: 'other', namespace: ns };
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: 'secrets-readers' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secrets-reader' },
          subjects: [webSubject, otherSubject],
        },
      });
      await rbac.createClusterRole({ body: { metadata: { name: clusterRole }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } });
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: clusterRoleBinding },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
          subjects: [webSubject],
        },
      });
      // The suspect runs as `web`.
      const pod = busyboxPod('web-suspect', 'exec sleep 3600');
      pod.spec!.serviceAccountName = 'web';
      await core.createNamespacedPod({ namespace: ns, body: pod });
      await waitForPodReady(kc, ns, 'web-suspect', 90_000);

      // Before: the API server lets the ServiceAccount read secrets (RoleBinding) and pods (ClusterRoleBinding).
      await waitAllowed(ns, 'web', 'get', 'secrets', true);
      await waitAllowed(ns, 'web', 'get', 'pods', true);

      await createInvestigation(ns, 'narrow', {
        target: { pod: 'web-suspect' },
        alert: { source: 'manual' },
        containment: { order: 'ContainFirst', rbac: { narrow: true } },
      });
      const { inv } = await waitForConditionObserved(ns, 'narrow', 'RBACNarrowed', 'True', 150_000);
      const narrowed = conditionOf(inv, 'RBACNarrowed')!;
      expect(['Disabled', 'ReleaseRequested', 'NothingToNarrow']).not.toContain(narrowed.reason);

      await waitAllowed(ns, 'web', 'get', 'secrets', false);
      await waitAllowed(ns, 'web', 'get', 'pods', false);
      // `other` keeps its access: the binding was narrowed, not deleted.
      expect(await allowed(ns, 'other', 'get', 'secrets')).toBe(true);
      const rb = await readRoleBinding(ns, 'secrets-readers');
      expect(rb).toBeDefined();
      expect(subjectNames(rb!.subjects)).toEqual(subjectNames([otherSubject]));
      // A binding whose only subject was the ServiceAccount is kept, empty: narrowing never deletes.
      expect(subjectNames((await readClusterRoleBinding(clusterRoleBinding))?.subjects)).toEqual([]);

      const actions = (inv.status?.containment?.rbac ?? []).map((r) => ({ kind: r.kind, namespace: r.namespace, name: r.name, action: r.action }));
      expect(actions).toHaveLength(2);
      expect(actions).toEqual(
        expect.arrayContaining([
          { kind: 'RoleBinding', namespace: ns, name: 'secrets-readers', action: 'SubjectRemoved' },
          expect.objectContaining({ kind: 'ClusterRoleBinding', name: clusterRoleBinding, action: 'SubjectRemoved' }),
        ]),
      );

      await waitForCondition(ns, 'narrow', 'Ready', 'True', 150_000);
      await requestRelease(ns, 'narrow');
      const released = await waitForConditionObserved(ns, 'narrow', 'Released', 'True', 120_000);

      await waitAllowed(ns, 'web', 'get', 'secrets', true);
      await waitAllowed(ns, 'web', 'get', 'pods', true);
      const crb = await readClusterRoleBinding(clusterRoleBinding);
      expect(crb).toBeDefined();
      expect(crb!.roleRef).toMatchObject({ kind: 'ClusterRole', name: clusterRole });
      expect(subjectNames(crb!.subjects)).toEqual(subjectNames([webSubject]));
      expect(subjectNames((await readRoleBinding(ns, 'secrets-readers'))?.subjects)).toEqual(subjectNames([webSubject, otherSubject]));
      await expectCaseVerifies(caseDirOf(released.inv));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'cordon: the suspect node is made unschedulable and schedulable again on release',
    async () => {
      // Whatever happens below, the one node must end up schedulable: first thing in cleanup (before
      // the namespace goes) and again after it (in case the Investigation's finalizer did something).
      let node: string | undefined;
      let ns: string | undefined;
      registerCleanup('uncordon the suspect node after the namespace is gone', async () => {
        if (node && ns) await uncordon(node, ns);
      });
      ns = await createTestNamespace('cn-cordon');
      await core.createNamespacedPod({ namespace: ns, body: busyboxPod('suspect', 'exec sleep 3600') });
      const pod = await waitForPodReady(kc, ns, 'suspect', 90_000);
      node = pod.spec!.nodeName!;
      const nodeName = node;
      const namespace = ns;
      registerCleanup(`uncordon node ${node}`, () => uncordon(nodeName, namespace));
      expect({ node, unschedulableBefore: await unschedulable(node) }).toEqual({ node, unschedulableBefore: false });

      await createInvestigation(ns, 'cordon', {
        target: { pod: 'suspect' },
        alert: { source: 'manual' },
        containment: { order: 'ContainFirst', cordonNode: true },
      });
      const { inv } = await waitForConditionObserved(ns, 'cordon', 'NodeCordoned', 'True', 150_000);
      expect(inv.status?.target?.node).toBe(node);
      expect(conditionOf(inv, 'NodeCordoned')?.reason).not.toBe('Disabled');
      expect(await unschedulable(node)).toBe(true);
      expect(inv.status?.containment?.cordoned).toBe(true);

      await waitForCondition(ns, 'cordon', 'Ready', 'True', 150_000);
      await requestRelease(ns, 'cordon');
      const released = await waitForConditionObserved(ns, 'cordon', 'Released', 'True', 120_000);
      expect(await unschedulable(node)).toBe(false);
      expect(released.inv.status?.containment?.cordoned).toBe(false);
      await expectCaseVerifies(caseDirOf(released.inv));
    },
    TEST_TIMEOUT_MS,
  );

  // A target whose node no longer exists (NodeCordoned=False, NodeNotFound): restart-detach.test.ts
  // binds a pod to a Node object and deletes that object.
});
