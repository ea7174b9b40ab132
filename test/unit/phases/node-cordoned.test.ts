import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { parseSpec, type Investigation, type InvestigationStatus } from '../../../src/api/investigation.js';
import type { OperatorConfig } from '../../../src/config.js';
import type { Kube } from '../../../src/kube/client.js';
import { nodeActionsApi } from './shared/fake-node-actions.js';
import { CaseFile } from '../../../src/evidence/store.js';
import { logger } from '../../../src/log.js';
import { classify } from '../../../src/engine/outcome.js';
import { nodeCordoned } from '../../../src/phases/node-cordoned/index.js';
import { casefileHolds, cordonAnnotation, cordonKey, planCordon, planUncordon } from '../../../src/phases/node-cordoned/plan.js';
import type { PhaseContext } from '../../../src/phases/phase.js';

const A = cordonKey('aaaaaaaa-1111-2222-3333-444444444444');
const B = cordonKey('bbbbbbbb-1111-2222-3333-444444444444');
const NOW = '2026-11-20T10:20:00.000Z';
const hold = (inv: string, was: boolean) => cordonAnnotation(inv, was, '2026-11-20T10:00:00.000Z');

describe('cordon holds', () => {
  test('the key is the first 8 hex digits of the UID', () => {
    expect(cordonKey('6F1C2D3E-1111-2222-3333-444455556666')).toBe('cordon.casefile.dev/6f1c2d3e');
    expect(JSON.parse(cordonAnnotation('shop/case-1', false, NOW))).toEqual({ investigation: 'shop/case-1', wasUnschedulable: false, at: NOW });
  });

  test('a schedulable node with no holds: was schedulable, patch needed', () => {
    const plan = planCordon({ unschedulable: false, annotations: { other: 'x' } }, A, 'shop/a', NOW);
    expect(plan).toMatchObject({ wasUnschedulable: false, basis: 'node', needsPatch: true, otherHolders: [] });
    expect(JSON.parse(plan.annotation)).toEqual({ investigation: 'shop/a', wasUnschedulable: false, at: NOW });
  });

  test('a node already unschedulable before casefile is recorded as such', () => {
    expect(planCordon({ unschedulable: true }, A, 'shop/a', NOW)).toMatchObject({ wasUnschedulable: true, basis: 'node' });
  });

  test('a node cordoned by another Investigation: the original state is copied from its hold, not read off the node', () => {
    const plan = planCordon({ unschedulable: true, annotations: { [B]: hold('shop/b', false) } }, A, 'shop/a', NOW);
    expect(plan).toMatchObject({ wasUnschedulable: false, basis: 'other-holds', otherHolders: ['shop/b'] });
    const was = planCordon({ unschedulable: true, annotations: { [B]: hold('shop/b', true) } }, A, 'shop/a', NOW);
    expect(was.wasUnschedulable).toBe(true);
    // An unreadable hold never leads to an uncordon.
    expect(planCordon({ unschedulable: true, annotations: { [B]: 'garbage' } }, A, 'shop/a', NOW).wasUnschedulable).toBe(true);
  });

  test('a rerun keeps its own hold as written and patches only if the node was uncordoned meanwhile', () => {
    const annotations = { [A]: hold('shop/a', false) };
    expect(planCordon({ unschedulable: true, annotations }, A, 'shop/a', NOW)).toMatchObject({ basis: 'own-hold', needsPatch: false, annotation: annotations[A] });
    expect(planCordon({ unschedulable: false, annotations }, A, 'shop/a', NOW)).toMatchObject({ wasUnschedulable: false, needsPatch: true });
  });

  test('uncordon only when the last hold is removed and the node was schedulable originally', () => {
    const both = { [A]: hold('shop/a', false), [B]: hold('shop/b', false) };
    const first = planUncordon(both, A);
    expect(first).toMatchObject({ held: true, remove: [A], uncordon: false, remainingHolders: ['shop/b'] });
    expect(first.why).toBe('another Investigation (shop/b) still holds the node cordoned');
    const last = planUncordon({ [B]: hold('shop/b', false) }, B);
    expect(last).toMatchObject({ held: true, remove: [B], uncordon: true, remainingHolders: [] });
  });

  test('a node already unschedulable is never uncordoned', () => {
    const plan = planUncordon({ [A]: hold('shop/a', true) }, A);
    expect(plan).toMatchObject({ held: true, remove: [A], uncordon: false });
    expect(plan.why).toBe('the node was already unschedulable before casefile');
    expect(planUncordon({ [A]: 'not json' }, A)).toMatchObject({ remove: [A], uncordon: false });
  });

  test('no own hold: nothing removed, nothing uncordoned (idempotent release)', () => {
    expect(planUncordon({ [B]: hold('shop/b', false) }, A)).toMatchObject({ held: false, remove: [], uncordon: false });
    expect(planUncordon(undefined, A)).toMatchObject({ held: false, remove: [], uncordon: false });
  });

  test('holds of Investigations that no longer exist are removed and do not keep the node cordoned', () => {
    const plan = planUncordon({ [A]: hold('shop/a', false), [B]: hold('shop/b', false) }, A, new Set([B]));
    expect(plan).toMatchObject({ remove: [A, B], uncordon: true, remainingHolders: [] });
    expect(casefileHolds({ [B]: 'x', 'unrelated/key': 'y' })).toEqual([{ key: B }]);
  });
});

// ---- the phase against an in-memory API server ----

const notFound = () => Object.assign(new Error('not found'), { code: 404 });
const conflict = () => Object.assign(new Error('conflict'), { code: 409 });

function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (typeof v === 'object' && !Array.isArray(v)) out[k] = mergePatch((out[k] as Record<string, unknown>) ?? {}, v as Record<string, unknown>);
    else out[k] = v;
  }
  return out;
}

class FakeNodes {
  nodeActions = nodeActionsApi();
  rv = 1;
  nodes = new Map<string, V1Node>();
  investigations = new Map<string, string>(); // ns/name -> uid
  patches = 0;

  add(name: string, unschedulable: boolean, annotations: Record<string, string> = {}) {
    this.nodes.set(name, { metadata: { name, resourceVersion: String(++this.rv), annotations }, spec: { unschedulable } });
  }

  kube(): Kube {
    const core = {
      readNode: async ({ name }: { name: string }) => {
        const n = this.nodes.get(name);
        if (!n) throw notFound();
        return structuredClone(n);
      },
      patchNode: async ({ name, body }: { name: string; body: { metadata?: { resourceVersion?: string } } }) => {
        const n = this.nodes.get(name);
        if (!n) throw notFound();
        if (body.metadata?.resourceVersion && body.metadata.resourceVersion !== n.metadata!.resourceVersion) throw conflict();
        const next = mergePatch(n as Record<string, unknown>, body as Record<string, unknown>) as V1Node;
        next.metadata!.resourceVersion = String(++this.rv);
        this.nodes.set(name, next);
        this.patches++;
        return structuredClone(next);
      },
    };
    const custom = {
      getNamespacedCustomObject: async ({ namespace, name }: { namespace: string; name: string }) => {
        const uid = this.investigations.get(`${namespace}/${name}`);
        if (!uid) throw notFound();
        return { metadata: { uid } };
      },
    };
    return { core, custom, mergePatch: {}, authz: this.nodeActions, admission: this.nodeActions.admission } as unknown as Kube;
  }
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-node-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function context(cluster: FakeNodes, name: string, uid: string, node: string | undefined) {
  cluster.investigations.set(`shop/${name}`, uid);
  const caseFile = await CaseFile.open({ root, namespace: 'shop', name, uid, actor: 'test' });
  const parsed = parseSpec({ target: { pod: 'web-1' }, containment: { cordonNode: true } });
  if (!parsed.ok) throw new Error(parsed.message);
  const investigation: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name, namespace: 'shop', uid }, spec: {} };
  const status: InvestigationStatus = { target: { node } };
  const ctx: PhaseContext = {
    investigation,
    spec: parsed.spec,
    kube: cluster.kube(),
    caseFile,
    config: { requireNodeActionsAdmission: true } as OperatorConfig,
    log: logger.child({}, { level: 'silent' }),
    status,
    livePod: async () => undefined,
    importJournaledAlerts: async () => undefined,
    signingKey: () => Promise.reject(new Error('no key in this test')),
  };
  return ctx;
}

const UID_A = 'aaaaaaaa-1111-2222-3333-444444444444';
const UID_B = 'bbbbbbbb-1111-2222-3333-444444444444';

describe('NodeCordoned against a fake API server', () => {
  test('refused, the node untouched, when the installation has not enabled cordoning for casefile', async () => {
    const cluster = new FakeNodes();
    cluster.add('node-1', false);
    cluster.nodeActions = nodeActionsApi({ granted: false });
    const ctx = await context(cluster, 'case-a', UID_A, 'node-1');
    const outcome = await nodeCordoned.run(ctx);
    expect(outcome).toMatchObject({ status: 'False', reason: 'NodeActionNotInstalled' });
    expect(outcome.message).toContain('config/rbac/components/cordon');
    expect(cluster.patches).toBe(0);
    expect(cluster.nodes.get('node-1')!.spec!.unschedulable).toBe(false);
  });

  test('two Investigations on one node: only the last release uncordons; reruns and repeated releases are harmless', async () => {
    const cluster = new FakeNodes();
    cluster.add('node-1', false, { 'keep/me': 'yes' });
    const a = await context(cluster, 'case-a', UID_A, 'node-1');
    const b = await context(cluster, 'case-b', UID_B, 'node-1');
    try {
      const ra = await nodeCordoned.run(a);
      expect(ra).toMatchObject({ status: 'True', reason: 'Cordoned' });
      expect(ra.message).toContain('does not stop the suspect process');
      expect(cluster.nodes.get('node-1')!.spec!.unschedulable).toBe(true);
      expect(a.status.containment).toMatchObject({ cordoned: true, nodeWasUnschedulable: false });
      const original = JSON.parse(await readFile(path.join(a.caseFile.dir, 'containment/originals/node-node-1.json'), 'utf8'));
      expect(original).toMatchObject({ node: 'node-1', unschedulable: false, annotations: { 'keep/me': 'yes' } });

      // B arrives on a node A already cordoned: it must record "was schedulable", not "was unschedulable".
      const rb = await nodeCordoned.run(b);
      expect(rb).toMatchObject({ status: 'True', reason: 'Cordoned' });
      expect(b.status.containment!.nodeWasUnschedulable).toBe(false);
      expect(JSON.parse(cluster.nodes.get('node-1')!.metadata!.annotations![cordonKey(UID_B)]!)).toMatchObject({ investigation: 'shop/case-b', wasUnschedulable: false });

      // A rerun changes nothing.
      const patches = cluster.patches;
      await nodeCordoned.run(a);
      expect(cluster.patches).toBe(patches);

      const relA = await nodeCordoned.release!(a);
      expect(relA.message).toContain('another Investigation (shop/case-b) still holds the node cordoned');
      expect(cluster.nodes.get('node-1')!.spec!.unschedulable).toBe(true);
      expect(cluster.nodes.get('node-1')!.metadata!.annotations![cordonKey(UID_A)]).toBeUndefined();

      const relB = await nodeCordoned.release!(b);
      expect(relB.message).toContain('uncordoned');
      const node = cluster.nodes.get('node-1')!;
      expect(node.spec!.unschedulable).toBe(false);
      expect(node.metadata!.annotations).toEqual({ 'keep/me': 'yes' });

      const p = cluster.patches;
      const again = await nodeCordoned.release!(b);
      expect(cluster.patches).toBe(p);
      expect(again.message).toContain('holds no cordon');
      expect(a.caseFile.custodyRecords().filter((r) => r.action === 'node-cordoned')).toHaveLength(1);
      expect(a.caseFile.custodyRecords().filter((r) => r.action === 'limitation')).toHaveLength(1);
    } finally {
      await a.caseFile.close();
      await b.caseFile.close();
    }
  });

  test('a node already unschedulable stays unschedulable after release', async () => {
    const cluster = new FakeNodes();
    cluster.add('node-1', true);
    const a = await context(cluster, 'case-a', UID_A, 'node-1');
    try {
      const out = await nodeCordoned.run(a);
      expect(out).toMatchObject({ status: 'True', reason: 'AlreadyUnschedulable' });
      expect(out.message).toContain('already unschedulable before casefile');
      expect(a.status.containment!.nodeWasUnschedulable).toBe(true);
      const rel = await nodeCordoned.release!(a);
      expect(rel.message).toContain('the node was already unschedulable before casefile');
      expect(cluster.nodes.get('node-1')!.spec!.unschedulable).toBe(true);
      expect(cluster.nodes.get('node-1')!.metadata!.annotations).toEqual({});
    } finally {
      await a.caseFile.close();
    }
  });

  test('the hold of a deleted Investigation does not keep the node cordoned', async () => {
    const cluster = new FakeNodes();
    cluster.add('node-1', true, { [cordonKey(UID_B)]: cordonAnnotation('shop/gone', false, NOW) });
    const a = await context(cluster, 'case-a', UID_A, 'node-1');
    try {
      await nodeCordoned.run(a);
      expect(a.status.containment!.nodeWasUnschedulable).toBe(false);
      const rel = await nodeCordoned.release!(a);
      expect(rel.message).toContain('uncordoned');
      expect(cluster.nodes.get('node-1')!.spec!.unschedulable).toBe(false);
      expect(cluster.nodes.get('node-1')!.metadata!.annotations).toEqual({});
    } finally {
      await a.caseFile.close();
    }
  });

  test('node gone or never scheduled: False with a clear reason; release says there is nothing to restore', async () => {
    const cluster = new FakeNodes();
    const gone = await context(cluster, 'case-a', UID_A, 'node-9');
    const unscheduled = await context(cluster, 'case-b', UID_B, undefined);
    try {
      const out = await nodeCordoned.run(gone);
      expect(out).toEqual({
        status: 'False',
        reason: 'NodeNotFound',
        message: 'node node-9 no longer exists: nothing to cordon; network isolation and capture are unaffected',
      });
      expect((await nodeCordoned.release!(gone)).message).toBe('node node-9 no longer exists: nothing to restore');
      expect(await nodeCordoned.run(unscheduled)).toMatchObject({ status: 'False', reason: 'NodeUnknown' });
    } finally {
      await gone.caseFile.close();
      await unscheduled.caseFile.close();
    }
  });

  test('a concurrent change of the node is retried, not overwritten', async () => {
    const cluster = new FakeNodes();
    cluster.add('node-1', false);
    const a = await context(cluster, 'case-a', UID_A, 'node-1');
    const kube = a.kube as unknown as { core: { readNode: (p: { name: string }) => Promise<V1Node> } };
    const realRead = kube.core.readNode;
    kube.core.readNode = async (p) => {
      const n = await realRead(p);
      cluster.add('node-1', false, { changed: 'meanwhile' }); // someone writes between our read and patch
      return n;
    };
    try {
      const err = await nodeCordoned.run(a).then(() => undefined, (e: unknown) => e);
      expect(classify(err)).toMatchObject({ kind: 'retry', reason: 'Conflict' });
      expect(cluster.nodes.get('node-1')!.metadata!.annotations).toEqual({ changed: 'meanwhile' });
    } finally {
      await a.caseFile.close();
    }
  });
});
