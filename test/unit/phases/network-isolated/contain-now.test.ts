// ContainFirst's first writes against an in-memory API server: the policy and the label go out together,
// the label patch is pinned to the pod's UID, and nothing is done to a pod the case would not accept.
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { parseSpec, type Investigation, type InvestigationSpec } from '../../../../src/api/investigation.js';
import { containNowPhases } from '../../../../src/engine/case-status.js';
import type { OperatorConfig } from '../../../../src/config.js';
import type { Kube } from '../../../../src/kube/client.js';
import { logger } from '../../../../src/log.js';
import { phases } from '../../../../src/phases/index.js';
import { isolateNow } from '../../../../src/phases/network-isolated/contain-now.js';
import { containNowTarget } from '../../../../src/phases/network-isolated/first-writes.js';

const UID = '0a1b2c3d-0000-1111-2222-333344445555';
const KEY = 'casefile.dev/incident-0a1b2c3d';
const inv: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: 'shop', uid: UID }, spec: {} };
const conflict = () => Object.assign(new Error('exists'), { code: 409, body: {} });
const notFound = () => Object.assign(new Error('not found'), { code: 404, body: {} });

function spec(extra: object = {}): InvestigationSpec {
  const parsed = parseSpec({ target: { pod: 'web-1' }, containment: { order: 'ContainFirst', network: { isolate: true } }, ...extra });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.spec;
}

class Cluster {
  pod: V1Pod | undefined = { metadata: { name: 'web-1', namespace: 'shop', uid: 'pod-uid', labels: { app: 'web' } }, spec: { containers: [{ name: 'app' }] } };
  policies: V1NetworkPolicy[] = [];
  patches: object[][] = [];
  reads = 0;
  policyExists = false;

  kube(): Kube {
    const invalid = (m: string) => Object.assign(new Error(m), { code: 422, body: {} });
    const core = {
      readNamespacedPod: async () => {
        this.reads++;
        if (!this.pod) throw notFound();
        return structuredClone(this.pod);
      },
      // A JSON patch as the API server applies it: all or nothing, a failed test or a missing parent is 422.
      patchNamespacedPod: async (p: { body: { op: string; path: string; value: unknown }[] }) => {
        this.patches.push(p.body);
        if (!this.pod) throw notFound();
        const next = structuredClone(this.pod);
        for (const op of p.body) {
          const label = op.path.startsWith('/metadata/labels/') ? op.path.slice('/metadata/labels/'.length).replace(/~1/g, '/') : undefined;
          if (op.op === 'test' && op.path === '/metadata/uid' && op.value !== next.metadata!.uid) throw invalid('uid test failed');
          if (op.op === 'test' && label && next.metadata!.labels?.[label] !== op.value) throw invalid('label test failed');
          if (op.op === 'add' && op.path === '/metadata/labels') next.metadata!.labels = op.value as Record<string, string>;
          else if (op.op === 'add' && label) {
            if (!next.metadata!.labels) throw invalid('missing parent /metadata/labels');
            next.metadata!.labels[label] = op.value as string;
          }
          if (op.op === 'remove' && label) delete next.metadata!.labels![label];
        }
        this.pod = next;
        return structuredClone(next);
      },
    };
    const networking = {
      createNamespacedNetworkPolicy: async (p: { body: V1NetworkPolicy }) => {
        if (this.policyExists) throw conflict();
        const made = { ...p.body, metadata: { ...p.body.metadata, uid: `policy-${this.policies.length}` } };
        this.policies.push(made);
        return made;
      },
      deleteNamespacedNetworkPolicy: async (p: { name: string; body: { preconditions: { uid: string } } }) => {
        this.policies = this.policies.filter((x) => !(x.metadata!.name === p.name && x.metadata!.uid === p.body.preconditions.uid));
      },
    };
    return { core, networking } as unknown as Kube;
  }
}

const ctx = (cluster: Cluster, s = spec()) => ({ investigation: inv, spec: s, kube: cluster.kube(), log: logger.child({}, { level: 'silent' }), config: {} as OperatorConfig });

describe('isolateNow', () => {
  test('creates the deny-all policy (UID and applied-at annotated) and labels the pod at once, without reading it first', async () => {
    const cluster = new Cluster();
    await isolateNow(ctx(cluster));
    expect(cluster.policies).toHaveLength(1);
    const annotations = cluster.policies[0]!.metadata!.annotations!;
    expect(annotations['casefile.dev/investigation-uid']).toBe(UID);
    expect(Number.isNaN(Date.parse(annotations['casefile.dev/applied-at']!))).toBe(false);
    expect(cluster.policies[0]!.spec!.podSelector).toEqual({ matchLabels: { [KEY]: 'isolated' } });
    expect(cluster.pod!.metadata!.labels).toEqual({ app: 'web', [KEY]: 'isolated' });
    expect(cluster.reads).toBe(0);
  });

  test('resolves with how to take back exactly what it made (for a case deleted before its finalizer)', async () => {
    const cluster = new Cluster();
    const takeBack = await isolateNow(ctx(cluster));
    await takeBack!();
    expect(cluster.policies).toEqual([]);
    expect(cluster.pod!.metadata!.labels).toEqual({ app: 'web' });
  });

  test('a spec naming the pod UID: the label patch is tested against it', async () => {
    const cluster = new Cluster();
    await isolateNow(ctx(cluster, spec({ target: { pod: 'web-1', uid: 'pod-uid' } })));
    expect(cluster.patches[0]![0]).toEqual({ op: 'test', path: '/metadata/uid', value: 'pod-uid' });
    expect(cluster.pod!.metadata!.labels![KEY]).toBe('isolated');
    expect(cluster.reads).toBe(0);
  });

  test('a pod without labels: read once, then the labels object is made (still tested against its UID)', async () => {
    const cluster = new Cluster();
    delete cluster.pod!.metadata!.labels;
    await isolateNow(ctx(cluster));
    expect(cluster.reads).toBe(1);
    expect(cluster.pod!.metadata!.labels).toEqual({ [KEY]: 'isolated' });
    expect(cluster.patches[1]![0]).toEqual({ op: 'test', path: '/metadata/uid', value: 'pod-uid' });
    expect(cluster.policies).toHaveLength(1);
  });

  test('a policy already there (a repeat, a restart) is left to run() to judge; the label still lands', async () => {
    const cluster = new Cluster();
    cluster.policyExists = true;
    await isolateNow(ctx(cluster));
    expect(cluster.pod!.metadata!.labels![KEY]).toBe('isolated');
  });

  test('no pod, a pod with another UID than the spec names: the policy is taken back and the pod left as it was', async () => {
    const gone = new Cluster();
    gone.pod = undefined;
    await isolateNow(ctx(gone));
    expect(gone.policies).toHaveLength(0);

    const replaced = new Cluster();
    await isolateNow(ctx(replaced, spec({ target: { pod: 'web-1', uid: 'another-uid' } })));
    expect(replaced.policies).toHaveLength(0);
    expect(replaced.pod!.metadata!.labels).toEqual({ app: 'web' });
  });

  test('a pod the case would not accept (a container the target cannot name, terminating): both writes taken back', async () => {
    const wrongContainer = new Cluster();
    await isolateNow(ctx(wrongContainer, spec({ target: { pod: 'web-1', container: 'sidecar' } })));
    expect(wrongContainer.policies).toHaveLength(0);
    expect(wrongContainer.pod!.metadata!.labels).toEqual({ app: 'web' });
    // The take-back is pinned: the pod's UID and the label's value are tested before the label goes.
    expect(wrongContainer.patches[1]!.slice(0, 2)).toEqual([
      { op: 'test', path: '/metadata/uid', value: 'pod-uid' },
      { op: 'test', path: `/metadata/labels/${KEY.replace('/', '~1')}`, value: 'isolated' },
    ]);

    const terminating = new Cluster();
    terminating.pod!.metadata!.deletionTimestamp = new Date();
    await isolateNow(ctx(terminating));
    expect(terminating.policies).toHaveLength(0);
    expect(terminating.pod!.metadata!.labels![KEY]).toBeUndefined();
  });

  test('a failed label write: the error says which step, and the policy does not stay behind', async () => {
    const cluster = new Cluster();
    const kube = cluster.kube();
    (kube.core as unknown as { patchNamespacedPod: () => Promise<never> }).patchNamespacedPod = async () => {
      throw Object.assign(new Error('etcd timeout'), { code: 500, body: {} });
    };
    await expect(isolateNow({ ...ctx(cluster), kube })).rejects.toThrow(/labelling pod web-1/);
    expect(cluster.policies).toHaveLength(0);
  });

  test('containNowTarget: a terminating pod is left alone; otherwise the container TargetResolved will choose', () => {
    const pod: V1Pod = { metadata: { name: 'web-1', uid: 'u', deletionTimestamp: new Date() }, spec: { containers: [{ name: 'app' }] } };
    expect(containNowTarget(pod, spec())).toBeUndefined();
    expect(containNowTarget({ ...pod, metadata: { name: 'web-1', uid: 'u' } }, spec())).toBe('app');
  });
});

describe('containNowPhases', () => {
  const fresh = { metadata: {} };
  test('a fresh ContainFirst case with isolation: NetworkIsolated only (the other containment phases have no first writes)', () => {
    expect(containNowPhases(fresh, spec(), phases).map((p) => p.condition)).toEqual(['NetworkIsolated']);
  });
  test('nothing for EvidenceFirst, release, deletion, isolation off, or a reconcile already begun', () => {
    expect(containNowPhases(fresh, spec({ containment: { order: 'EvidenceFirst', network: { isolate: true } } }), phases)).toEqual([]);
    expect(containNowPhases(fresh, spec({ release: true }), phases)).toEqual([]);
    expect(containNowPhases({ metadata: { deletionTimestamp: 'now' } }, spec(), phases)).toEqual([]);
    expect(containNowPhases(fresh, spec({ containment: { order: 'ContainFirst', network: { isolate: false } } }), phases)).toEqual([]);
    const begun = { metadata: {}, status: { conditions: [{ type: 'TargetResolved' as const, status: 'Unknown' as const, reason: 'InProgress', message: '', lastTransitionTime: '', observedGeneration: 1 }] } };
    expect(containNowPhases(begun, spec(), phases)).toEqual([]);
    // The finalizer goes out with the first writes: a case that has it was already handled (or restarted).
    expect(containNowPhases({ metadata: { finalizers: ['casefile.dev/release'] } }, spec(), phases)).toEqual([]);
  });
});
