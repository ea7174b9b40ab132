// Release works from the record of what was applied, never from the current spec: an edit of
// spec.containment after isolation is refused (CEL), an edit made together with release: true still
// lifts everything, and Released=True is written only once the policy and the label are gone. Deleting
// the namespace of an RBAC-narrowed case finishes within a minute without an error flood. Bindings whose
// saved originals would once have shared a file name are both restored exactly.
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { RbacAuthorizationV1Api, type RbacV1Subject } from '@kubernetes/client-node';
import { createTestNamespace, deleteNamespace, registerCleanup, useCleanup, waitForPodReady } from '../support/cluster.js';
import {
  busyboxPod,
  caseDirOf,
  conditionOf,
  core,
  createInvestigation,
  deployOperator,
  ensureEvidenceReader,
  kubectlRun,
  OPERATOR_NAMESPACE,
  readEvidence,
  waitForCondition,
} from '../operator/support.js';
import { incidentKey, kc, networking, podLabels, policyName, readPolicy, TEST_TIMEOUT_MS, waitForConditionObserved } from './helpers.js';

const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

useCleanup();

async function patchSpec(ns: string, name: string, spec: object) {
  return kubectlRun(['-n', ns, 'patch', 'investigation', name, '--type', 'merge', '-p', JSON.stringify({ spec })]);
}

async function suspectPod(ns: string, name: string, serviceAccountName?: string): Promise<void> {
  const pod = busyboxPod(name, 'exec sleep 3600');
  if (serviceAccountName) pod.spec!.serviceAccountName = serviceAccountName;
  await core.createNamespacedPod({ namespace: ns, body: pod });
  await waitForPodReady(kc, ns, name, 90_000);
}

const subjectsOf = (subjects: RbacV1Subject[] | undefined) => (subjects ?? []).map((s) => `${s.kind}:${s.namespace ?? ''}:${s.name}`);

describe('release from the record', () => {
  beforeAll(async () => {
    await deployOperator();
    await ensureEvidenceReader();
  }, 300_000);

  test(
    'isolate, edit the spec (refused alone, accepted with release), release: policy, label and patched expression gone before Released=True',
    async () => {
      const ns = await createTestNamespace('cn-record');
      // An allowing policy with a long name: its original is saved under a shortened file name, and
      // release must still find it by the name inside the saved object.
      const longName = `allow-${'a'.repeat(200)}`;
      await networking.createNamespacedNetworkPolicy({ namespace: ns, body: { metadata: { name: longName }, spec: { podSelector: {}, ingress: [{}], policyTypes: ['Ingress'] } } });
      await suspectPod(ns, 'suspect');
      // verify is not set: on by default, as the contract says.
      await createInvestigation(ns, 'edit', { target: { pod: 'suspect' }, alert: { source: 'manual' }, containment: { order: 'ContainFirst', network: { isolate: true } } });
      const { inv } = await waitForConditionObserved(ns, 'edit', 'NetworkIsolated', 'True', 150_000);
      expect(inv.status?.containment?.verification).toBeDefined();
      expect((await podLabels(ns, 'suspect'))[incidentKey(inv)]).toBe('isolated');
      expect(await readPolicy(ns, policyName(inv))).toBeDefined();
      expect((await readPolicy(ns, longName))?.spec?.podSelector?.matchExpressions).toEqual([{ key: incidentKey(inv), operator: 'DoesNotExist' }]);

      // Alone, the edit is refused with a message that says how to change course.
      const alone = await patchSpec(ns, 'edit', { containment: { network: { isolate: false } } });
      expect(alone.exitCode).not.toBe(0);
      expect(alone.stderr).toContain('spec.containment cannot change once containment has acted');
      expect(alone.stderr).toContain('spec.release: true');

      // With release (as one GitOps commit might do both): accepted, and release works from the record.
      const withRelease = await patchSpec(ns, 'edit', { containment: { network: { isolate: false } }, release: true });
      expect({ exitCode: withRelease.exitCode, stderr: withRelease.stderr }).toEqual({ exitCode: 0, stderr: '' });
      // Read at the first sight of Released=True: by then everything must already be undone.
      const released = await waitForConditionObserved(ns, 'edit', 'Released', 'True', 120_000);
      const state = {
        label: (await podLabels(ns, 'suspect'))[incidentKey(inv)],
        policy: (await readPolicy(ns, policyName(inv)))?.metadata?.name,
        longPolicyExpressions: (await readPolicy(ns, longName))?.spec?.podSelector?.matchExpressions ?? [],
      };
      expect(state).toEqual({ label: undefined, policy: undefined, longPolicyExpressions: [] });
      const message = conditionOf(released.inv, 'Released')!.message;
      expect(message).toContain(`NetworkPolicy ${policyName(inv)} gone`);
      expect(message).not.toContain('deleted by someone else');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a containment phase recorded Disabled cannot be turned on by an edit',
    async () => {
      const ns = await createTestNamespace('cn-disabled');
      await suspectPod(ns, 'suspect');
      await createInvestigation(ns, 'off', { target: { pod: 'suspect' }, alert: { source: 'manual' }, containment: { order: 'ContainFirst' } });
      const { inv } = await waitForConditionObserved(ns, 'off', 'NetworkIsolated', 'True', 150_000);
      expect(conditionOf(inv, 'NetworkIsolated')?.reason).toBe('Disabled');
      const on = await patchSpec(ns, 'off', { containment: { network: { isolate: true } } });
      expect(on.exitCode).not.toBe(0);
      expect(on.stderr).toContain('spec.containment cannot change once containment has acted');
      expect(await readPolicy(ns, policyName(inv))).toBeUndefined();
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'deleting the namespace of an RBAC-narrowed case: gone within 60 s, release recorded, no error flood',
    async () => {
      const ns = await createTestNamespace('cn-nsdel');
      for (const name of ['web', 'other']) await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
      await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } });
      const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' };
      const web: RbacV1Subject = { kind: 'ServiceAccount', name: 'web', namespace: ns };
      await rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name: 'web-only' }, roleRef, subjects: [web] } });
      await rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name: 'shared' }, roleRef, subjects: [web, { kind: 'ServiceAccount', name: 'other', namespace: ns }] } });
      await suspectPod(ns, 'suspect', 'web');
      await createInvestigation(ns, 'narrow', { target: { pod: 'suspect' }, alert: { source: 'manual' }, containment: { order: 'ContainFirst', rbac: { narrow: true } } });
      await waitForConditionObserved(ns, 'narrow', 'RBACNarrowed', 'True', 150_000);
      // Narrowing kept the sole-subject binding, empty.
      expect(subjectsOf((await rbac.readNamespacedRoleBinding({ namespace: ns, name: 'web-only' })).subjects)).toEqual([]);
      const sealed = await waitForCondition(ns, 'narrow', 'Ready', 'True', 150_000);
      const caseDir = caseDirOf(sealed);

      const started = Date.now();
      const since = new Date(started).toISOString();
      await deleteNamespace(ns, { waitMs: 60_000 });
      const seconds = (Date.now() - started) / 1000;
      expect(seconds).toBeLessThan(60);

      const custody = (await readEvidence(`${caseDir}/custody.jsonl`)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string });
      expect(custody.map((r) => r.action)).toEqual(expect.arrayContaining(['released', 'investigation-deleted']));
      // No hot loop: the operator said little about this case while its namespace went.
      const logs = await kubectlRun(['-n', OPERATOR_NAMESPACE, 'logs', 'deploy/casefile-operator', `--since-time=${since}`]);
      const lines = logs.stdout.split('\n').filter((l) => l.includes(ns));
      expect(lines.length).toBeLessThan(30);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'two RoleBindings whose originals once shared a file name (X-team/edit, X/team-edit) are both restored exactly',
    async () => {
      const ns = await createTestNamespace('cn-coll');
      // The other namespace is the case's name plus "-team": RoleBinding-<ns>-team-edit either way.
      const teamNs = `${ns}-team`;
      await core.createNamespace({ body: { metadata: { name: teamNs, labels: { 'casefile.dev/e2e': 'true' } } } });
      registerCleanup(`delete namespace ${teamNs}`, () => deleteNamespace(teamNs));
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
      const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' };
      const web: RbacV1Subject = { kind: 'ServiceAccount', name: 'web', namespace: ns };
      const alice: RbacV1Subject = { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `alice-${randomBytes(2).toString('hex')}` };
      await rbac.createNamespacedRoleBinding({ namespace: teamNs, body: { metadata: { name: 'edit' }, roleRef, subjects: [web, alice] } });
      await rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name: 'team-edit' }, roleRef, subjects: [web] } });
      const read = async () => [
        await rbac.readNamespacedRoleBinding({ namespace: teamNs, name: 'edit' }),
        await rbac.readNamespacedRoleBinding({ namespace: ns, name: 'team-edit' }),
      ].map((b) => JSON.stringify({ roleRef: b.roleRef, subjects: b.subjects }));
      const before = await read();

      await suspectPod(ns, 'suspect', 'web');
      await createInvestigation(ns, 'coll', { target: { pod: 'suspect' }, alert: { source: 'manual' }, containment: { order: 'ContainFirst', rbac: { narrow: true } } });
      const { inv } = await waitForConditionObserved(ns, 'coll', 'RBACNarrowed', 'True', 150_000);
      const originals = (inv.status?.containment?.rbac ?? []).map((r) => r.original);
      expect(new Set(originals).size).toBe(2);
      await waitForCondition(ns, 'coll', 'Ready', 'True', 150_000);
      await patchSpec(ns, 'coll', { release: true });
      await waitForConditionObserved(ns, 'coll', 'Released', 'True', 120_000);
      expect(await read()).toEqual(before);
    },
    TEST_TIMEOUT_MS,
  );
});
