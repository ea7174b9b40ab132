// NetworkIsolated's release against an in-memory API server: it works from status and the case file
// alone (its context has no spec), finds a long-named policy by the name inside its saved original,
// compares generations with the one recorded at apply time, and claims nothing it did not re-read.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Investigation, InvestigationStatus } from '../../../src/api/investigation.js';
import type { OperatorConfig } from '../../../src/config.js';
import type { Kube } from '../../../src/kube/client.js';
import { classify } from '../../../src/engine/outcome.js';
import { sanitizeSegment } from '../../../src/evidence/paths.js';
import { CaseFile } from '../../../src/evidence/store.js';
import { logger } from '../../../src/log.js';
import { releaseIsolation } from '../../../src/phases/network-isolated/restore.js';
import type { ReleaseContext } from '../../../src/phases/phase.js';
import { originalArtifact } from '../../../src/phases/shared/originals.js';

const NS = 'shop';
const UID = '0a1b2c3d-0000-1111-2222-333344445555';
const KEY = 'casefile.dev/incident-0a1b2c3d';
const OURS = 'casefile-0a1b2c3d';
const LONG = `allow-${'a'.repeat(200)}`;
const notFound = () => Object.assign(new Error('not found'), { code: 404, body: {} });

class FakeCluster {
  policies = new Map<string, V1NetworkPolicy>();
  pod: V1Pod = { metadata: { name: 'web-1', namespace: NS, uid: 'pod-uid', labels: { app: 'web', [KEY]: 'isolated' } } };
  /** A policy whose deletion the server accepts but does not carry out (a finalizer, a webhook). */
  podLists = 0;
  stuck = new Set<string>();

  kube(): Kube {
    const read = (name: string) => {
      const p = this.policies.get(name);
      if (!p) throw notFound();
      return structuredClone(p);
    };
    const networking = {
      readNamespacedNetworkPolicy: async (p: { name: string }) => read(p.name),
      listNamespacedNetworkPolicy: async () => ({ items: [...this.policies.values()].map((p) => structuredClone(p)) }),
      deleteNamespacedNetworkPolicy: async (p: { name: string }) => {
        read(p.name);
        if (!this.stuck.has(p.name)) this.policies.delete(p.name);
        return {};
      },
      patchNamespacedNetworkPolicy: async (p: { name: string; body: { spec: { podSelector: { matchExpressions: unknown } } } }) => {
        const cur = read(p.name);
        const expressions = p.body.spec.podSelector.matchExpressions;
        cur.spec!.podSelector = expressions ? { ...cur.spec!.podSelector, matchExpressions: expressions as never } : {};
        cur.metadata!.generation = (cur.metadata!.generation ?? 1) + 1;
        this.policies.set(p.name, cur);
        return structuredClone(cur);
      },
    };
    const core = {
      listNamespacedPod: async (p: { labelSelector: string }) => {
        this.podLists++;
        return { items: this.pod.metadata!.labels![p.labelSelector] !== undefined ? [structuredClone(this.pod)] : [] };
      },
      patchNamespacedPod: async (p: { body: { op: string; path: string }[] }) => {
        for (const op of p.body) if (op.op === 'remove') delete this.pod.metadata!.labels![op.path.split('/').pop()!.replace(/~1/g, '/').replace(/~0/g, '~')];
        return structuredClone(this.pod);
      },
    };
    return { networking, core, mergePatch: {} } as unknown as Kube;
  }
}

function seed(longGeneration: number): FakeCluster {
  const c = new FakeCluster();
  c.policies.set(OURS, { metadata: { name: OURS, namespace: NS, uid: 'u-ours', generation: 1 }, spec: { podSelector: { matchLabels: { [KEY]: 'isolated' } } } });
  c.policies.set(LONG, {
    metadata: { name: LONG, namespace: NS, uid: 'u-long', generation: longGeneration },
    spec: { podSelector: { matchExpressions: [{ key: KEY, operator: 'DoesNotExist' }] }, ingress: [{}] },
  });
  return c;
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-netrel-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The record isolation left: status.containment and the long policy's original (generation 2 before, 3 after casefile's patch). */
async function context(cluster: FakeCluster): Promise<ReleaseContext> {
  const caseFile = await CaseFile.open({ root, namespace: NS, name: 'case-1', uid: UID, actor: 'test' });
  const original = originalArtifact('NetworkPolicy', NS, LONG, 'u-long');
  await caseFile.writeText(original, stringify({ kind: 'NetworkPolicy', metadata: { name: LONG, namespace: NS, uid: 'u-long', generation: 2 }, spec: { podSelector: {}, ingress: [{}] } }));
  const status: InvestigationStatus = {
    target: { podUID: 'pod-uid' },
    containment: { label: `${KEY}=isolated`, networkPolicy: OURS, patchedPolicies: [{ name: LONG.slice(0, 20), original, generation: 3 }] },
  };
  const investigation: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: NS, uid: UID }, spec: {} };
  return {
    investigation,
    kube: cluster.kube(),
    caseFile,
    config: {} as OperatorConfig,
    log: logger.child({}, { level: 'silent' }),
    status,
    livePod: async () => structuredClone(cluster.pod),
  };
}

describe('NetworkIsolated release from the record', () => {
  test('lifts label, policy and the long-named policy by what status and the saved original say; no spec needed', async () => {
    const cluster = seed(3);
    const ctx = await context(cluster);
    try {
      const out = await releaseIsolation(ctx);
      expect(cluster.pod.metadata!.labels).toEqual({ app: 'web' });
      expect(cluster.policies.has(OURS)).toBe(false);
      // Found by the name inside the original, not the (shortened) name in status or the file name.
      expect(cluster.policies.get(LONG)!.spec!.podSelector).toEqual({});
      expect(out.message).toContain(`NetworkPolicy ${OURS} gone`);
      expect(out.message).toContain('1 of 1 patched policy restored');
      // Generation 3 is the one casefile's own patch produced: not someone else's change.
      expect(out.differences).toEqual([]);
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('a generation past the one recorded at apply time is reported as someone else\'s change (kept)', async () => {
    const cluster = seed(5);
    const ctx = await context(cluster);
    try {
      const out = await releaseIsolation(ctx);
      expect(out.differences).toEqual([expect.stringContaining(`NetworkPolicy ${LONG} was also changed by someone else while the case was open (generation 3 -> 5)`)]);
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('a policy still there after its deletion is not claimed released: retried, with the reason', async () => {
    const cluster = seed(3);
    cluster.stuck.add(OURS);
    const ctx = await context(cluster);
    try {
      const err = await releaseIsolation(ctx).then(() => undefined, (e: unknown) => e);
      expect(classify(err)).toMatchObject({ kind: 'retry', reason: 'ReleaseNotConfirmed', message: expect.stringContaining(`NetworkPolicy ${OURS} still exists`) });
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('with only the custody log (a status write lost), the same objects are found', async () => {
    const cluster = seed(3);
    const ctx = await context(cluster);
    try {
      await ctx.caseFile.record('networkpolicy-created', { name: OURS }, 'NetworkIsolated');
      await ctx.caseFile.record('pod-labelled', { pod: 'web-1', label: `${KEY}=isolated` }, 'NetworkIsolated');
      (ctx.status as { containment?: unknown }).containment = undefined;
      await releaseIsolation(ctx);
      expect(cluster.policies.has(OURS)).toBe(false);
      expect(cluster.pod.metadata!.labels).toEqual({ app: 'web' });
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('an original saved in the old layout (lossy file name) is still found and undone by the name inside it', async () => {
    const cluster = seed(3);
    const ctx = await context(cluster);
    try {
      const other = 'allow-web';
      cluster.policies.set(other, { metadata: { name: other, namespace: NS, uid: 'u-web', generation: 2 }, spec: { podSelector: { matchExpressions: [{ key: KEY, operator: 'DoesNotExist' }] } } });
      await ctx.caseFile.writeText(`containment/originals/networkpolicies/${sanitizeSegment(`allow-w${'x'.repeat(200)}`)}.yaml`, stringify({ kind: 'NetworkPolicy', metadata: { name: other, namespace: NS, generation: 1 }, spec: { podSelector: {} } }));
      await releaseIsolation(ctx);
      expect(cluster.policies.get(other)!.spec!.podSelector).toEqual({});
    } finally {
      await ctx.caseFile.close();
    }
  });
});

describe('NetworkIsolated release of what the first writes applied before anything recorded them', () => {
  /** ContainFirst: policy and label in the cluster, then the operator stopped before status or custody said so. */
  function struck(annotatedUID: string): FakeCluster {
    const c = new FakeCluster();
    c.policies.set(OURS, {
      metadata: { name: OURS, namespace: NS, uid: 'u-ours', generation: 1, annotations: { 'casefile.dev/investigation-uid': annotatedUID } },
      spec: { podSelector: { matchLabels: { [KEY]: 'isolated' } } },
    });
    return c;
  }

  async function bare(cluster: FakeCluster): Promise<ReleaseContext> {
    const caseFile = await CaseFile.open({ root, namespace: NS, name: 'case-1', uid: UID, actor: 'test' });
    const investigation: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: NS, uid: UID }, spec: {} };
    // No target UID in status: livePod finds nothing, so the pod is found by the case's own label key.
    return { investigation, kube: cluster.kube(), caseFile, config: {} as OperatorConfig, log: logger.child({}, { level: 'silent' }), status: {}, livePod: async () => undefined };
  }

  test('finds the policy by this case\'s name and UID, and the pod by this case\'s label key; undoes both and re-reads', async () => {
    const cluster = struck(UID);
    const ctx = await bare(cluster);
    try {
      const out = await releaseIsolation(ctx);
      expect(cluster.policies.has(OURS)).toBe(false);
      expect(cluster.pod.metadata!.labels).toEqual({ app: 'web' });
      expect(out.message).toContain(`incident label ${KEY} gone from the pod`);
      expect(out.message).toContain(`NetworkPolicy ${OURS} gone`);
      // One list finds the labelled pods (and unlabels them), one re-reads after.
      expect(cluster.podLists).toBe(2);
      const actions = ctx.caseFile.custodyRecords().map((r) => r.action);
      expect(actions).toEqual(expect.arrayContaining(['pod-unlabelled', 'networkpolicy-deleted']));
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('a policy of the same name that carries another Investigation\'s UID is not touched', async () => {
    const cluster = struck('someone-else');
    const ctx = await bare(cluster);
    try {
      const out = await releaseIsolation(ctx);
      expect(cluster.policies.has(OURS)).toBe(true);
      expect(cluster.pod.metadata!.labels).toEqual({ app: 'web' });
      expect(out.message).not.toContain('NetworkPolicy');
    } finally {
      await ctx.caseFile.close();
    }
  });

  test('with nothing in the cluster either, nothing was isolated', async () => {
    const cluster = new FakeCluster();
    delete cluster.pod.metadata!.labels![KEY];
    const ctx = await bare(cluster);
    try {
      expect((await releaseIsolation(ctx)).message).toBe('nothing was isolated');
    } finally {
      await ctx.caseFile.close();
    }
  });
});
