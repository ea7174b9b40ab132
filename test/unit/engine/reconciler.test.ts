// The reconciler with fake phases and an in-memory API server (cert-manager style): a phase that
// succeeds, fails terminally, asks to wait, throws retryable errors, is disabled then enabled; release
// from the record; log volume of a stuck case.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Condition, Investigation } from '../../../src/api/investigation.js';
import type { OperatorConfig } from '../../../src/config.js';
import type { EventRecorder } from '../../../src/engine/events.js';
import type { Kube } from '../../../src/kube/client.js';
import { Metrics } from '../../../src/engine/metrics.js';
import { WorkQueue } from '../../../src/engine/queue.js';
import { wantsContainmentLane } from '../../../src/engine/case-status.js';
import { ContainmentLane } from '../../../src/engine/containment-lane.js';
import { InvestigationReconciler } from '../../../src/engine/reconciler.js';
import { RequeueAfter, RetryableError, TerminalError } from '../../../src/errors.js';
import type { Phase, ReleaseContext } from '../../../src/phases/phase.js';

const KEY = 'shop/case-1';
const UID = '0a1b2c3d-0000-1111-2222-333344445555';

/** One Investigation in memory; every status write bumps resourceVersion and calls onWrite (the informer). */
class FakeApi {
  inv: Investigation;
  statusWrites = 0;
  reads = 0;
  /** Deleted (it had no finalizer, so it is gone at once): every call on it answers 404. */
  deleted = false;
  onWrite: () => void = () => undefined;

  constructor(spec: object) {
    this.inv = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: 'shop', uid: UID, generation: 1, resourceVersion: '1', finalizers: [] }, spec };
  }

  edit(spec: object): void {
    this.inv = { ...this.inv, spec, metadata: { ...this.inv.metadata, generation: (this.inv.metadata.generation ?? 1) + 1, resourceVersion: String(Number(this.inv.metadata.resourceVersion) + 1) } };
  }

  kube(): Kube {
    const custom = {
      getNamespacedCustomObject: async () => {
        this.reads++;
        return structuredClone(this.inv);
      },
      patchNamespacedCustomObject: async (p: { body: { metadata: { finalizers: string[]; resourceVersion?: string } } }) => {
        if (this.deleted) throw Object.assign(new Error('not found'), { code: 404, body: {} });
        if (p.body.metadata.resourceVersion !== undefined && p.body.metadata.resourceVersion !== this.inv.metadata.resourceVersion) {
          throw Object.assign(new Error('conflict'), { code: 409, body: {} });
        }
        this.inv = { ...this.inv, metadata: { ...this.inv.metadata, finalizers: p.body.metadata.finalizers, resourceVersion: String(Number(this.inv.metadata.resourceVersion) + 1) } };
        return structuredClone(this.inv);
      },
      patchNamespacedCustomObjectStatus: async (p: { body: { metadata: { resourceVersion: string }; status: Investigation['status'] } }) => {
        if (p.body.metadata.resourceVersion !== this.inv.metadata.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409, body: {} });
        this.inv = { ...this.inv, status: structuredClone(p.body.status), metadata: { ...this.inv.metadata, resourceVersion: String(Number(this.inv.metadata.resourceVersion) + 1) } };
        this.statusWrites++;
        setImmediate(() => this.onWrite());
        return structuredClone(this.inv);
      },
    };
    return { custom, mergePatch: {} } as unknown as Kube;
  }
}

/** A fake phase that counts its runs and does what `behave` says. */
function fakePhase(condition: Phase['condition'], behave: () => Promise<void> | void = () => undefined, extra: Partial<Phase> = {}): Phase & { runs: number } {
  const phase = {
    condition,
    runs: 0,
    async run() {
      phase.runs++;
      await behave();
      return { status: 'True' as const, reason: 'Done', message: `${condition} done` };
    },
    ...extra,
  };
  return phase;
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-reconciler-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function lineCounter() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, log: pino({ level: 'info' }, stream) };
}

function reconciler(api: FakeApi, phases: Phase[], log = lineCounter().log) {
  const events = { emit: () => undefined } as unknown as EventRecorder;
  const config = { evidenceDir: root, identity: 'test' } as OperatorConfig;
  return new InvestigationReconciler({ kube: api.kube(), config, log, metrics: new Metrics(), events, phases });
}

const cond = (api: FakeApi, type: Condition['type']) => api.inv.status?.conditions?.find((c) => c.type === type);

describe('reconciler with fake phases', () => {
  test('a phase that succeeds: condition True, Ready True, a custody record; a settled case is not rerun', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const ok = fakePhase('TargetResolved');
    const r = reconciler(api, [ok]);
    await expect(r.reconcile(KEY)).resolves.toBeUndefined();
    expect(cond(api, 'TargetResolved')).toMatchObject({ status: 'True', reason: 'Done' });
    expect(cond(api, 'Ready')).toMatchObject({ status: 'True' });
    await r.reconcile(KEY);
    expect(ok.runs).toBe(1);
  });

  test('one status write per phase run, before it runs, carrying the results before it; disabled phases ride along; one final write', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const seen: { type: string; status: string; reason: string }[][] = [];
    const kube = api.kube();
    const write = kube.custom.patchNamespacedCustomObjectStatus.bind(kube.custom);
    (kube.custom as { patchNamespacedCustomObjectStatus: unknown }).patchNamespacedCustomObjectStatus = async (p: { body: { status: Investigation['status'] } }) => {
      seen.push((p.body.status?.conditions ?? []).filter((c) => !['Ready', 'Reconciling', 'Stalled'].includes(c.type)).map(({ type, status, reason }) => ({ type, status, reason })));
      return write(p as never);
    };
    const phases = [fakePhase('TargetResolved'), fakePhase('ManifestCaptured', () => undefined, { enabled: () => false }), fakePhase('EventsCaptured'), fakePhase('LogsCaptured')];
    const config = { evidenceDir: root, identity: 'test' } as OperatorConfig;
    const r = new InvestigationReconciler({ kube, config, log: lineCounter().log, metrics: new Metrics(), events: { emit: () => undefined } as unknown as EventRecorder, phases });
    await r.reconcile(KEY);
    expect(seen).toEqual([
      [{ type: 'TargetResolved', status: 'Unknown', reason: 'InProgress' }],
      [
        { type: 'TargetResolved', status: 'True', reason: 'Done' },
        { type: 'ManifestCaptured', status: 'True', reason: 'Disabled' },
        { type: 'EventsCaptured', status: 'Unknown', reason: 'InProgress' },
      ],
      [
        { type: 'TargetResolved', status: 'True', reason: 'Done' },
        { type: 'ManifestCaptured', status: 'True', reason: 'Disabled' },
        { type: 'EventsCaptured', status: 'True', reason: 'Done' },
        { type: 'LogsCaptured', status: 'Unknown', reason: 'InProgress' },
      ],
      [
        { type: 'TargetResolved', status: 'True', reason: 'Done' },
        { type: 'ManifestCaptured', status: 'True', reason: 'Disabled' },
        { type: 'EventsCaptured', status: 'True', reason: 'Done' },
        { type: 'LogsCaptured', status: 'True', reason: 'Done' },
      ],
    ]);
    expect(cond(api, 'Ready')).toMatchObject({ status: 'True' });
  });

  test('a case file that cannot take its opening record: Ready says why on the case, and no phase runs', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    // alert.json's path is taken by a directory: the opening write fails, as on a full volume.
    await mkdir(path.join(root, 'shop', 'case-1-0a1b2c3d', 'alert.json'), { recursive: true });
    const phase = fakePhase('TargetResolved');
    const r = reconciler(api, [phase]);
    await expect(r.reconcile(KEY)).rejects.toThrow();
    expect(phase.runs).toBe(0);
    expect(cond(api, 'Ready')?.message).toContain('cannot open the case file');
    expect(cond(api, 'Ready')?.status).not.toBe('True');
  });

  test('a terminal failure: condition False with its reason, written once, no retry, later phases still reported', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const broken = fakePhase('ManifestCaptured', () => {
      throw new TerminalError('the pod has no manifest', 'NoManifest');
    });
    const r = reconciler(api, [fakePhase('TargetResolved'), broken]);
    await expect(r.reconcile(KEY)).resolves.toBeUndefined();
    expect(cond(api, 'ManifestCaptured')).toMatchObject({ status: 'False', reason: 'NoManifest', message: 'the pod has no manifest' });
    expect(cond(api, 'Ready')).toMatchObject({ status: 'False', reason: 'NoManifest' });
    const writes = api.statusWrites;
    await r.reconcile(KEY);
    expect(broken.runs).toBe(1);
    expect(api.statusWrites).toBe(writes);
  });

  test('a forbidden API answer is terminal too (one classifier for every phase)', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const r = reconciler(api, [fakePhase('TargetResolved', () => {
      throw Object.assign(new Error('forbidden'), { code: 403, body: { message: 'pods is forbidden' } });
    })]);
    await expect(r.reconcile(KEY)).resolves.toBeUndefined();
    expect(cond(api, 'TargetResolved')).toMatchObject({ status: 'False', reason: 'Forbidden' });
  });

  test('a phase that asks to wait: Unknown with its reason, requeue after its delay, later phases not run', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const later = fakePhase('LogsCaptured');
    const r = reconciler(api, [fakePhase('TargetResolved', () => {
      throw new RequeueAfter('debug container still starting', 2000, 'ContainerStarting');
    }), later]);
    await expect(r.reconcile(KEY)).resolves.toEqual({ requeueAfterMs: 2000 });
    expect(cond(api, 'TargetResolved')).toMatchObject({ status: 'Unknown', reason: 'ContainerStarting' });
    expect(later.runs).toBe(0);
  });

  test('retryable errors: Unknown, rethrown for the queue backoff; the condition is not flipped on every attempt', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const flaky = fakePhase('TargetResolved', () => {
      throw new RetryableError('API server unavailable');
    });
    const r = reconciler(api, [flaky]);
    await expect(r.reconcile(KEY)).rejects.toThrow('API server unavailable');
    expect(cond(api, 'TargetResolved')).toMatchObject({ status: 'Unknown', reason: 'Retrying' });
    const writes = api.statusWrites;
    await expect(r.reconcile(KEY)).rejects.toThrow('API server unavailable');
    await expect(r.reconcile(KEY)).rejects.toThrow('API server unavailable');
    expect(flaky.runs).toBe(3);
    expect(api.statusWrites).toBe(writes);
  });

  test('disabled, then enabled by an edit: not silently ignored but Ready=False ContainmentChanged', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const isolate = fakePhase('NetworkIsolated', undefined, { containment: true, enabled: (s) => s.containment.network.isolate });
    const r = reconciler(api, [fakePhase('TargetResolved'), isolate]);
    await r.reconcile(KEY);
    expect(cond(api, 'NetworkIsolated')).toMatchObject({ status: 'True', reason: 'Disabled' });
    api.edit({ target: { pod: 'web-1' }, containment: { network: { isolate: true } } });
    await r.reconcile(KEY);
    expect(isolate.runs).toBe(0);
    expect(cond(api, 'Ready')).toMatchObject({ status: 'False', reason: 'ContainmentChanged' });
    expect(cond(api, 'Ready')!.message).toContain('spec.release: true');
  });
});

describe('release from the record', () => {
  const isolating = () => {
    const released: string[] = [];
    const phase = fakePhase('NetworkIsolated', undefined, {
      containment: true,
      enabled: (s) => s.containment.network.isolate,
      async release(ctx: ReleaseContext) {
        released.push(ctx.status.containment?.networkPolicy ?? 'nothing recorded');
        return { message: 'policy gone' };
      },
    });
    const run = phase.run.bind(phase);
    phase.run = async (ctx) => {
      ctx.status.containment = { ...ctx.status.containment, networkPolicy: 'casefile-0a1b2c3d' };
      return run(ctx);
    };
    return { phase, released };
  };

  test('isolate edited to false together with release: the applied policy is still released', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' }, containment: { network: { isolate: true } } });
    const { phase, released } = isolating();
    const r = reconciler(api, [fakePhase('TargetResolved'), phase]);
    await r.reconcile(KEY);
    expect(cond(api, 'NetworkIsolated')).toMatchObject({ status: 'True', reason: 'Done' });
    api.edit({ target: { pod: 'web-1' }, containment: { network: { isolate: false } }, release: true });
    await r.reconcile(KEY);
    expect(released).toEqual(['casefile-0a1b2c3d']);
    expect(cond(api, 'Released')).toMatchObject({ status: 'True' });
  });

  test('a release that cannot be confirmed keeps Released Unknown and retries', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' }, containment: { network: { isolate: true } }, release: true });
    const phase = fakePhase('NetworkIsolated', undefined, {
      containment: true,
      async release() {
        throw new RetryableError('NetworkPolicy casefile-0a1b2c3d still exists after its deletion', 'ReleaseNotConfirmed');
      },
    });
    const r = reconciler(api, [phase]);
    await expect(r.reconcile(KEY)).rejects.toThrow('still exists');
    expect(cond(api, 'Released')).toMatchObject({ status: 'Unknown', reason: 'ReleaseNotConfirmed' });
  });

  test('deletion with a spec that no longer parses still releases, then drops the finalizer', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' }, containment: { network: { isolate: true } } });
    const { phase, released } = isolating();
    const r = reconciler(api, [fakePhase('TargetResolved'), phase]);
    await r.reconcile(KEY);
    expect(api.inv.metadata.finalizers).toEqual(['casefile.dev/release']);
    api.inv = { ...api.inv, spec: { target: { pod: 'web-1' }, containment: { order: 'Sideways' } }, metadata: { ...api.inv.metadata, deletionTimestamp: '2026-12-03T00:00:00Z' } };
    await r.reconcile(KEY);
    expect(released).toEqual(['casefile-0a1b2c3d']);
    expect(api.inv.metadata.finalizers).toEqual([]);
  });
});

describe('log volume', () => {
  test('a case stuck on the same error, re-queued by its own status writes, logs a bounded number of lines', async () => {
    const api = new FakeApi({ target: { pod: 'web-1' } });
    const { lines, log } = lineCounter();
    const stuck = fakePhase('TargetResolved', () => {
      throw new RetryableError('API server unavailable');
    });
    const r = reconciler(api, [stuck], log);
    const queue = new WorkQueue((key) => r.reconcile(key), { name: 'test', workers: 1, baseDelayMs: 5, maxDelayMs: 40, log });
    api.onWrite = () => queue.add(KEY); // the informer: every status write is a watch event
    queue.start();
    queue.add(KEY);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await queue.stop();
    expect(stuck.runs).toBeGreaterThan(20); // it really was retried many times...
    expect(lines.length).toBeLessThanOrEqual(3); // ...and said so once (reconciler warn + queue error)
  });
});

describe('the containment lane (ContainFirst first writes)', () => {
  const contain = { target: { pod: 'web-1' }, containment: { order: 'ContainFirst', network: { isolate: true } } };
  const lane = (api: FakeApi, phases: Phase[], cached?: (key: string) => Investigation | undefined) =>
    new ContainmentLane({ kube: api.kube(), config: { evidenceDir: root, identity: 'test' } as OperatorConfig, log: lineCounter().log, phases, cached });

  test('the lane makes the containment phase\'s first writes before any status write, then the finalizer; a reconcile waiting on it runs after', async () => {
    const api = new FakeApi(contain);
    const order: string[] = [];
    let finish: () => void = () => undefined;
    const isolated = fakePhase('NetworkIsolated', () => void order.push('run'), {
      containment: true,
      enabled: (spec) => spec.containment.network.isolate,
      containNow: async () => {
        order.push(`containNow (status writes so far: ${api.statusWrites})`);
        await new Promise<void>((r) => (finish = r));
        order.push('containNow done');
        return undefined;
      },
    });
    const phases = [fakePhase('TargetResolved'), isolated];
    const l = lane(api, phases);
    const r = reconciler(api, phases);
    const first = l.run(KEY);
    await new Promise((r) => setImmediate(r));
    // The operator's main queue handler: wait for the lane's writes of the key, then reconcile.
    const main = (async () => {
      await l.settled(KEY);
      await r.reconcile(KEY);
    })();
    await new Promise((r) => setTimeout(r, 20));
    expect(api.statusWrites).toBe(0); // the reconcile is held until the first writes are done
    // Nor the finalizer: the API server commits one write at a time, and isolation goes first.
    expect(api.inv.metadata.finalizers).toEqual([]);
    finish();
    await first;
    expect(api.inv.metadata.finalizers).toEqual(['casefile.dev/release']);
    await main;
    expect(order).toEqual(['containNow (status writes so far: 0)', 'containNow done', 'run']);
    expect(cond(api, 'NetworkIsolated')).toMatchObject({ status: 'True' });
    expect(l.settled(KEY)).toBeUndefined();
    // Once the reconcile has begun, the lane has nothing left to do.
    await l.run(KEY);
    expect(order.filter((o) => o.startsWith('containNow ('))).toHaveLength(1);
  });

  test('acts on the informer\'s copy, or the one intake handed over, without reading the API server; reads only when it has neither', async () => {
    for (const source of ['cached', 'handed', 'read'] as const) {
      const api = new FakeApi(contain);
      const seen: string[] = [];
      const isolated = fakePhase('NetworkIsolated', () => undefined, { containment: true, containNow: async (ctx) => void seen.push(ctx.investigation.metadata.uid) });
      const l = lane(api, [fakePhase('TargetResolved'), isolated], source === 'cached' ? () => structuredClone(api.inv) : undefined);
      if (source === 'handed') expect(l.handOver(structuredClone(api.inv))).toBe(KEY);
      await l.run(KEY);
      expect(seen).toEqual([UID]);
      expect(api.reads).toBe(source === 'read' ? 1 : 0);
    }
  });

  test('a stale copy: the writes are made, the finalizer patch (guarded by its resourceVersion) is left to reconcile()', async () => {
    const api = new FakeApi(contain);
    const stale = structuredClone(api.inv);
    api.edit({ ...contain, note: 'edited' });
    let calls = 0;
    const isolated = fakePhase('NetworkIsolated', () => undefined, { containment: true, containNow: async () => void calls++ });
    await lane(api, [fakePhase('TargetResolved'), isolated], () => stale).run(KEY);
    expect(calls).toBe(1);
    expect(api.inv.metadata.finalizers).toEqual([]);
  });

  test('queued twice (the watch\'s ADDED, then intake\'s handover) with a copy from before the finalizer: the first writes go out once', async () => {
    const api = new FakeApi(contain);
    const beforeFinalizer = structuredClone(api.inv);
    let calls = 0;
    const isolated = fakePhase('NetworkIsolated', () => undefined, { containment: true, containNow: async () => void calls++ });
    const l = lane(api, [fakePhase('TargetResolved'), isolated], () => structuredClone(beforeFinalizer));
    await l.run(KEY);
    l.handOver(structuredClone(beforeFinalizer));
    await l.run(KEY);
    expect(calls).toBe(1);
    expect(api.inv.metadata.finalizers).toEqual(['casefile.dev/release']);
  });

  test('first writes that failed are made again by the queue\'s retry', async () => {
    const api = new FakeApi(contain);
    const beforeFinalizer = structuredClone(api.inv);
    let calls = 0;
    const isolated = fakePhase('NetworkIsolated', () => undefined, {
      containment: true,
      containNow: async () => {
        if (++calls === 1) throw Object.assign(new Error('etcdserver: request timed out'), { code: 500, body: {} });
        return undefined;
      },
    });
    const l = lane(api, [fakePhase('TargetResolved'), isolated], () => structuredClone(beforeFinalizer));
    await expect(l.run(KEY)).rejects.toThrow(/timed out/);
    await l.run(KEY);
    expect(calls).toBe(2);
  });

  test('deleted before its finalizer landed: the lane takes back what the writes made (nothing else would release it)', async () => {
    const api = new FakeApi(contain);
    const takenBack: string[] = [];
    const isolated = fakePhase('NetworkIsolated', () => undefined, {
      containment: true,
      containNow: async () => {
        api.deleted = true; // kubectl delete, while the writes were in flight
        return async () => void takenBack.push('policy and label');
      },
    });
    await lane(api, [fakePhase('TargetResolved'), isolated], () => structuredClone(api.inv)).run(KEY);
    expect(takenBack).toEqual(['policy and label']);
  });

  test('a write that failed still gets the finalizer (part of it may be in place for release to find), and the queue retries', async () => {
    const api = new FakeApi(contain);
    const isolated = fakePhase('NetworkIsolated', () => undefined, {
      containment: true,
      containNow: async () => {
        throw Object.assign(new Error('etcdserver: request timed out'), { code: 500, body: {} });
      },
    });
    await expect(lane(api, [fakePhase('TargetResolved'), isolated], () => structuredClone(api.inv)).run(KEY)).rejects.toThrow(/timed out/);
    expect(api.inv.metadata.finalizers).toEqual(['casefile.dev/release']);
  });

  test('an EvidenceFirst case, or one being released, gets no first writes', async () => {
    for (const spec of [{ ...contain, containment: { order: 'EvidenceFirst', network: { isolate: true } } }, { ...contain, release: true }]) {
      const api = new FakeApi(spec);
      let calls = 0;
      const isolated = fakePhase('NetworkIsolated', () => undefined, { containment: true, containNow: async () => void calls++ });
      await lane(api, [fakePhase('TargetResolved'), isolated]).run(KEY);
      expect(calls).toBe(0);
    }
  });

  test('wantsContainmentLane: a cheap look at the event, true only for a fresh ContainFirst case', () => {
    expect(wantsContainmentLane({ spec: contain })).toBe(true);
    expect(wantsContainmentLane({ spec: { ...contain, release: true } })).toBe(false);
    expect(wantsContainmentLane({ spec: { target: { pod: 'web-1' } } })).toBe(false);
    expect(wantsContainmentLane({ spec: contain, status: { conditions: [{}] } })).toBe(false);
    expect(wantsContainmentLane({ metadata: { finalizers: ['casefile.dev/release'] }, spec: contain })).toBe(false);
  });
});

