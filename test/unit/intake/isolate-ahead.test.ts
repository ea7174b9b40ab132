// Isolating ahead of the create, against an in-memory API server: the writes go out before the
// Investigation exists, the policy is claimed for its UID once it does, and every other ending gives
// back exactly what went out (then makes the case's own writes, or leaves the pod to TargetResolved).
// The sweep lifts only what intake makes and nobody claimed.
import { describe, expect, test } from '@jest/globals';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import type { Investigation } from '../../../src/api/investigation.js';
import { buildInvestigation, type InvestigationBody } from '../../../src/intake/investigation-factory.js';
import { AheadIsolation, SWEEP_GRACE_MS, type AheadApi } from '../../../src/intake/isolate-ahead.js';
import { AHEAD_CLAIM_MS } from '../../../src/phases/network-isolated/isolation-id.js';
import { silent } from './helpers.js';

const apiError = (code: number, message = `HTTP ${code}`) => Object.assign(new Error(message), { code, body: {} });
const POD_UID = 'pod-uid-1';
const CASE_UID = '5eed0000-1111-2222-3333-444455556666';

class FakeCluster implements AheadApi {
  pods = new Map<string, V1Pod>([['shop/web-1', { metadata: { name: 'web-1', namespace: 'shop', uid: POD_UID, labels: { app: 'web' } }, spec: { containers: [{ name: 'app' }] } }]]);
  policies = new Map<string, V1NetworkPolicy>();
  cases = new Set<string>();
  unannotated: string[] = [];
  failPolicyCreate = false;
  calls: string[] = [];
  private rv = 1;

  async createPolicy(namespace: string, body: V1NetworkPolicy): Promise<V1NetworkPolicy> {
    this.calls.push('createPolicy');
    if (this.failPolicyCreate) throw apiError(500, 'etcd timeout');
    const key = `${namespace}/${body.metadata!.name}`;
    if (this.policies.has(key)) throw apiError(409);
    const made = structuredClone({ ...body, metadata: { ...body.metadata, uid: `np-${this.rv}`, resourceVersion: String(this.rv++), creationTimestamp: new Date() } });
    this.policies.set(key, made);
    return structuredClone(made);
  }

  async deletePolicy(namespace: string, name: string, uid: string): Promise<unknown> {
    const p = this.policies.get(`${namespace}/${name}`);
    if (!p) throw apiError(404);
    if (p.metadata!.uid !== uid) throw apiError(409);
    this.policies.delete(`${namespace}/${name}`);
    return {};
  }

  async readPod(namespace: string, name: string): Promise<V1Pod> {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) throw apiError(404);
    return structuredClone(pod);
  }

  async patchPod(namespace: string, name: string, ops: object[]): Promise<V1Pod> {
    this.calls.push('patchPod');
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) throw apiError(404);
    const next = structuredClone(pod);
    for (const op of ops as { op: string; path: string; value: unknown }[]) {
      const label = op.path.startsWith('/metadata/labels/') ? op.path.slice('/metadata/labels/'.length).replace(/~1/g, '/') : undefined;
      if (op.op === 'test' && op.path === '/metadata/uid' && op.value !== next.metadata!.uid) throw apiError(422);
      if (op.op === 'test' && label && next.metadata!.labels?.[label] !== op.value) throw apiError(422);
      if (op.op === 'add' && label) next.metadata!.labels![label] = op.value as string;
      if (op.op === 'remove' && label) delete next.metadata!.labels![label];
    }
    this.pods.set(`${namespace}/${name}`, next);
    return structuredClone(next);
  }

  async claimPolicy(namespace: string, name: string, resourceVersion: string, owner: Investigation): Promise<unknown> {
    const p = this.policies.get(`${namespace}/${name}`);
    if (!p) throw apiError(404);
    if (p.metadata!.resourceVersion !== resourceVersion) throw apiError(409);
    p.metadata!.annotations = { ...p.metadata!.annotations, 'casefile.dev/investigation-uid': owner.metadata.uid };
    p.metadata!.ownerReferences = [{ apiVersion: owner.apiVersion, kind: 'Investigation', name: owner.metadata.name, uid: owner.metadata.uid }];
    p.metadata!.resourceVersion = String(this.rv++);
    return p;
  }

  async unannotate(inv: Investigation): Promise<unknown> {
    this.unannotated.push(inv.metadata.uid);
    return {};
  }

  async aheadPolicies(): Promise<V1NetworkPolicy[]> {
    return [...this.policies.values()].filter((p) => p.metadata?.labels?.['casefile.dev/isolated-ahead'] !== undefined).map((p) => structuredClone(p));
  }

  async labelledPods(namespace: string, key: string): Promise<V1Pod[]> {
    return [...this.pods.values()].filter((p) => p.metadata!.namespace === namespace && p.metadata!.labels?.[key] !== undefined).map((p) => structuredClone(p));
  }

  async caseIds(): Promise<Set<string>> {
    return new Set(this.cases);
  }

  incidentLabels(): string[] {
    return Object.keys(this.pods.get('shop/web-1')!.metadata!.labels ?? {}).filter((k) => k.startsWith('casefile.dev/incident-'));
  }
}

function body(containment: object = { order: 'ContainFirst', network: { isolate: true } }, target: Record<string, string> = {}): InvestigationBody {
  const b = buildInvestigation({
    type: 'alert',
    receivedAt: '2026-12-04T10:00:00.000Z',
    source: 'falco',
    policy: { namespace: 'shop', name: 'respond' },
    investigation: { namespace: 'shop', name: 'respond-web-1-0a1b2c3d' },
    pod: { name: 'web-1', uid: POD_UID },
    alert: { rule: 'Terminal shell in container', priority: 'Critical', time: '2026-12-04T10:00:00Z' },
    template: { containment },
    raw: '{}',
  });
  return { ...b, spec: { ...b.spec, target: { ...(b.spec.target as object), ...target } } };
}

/** What the API server answers to the create. */
const created = (b: InvestigationBody): Investigation => ({ ...b, metadata: { ...b.metadata, uid: CASE_UID, resourceVersion: '7' } }) as unknown as Investigation;

describe('AheadIsolation.begin', () => {
  test('only a ContainFirst case that isolates its pod (not released) is isolated ahead', () => {
    const ahead = new AheadIsolation({ api: new FakeCluster(), log: silent });
    expect(ahead.begin(body({ order: 'EvidenceFirst', network: { isolate: true } }))).toBeUndefined();
    expect(ahead.begin(body({ order: 'ContainFirst', rbac: { narrow: true } }))).toBeUndefined();
    expect(ahead.begin({ ...body(), spec: { ...body().spec, release: true } })).toBeUndefined();
    expect(ahead.begin({ ...body(), spec: { nonsense: true } })).toBeUndefined();
  });

  test('the writes go out at once, before the create; the body carries the id and the finalizer; the create settled, the policy is claimed for the UID', async () => {
    const cluster = new FakeCluster();
    const ahead = new AheadIsolation({ api: cluster, log: silent }).begin(body())!;
    const id = ahead.body.metadata.annotations['casefile.dev/isolated-ahead']!;
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(ahead.body.metadata.finalizers).toEqual(['casefile.dev/release']);
    // Both writes were sent synchronously by begin(): nothing waited for the create.
    expect(cluster.calls).toEqual(['createPolicy', 'patchPod']);
    await ahead.settle(created(ahead.body));
    const policy = cluster.policies.get(`shop/casefile-${id}`)!;
    expect(policy.metadata!.annotations!['casefile.dev/investigation-uid']).toBe(CASE_UID);
    expect(policy.metadata!.ownerReferences).toEqual([{ apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', name: 'respond-web-1-0a1b2c3d', uid: CASE_UID }]);
    expect(policy.spec!.podSelector).toEqual({ matchLabels: { [`casefile.dev/incident-${id}`]: 'isolated' } });
    expect(cluster.incidentLabels()).toEqual([`casefile.dev/incident-${id}`]);
    expect(cluster.unannotated).toEqual([]);
  });

  test('the create failed (the case exists, or process() opens it): both writes are taken back, nothing else is made', async () => {
    const cluster = new FakeCluster();
    const ahead = new AheadIsolation({ api: cluster, log: silent }).begin(body())!;
    await ahead.settle(undefined);
    expect(cluster.policies.size).toBe(0);
    expect(cluster.incidentLabels()).toEqual([]);
  });

  test('the claim came too late: taken back, the case\'s own writes under its UID made instead, the annotation removed', async () => {
    const cluster = new FakeCluster();
    let now = 1_000_000;
    const ahead = new AheadIsolation({ api: cluster, log: silent, now: () => now }).begin(body())!;
    const id = ahead.body.metadata.annotations['casefile.dev/isolated-ahead']!;
    now += AHEAD_CLAIM_MS;
    await ahead.settle(created(ahead.body));
    expect(cluster.policies.has(`shop/casefile-${id}`)).toBe(false);
    const own = cluster.policies.get('shop/casefile-5eed0000')!;
    expect(own.metadata!.annotations!['casefile.dev/investigation-uid']).toBe(CASE_UID);
    expect(cluster.incidentLabels()).toEqual(['casefile.dev/incident-5eed0000']);
    expect(cluster.unannotated).toEqual([CASE_UID]);
  });

  test("the policy could not be created: the label is taken back; the own writes label the pod under the case's UID (its reconcile makes the policy); the annotation is removed", async () => {
    const cluster = new FakeCluster();
    cluster.failPolicyCreate = true;
    const ahead = new AheadIsolation({ api: cluster, log: silent }).begin(body())!;
    await ahead.settle(created(ahead.body));
    // The own writes labelled the pod under the case's UID: its reconcile finds and records that label.
    expect(cluster.incidentLabels()).toEqual(['casefile.dev/incident-5eed0000']);
    expect(cluster.policies.size).toBe(0);
    expect(cluster.unannotated).toEqual([CASE_UID]);
  });

  test('a pod with another UID than the alert named (replaced): nothing is labelled, the policy is taken back, no own writes', async () => {
    const cluster = new FakeCluster();
    const ahead = new AheadIsolation({ api: cluster, log: silent }).begin(body(undefined, { uid: 'another-uid' }))!;
    await ahead.settle(created(ahead.body));
    expect(cluster.policies.size).toBe(0);
    expect(cluster.incidentLabels()).toEqual([]);
    expect(cluster.unannotated).toEqual([CASE_UID]);
  });
});

describe('AheadIsolation.sweep', () => {
  /** Containment made ahead by a process that stopped before its claim: a policy and a label under `id`, `ageMs` old. */
  async function orphan(cluster: FakeCluster, id: string, ageMs: number): Promise<void> {
    await cluster.createPolicy('shop', {
      metadata: { name: `casefile-${id}`, namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'casefile', 'casefile.dev/isolated-ahead': id } },
      spec: { podSelector: { matchLabels: { [`casefile.dev/incident-${id}`]: 'isolated' } } },
    });
    cluster.policies.get(`shop/casefile-${id}`)!.metadata!.creationTimestamp = new Date(Date.now() - ageMs);
    await cluster.patchPod('shop', 'web-1', [{ op: 'add', path: `/metadata/labels/casefile.dev~1incident-${id}`, value: 'isolated' }]);
  }

  test('lifts what nobody claimed past the grace, policy and label; leaves what is young, claimed or in flight', async () => {
    const cluster = new FakeCluster();
    const isolation = new AheadIsolation({ api: cluster, log: silent });
    await orphan(cluster, 'aaaa0001', SWEEP_GRACE_MS + 1000);
    await orphan(cluster, 'aaaa0002', 1000);
    await orphan(cluster, 'aaaa0003', SWEEP_GRACE_MS + 1000);
    cluster.policies.get('shop/casefile-aaaa0003')!.metadata!.annotations = { 'casefile.dev/investigation-uid': CASE_UID };
    const inFlight = isolation.begin(body())!;
    const flying = inFlight.body.metadata.annotations['casefile.dev/isolated-ahead']!;
    cluster.policies.get(`shop/casefile-${flying}`)!.metadata!.creationTimestamp = new Date(0);

    expect(await isolation.sweep()).toBe(1);
    expect([...cluster.policies.keys()].sort()).toEqual(['shop/casefile-aaaa0002', 'shop/casefile-aaaa0003', `shop/casefile-${flying}`].sort());
    expect(cluster.incidentLabels().sort()).toEqual(['casefile.dev/incident-aaaa0002', 'casefile.dev/incident-aaaa0003', `casefile.dev/incident-${flying}`].sort());
    await inFlight.settle(undefined);
  });

  test('a look-alike (another name than its id gives, or the id of a live case) never costs a case its label', async () => {
    const cluster = new FakeCluster();
    const isolation = new AheadIsolation({ api: cluster, log: silent });
    // Someone's policy carrying the label under another name: not one intake makes.
    await cluster.createPolicy('shop', { metadata: { name: 'mine', namespace: 'shop', labels: { 'casefile.dev/isolated-ahead': 'bbbb0001' } }, spec: {} });
    cluster.policies.get('shop/mine')!.metadata!.creationTimestamp = new Date(0);
    await cluster.patchPod('shop', 'web-1', [{ op: 'add', path: '/metadata/labels/casefile.dev~1incident-bbbb0001', value: 'isolated' }]);
    // A planted unclaimed policy under the id of a live case's UID: the case's label stays.
    cluster.cases.add('bbbb0002');
    await orphan(cluster, 'bbbb0002', SWEEP_GRACE_MS + 1000);

    await isolation.sweep();
    expect(cluster.policies.has('shop/mine')).toBe(true);
    expect(cluster.policies.has('shop/casefile-bbbb0002')).toBe(false);
    expect(cluster.incidentLabels().sort()).toEqual(['casefile.dev/incident-bbbb0001', 'casefile.dev/incident-bbbb0002']);
  });
});
