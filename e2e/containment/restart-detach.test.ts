// Containment under stress: the operator killed between isolation and RBAC narrowing (nothing applied
// twice, release still restores everything), killed right after ContainFirst's first writes (found in
// the cluster and recorded, then released), detachFromWorkload (a clean replacement starts, the
// suspect lives on outside its Service), and a target whose node no longer exists.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DiscoveryV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { Investigation } from '../../src/api/investigation.js';
import { createTestNamespace, images, registerCleanup, useCleanup, waitFor } from '../support/cluster.js';
import {
  caseDirOf,
  conditionOf,
  core,
  createInvestigation,
  deployOperator,
  deployOperatorWithEnv,
  deployOperatorWithout,
  ensureEvidenceReader,
  operatorPod,
  readEvidence,
  waitForCondition,
} from '../operator/support.js';
import { apps, expectBlockedBetween, expectCaseVerifies, incidentKey, kc, policyName, podLabels, readPolicy, requestRelease, startClient, startEchoServer, startWeb, TEST_TIMEOUT_MS, waitAllowed } from './helpers.js';

const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const discovery = kc.makeApiClient(DiscoveryV1Api);

useCleanup();


const custodyActions = async (caseDir: string) =>
  (await readEvidence(`${caseDir}/custody.jsonl`)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; detail?: Record<string, unknown> });

describe('containment under stress', () => {
  beforeAll(async () => {
    await deployOperator();
    await ensureEvidenceReader();
  }, 300_000);
  afterAll(async () => {
    await deployOperatorWithout(['CASEFILE_EXIT_AFTER_PHASE']);
  }, 300_000);

  test('killed between isolation and RBAC narrowing: resumes, applies nothing twice, release restores everything', async () => {
    const ns = await createTestNamespace('cn-kill');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
    await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'read-secrets' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: { metadata: { name: 'web-secrets' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-secrets' }, subjects: [{ kind: 'ServiceAccount', name: 'web', namespace: ns }] },
    });
    const target = await startEchoServer(ns);
    await startClient(ns);
    const { suspect } = await startWeb(ns, target, { serviceAccountName: 'web' });
    await waitAllowed(ns, 'web', 'get', 'secrets', true);

    let inv: Investigation | undefined;
    let caseDir = '';
    await expectBlockedBetween(ns, suspect.metadata!.name!, {
      contain: async () => {
        await deployOperatorWithEnv(['CASEFILE_EXIT_AFTER_PHASE=NetworkIsolated']);
        const restartsBefore = (await operatorPod()).status?.containerStatuses?.[0]?.restartCount ?? 0;
        inv = await createInvestigation(ns, 'killed', {
          target: { pod: suspect.metadata!.name! },
          containment: { order: 'ContainFirst', network: { isolate: true }, rbac: { narrow: true } },
        });
        await waitFor('the operator to exit after NetworkIsolated and be restarted', async () => (await operatorPod()).status?.containerStatuses?.[0]?.restartCount ?? 0, {
          timeoutMs: 120_000,
          until: (n) => n > restartsBefore,
        });
        const done = await waitForCondition(ns, 'killed', 'Ready', 'True', 180_000);
        caseDir = caseDirOf(done);
        // Each condition with the object it claims: the policy and label, the binding gone.
        expect(conditionOf(done, 'NetworkIsolated')?.status).toBe('True');
        expect(await readPolicy(ns, policyName(inv))).toBeDefined();
        expect((await podLabels(ns, suspect.metadata!.name!))[incidentKey(inv)]).toBe('isolated');
        expect(conditionOf(done, 'RBACNarrowed')?.status).toBe('True');
        // Its only subject was the ServiceAccount: narrowing keeps the binding with no subjects (never
        // deletes it), so release restores it by update.
        expect((await rbac.readNamespacedRoleBinding({ name: 'web-secrets', namespace: ns })).subjects ?? []).toEqual([]);
        await waitAllowed(ns, 'web', 'get', 'secrets', false);
      },
      whileContained: async () => {
        const actions = await custodyActions(caseDir);
        const count = (a: string) => actions.filter((r) => r.action === a).length;
        expect({ created: count('networkpolicy-created'), labelled: count('pod-labelled'), narrowed: count('rbac-narrowed') }).toEqual({ created: 1, labelled: 1, narrowed: 1 });
        const artifacts = actions.filter((r) => r.action === 'artifact').map((r) => (r as { artifact?: string }).artifact);
        expect(new Set(artifacts).size).toBe(artifacts.length);
      },
      release: async () => {
        await deployOperatorWithout(['CASEFILE_EXIT_AFTER_PHASE']);
        await requestRelease(ns, 'killed');
        await waitForCondition(ns, 'killed', 'Released', 'True');
      },
    });

    await waitAllowed(ns, 'web', 'get', 'secrets', true);
    expect(await readPolicy(ns, policyName(inv!))).toBeUndefined();
    expect(Object.keys(await podLabels(ns, suspect.metadata!.name!))).not.toContain(incidentKey(inv!));
    const binding = await rbac.readNamespacedRoleBinding({ name: 'web-secrets', namespace: ns });
    expect(binding.subjects).toEqual([expect.objectContaining({ kind: 'ServiceAccount', name: 'web', namespace: ns })]);
    await expectCaseVerifies(caseDir);
  }, 420_000);

  test('killed right after the first writes (ContainFirst), before finalizer-free bookkeeping: the restarted operator finds and records them; release undoes them', async () => {
    const ns = await createTestNamespace('cn-first');
    const target = await startEchoServer(ns);
    await startClient(ns);
    const { suspect } = await startWeb(ns, target);
    const pod = suspect.metadata!.name!;

    let inv: Investigation | undefined;
    let caseDir = '';
    await expectBlockedBetween(ns, pod, {
      contain: async () => {
        await deployOperatorWithEnv(['CASEFILE_EXIT_AFTER_PHASE=ContainNow']);
        const restartsBefore = (await operatorPod()).status?.containerStatuses?.[0]?.restartCount ?? 0;
        inv = await createInvestigation(ns, 'first', { target: { pod }, containment: { order: 'ContainFirst', network: { isolate: true } } });
        await waitFor('the operator to exit after the first writes and be restarted', async () => (await operatorPod()).status?.containerStatuses?.[0]?.restartCount ?? 0, {
          timeoutMs: 120_000,
          until: (n) => n > restartsBefore,
        });
        // What the crashed process left: the policy and the label, and nothing in status yet.
        expect(await readPolicy(ns, policyName(inv))).toBeDefined();
        expect((await podLabels(ns, pod))[incidentKey(inv)]).toBe('isolated');
        // The restarted process (exit still armed) finds the finalizer that went out with the first
        // writes: no second round of them; NetworkIsolated takes over from what is in the cluster.
        const done = await waitForCondition(ns, 'first', 'NetworkIsolated', 'True', 180_000);
        caseDir = caseDirOf(done);
      },
      whileContained: async () => {
        const actions = await custodyActions(caseDir);
        const created = actions.filter((r) => r.action === 'networkpolicy-created');
        const labelled = actions.filter((r) => r.action === 'pod-labelled');
        // Recorded once each, as found in the cluster, with the time the policy was applied.
        expect(created).toHaveLength(1);
        expect(created[0]!.detail).toMatchObject({ name: policyName(inv!), foundInCluster: true });
        expect(Date.parse(String(created[0]!.detail!.appliedAt))).toBeLessThanOrEqual(Date.now());
        expect(labelled).toHaveLength(1);
        expect(labelled[0]!.detail).toMatchObject({ pod, foundInCluster: true });
        const before = JSON.parse(await readEvidence(`${caseDir}/containment/pod-labels-before.json`)) as Record<string, string>;
        expect(before).not.toHaveProperty(incidentKey(inv!));
      },
      release: async () => {
        await deployOperatorWithout(['CASEFILE_EXIT_AFTER_PHASE']);
        await requestRelease(ns, 'first');
        await waitForCondition(ns, 'first', 'Released', 'True');
      },
    });
    expect(await readPolicy(ns, policyName(inv!))).toBeUndefined();
    expect(Object.keys(await podLabels(ns, pod))).not.toContain(incidentKey(inv!));
  }, TEST_TIMEOUT_MS);

  test('detachFromWorkload: a clean replacement starts, the suspect keeps running outside its Service', async () => {
    const ns = await createTestNamespace('cn-detach');
    const target = await startEchoServer(ns);
    const { suspect, sibling } = await startWeb(ns, target);
    await core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 8080 }] } } });
    const endpointIPs = async () =>
      (await discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: 'kubernetes.io/service-name=web' })).items.flatMap((s) =>
        (s.endpoints ?? []).flatMap((e) => e.addresses),
      );
    await waitFor('the Service to route to both replicas', endpointIPs, { timeoutMs: 60_000, until: (ips) => ips.includes(suspect.status!.podIP!) && ips.length === 2 });

    const inv = await createInvestigation(ns, 'detach', {
      target: { pod: suspect.metadata!.name! },
      containment: { order: 'ContainFirst', network: { isolate: true, detachFromWorkload: true } },
    });
    const isolated = await waitForCondition(ns, 'detach', 'NetworkIsolated', 'True');
    expect(conditionOf(isolated, 'NetworkIsolated')?.message).toContain('detached from its workload');
    expect(await readPolicy(ns, policyName(inv))).toBeDefined();

    const labels = await podLabels(ns, suspect.metadata!.name!);
    expect(labels).not.toHaveProperty('app');
    expect(labels[incidentKey(inv)]).toBe('isolated');
    await waitFor('a fresh replica beside the sibling, the suspect out of the Deployment', async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' })).items;
      return pods.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((p) => p.metadata!.name!);
    }, { timeoutMs: 90_000, until: (names) => names.length === 2 && names.includes(sibling.metadata!.name!) && !names.includes(suspect.metadata!.name!) });
    await waitFor('the suspect to drop out of the Service endpoints', endpointIPs, { timeoutMs: 60_000, until: (ips) => !ips.includes(suspect.status!.podIP!) });
    const still = await core.readNamespacedPod({ name: suspect.metadata!.name!, namespace: ns });
    expect(still.metadata?.uid).toBe(suspect.metadata!.uid);
    expect(still.status?.phase).toBe('Running');
    expect(still.metadata?.ownerReferences ?? []).toHaveLength(0);
    const saved = JSON.parse(await readEvidence(`${caseDirOf(isolated)}/containment/originals/detached-labels.json`)) as { removed: Record<string, string> };
    // The ReplicaSet selects on app and pod-template-hash, the Service on app: all of them go.
    expect(saved.removed).toEqual({ app: 'web', 'pod-template-hash': suspect.metadata!.labels!['pod-template-hash'] });

    await requestRelease(ns, 'detach');
    await waitForCondition(ns, 'detach', 'Released', 'True');
    expect(await podLabels(ns, suspect.metadata!.name!)).toMatchObject(saved.removed);
    expect(await readPolicy(ns, policyName(inv))).toBeUndefined();
    // The Deployment adopts it back and scales to 2; the exact survivor is the ReplicaSet's choice.
    await waitFor('the Deployment to settle at 2 replicas', async () => (await apps.readNamespacedDeployment({ name: 'web', namespace: ns })).status?.readyReplicas, {
      timeoutMs: 90_000,
      until: (n) => n === 2,
    });
  }, TEST_TIMEOUT_MS);

  test('a target whose node no longer exists is still isolated, and NodeCordoned says why it is False', async () => {
    const ns = await createTestNamespace('cn-ghost');
    const node = `ghost-${ns.slice(-8)}`;
    await core.createNode({ body: { metadata: { name: node } } });
    registerCleanup(`delete node ${node}`, async () => {
      await core.deleteNode({ name: node }).catch(() => undefined);
    });
    // Bound straight to the node object (no scheduler): the pod exists, on a node that will vanish.
    await core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: 'stranded', labels: { app: 'stranded' } }, spec: { nodeName: node, containers: [{ name: 'app', image: images.busybox, command: ['sleep', '3600'] }] } },
    });
    await core.deleteNode({ name: node });
    await createInvestigation(ns, 'ghost', {
      target: { pod: 'stranded' },
      containment: { order: 'ContainFirst', network: { isolate: true, verify: false }, cordonNode: true },
    });
    const inv = await waitForCondition(ns, 'ghost', 'NodeCordoned', 'False', 60_000);
    expect(conditionOf(inv, 'NodeCordoned')?.reason).toBe('NodeNotFound');
    expect(conditionOf(inv, 'NodeCordoned')?.message).toContain(node);
    expect(conditionOf(inv, 'NetworkIsolated')?.status).toBe('True');
    expect(await readPolicy(ns, policyName(inv))).toBeDefined();
  }, TEST_TIMEOUT_MS);
});
