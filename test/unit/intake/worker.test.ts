import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Investigation } from '../../../src/api/investigation.js';
import type { InvestigationBody } from '../../../src/intake/investigation-factory.js';
import { AlertJournal } from '../../../src/intake/journal.js';
import type { AlertEntry, InvestigationRef } from '../../../src/intake/journal-format.js';
import { KeyedRateLimiter } from '../../../src/intake/rate-limit.js';
import { AlertWorker, type AlertsStatus, type AlertWorkerOptions, type InvestigationApi } from '../../../src/intake/worker.js';
import { alertEntry, silent } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/** An API server holding Investigations; a write with a stale resourceVersion gets 409. */
class FakeApi implements InvestigationApi {
  readonly objects = new Map<string, Investigation>();
  creates = 0;
  patches = 0;
  conflictNext = 0;
  /** Namespace production was deleted: create answers 404 naming it, as the API server does. */
  namespaceGone = false;
  private rv = 1;

  async create(body: InvestigationBody): Promise<Investigation> {
    this.creates++;
    if (this.namespaceGone) {
      const status = { kind: 'Status', status: 'Failure', message: `namespaces "${body.metadata.namespace}" not found`, reason: 'NotFound', details: { name: body.metadata.namespace, kind: 'namespaces' }, code: 404 };
      throw Object.assign(apiError(404), { body: JSON.stringify(status) });
    }
    const key = `${body.metadata.namespace}/${body.metadata.name}`;
    if (this.objects.has(key)) throw apiError(409);
    const inv = { ...body, metadata: { ...body.metadata, uid: `uid-${this.creates}`, resourceVersion: String(this.rv++) } } as unknown as Investigation;
    this.objects.set(key, inv);
    return structuredClone(inv);
  }

  async get(ref: InvestigationRef): Promise<Investigation | undefined> {
    const inv = this.objects.get(`${ref.namespace}/${ref.name}`);
    return inv && structuredClone(inv);
  }

  async patchAlerts(ref: InvestigationRef, resourceVersion: string, alerts: AlertsStatus): Promise<Investigation> {
    this.patches++;
    const inv = this.objects.get(`${ref.namespace}/${ref.name}`);
    if (!inv) throw apiError(404);
    if (this.conflictNext > 0 || inv.metadata.resourceVersion !== resourceVersion) {
      this.conflictNext = Math.max(0, this.conflictNext - 1);
      inv.metadata.resourceVersion = String(this.rv++); // the reconciler wrote meanwhile
      throw apiError(409);
    }
    inv.status = { ...inv.status, alerts };
    inv.metadata.resourceVersion = String(this.rv++);
    return structuredClone(inv);
  }

  count(name: string): number | undefined {
    return this.objects.get(`production/${name}`)?.status?.alerts?.count;
  }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-worker-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function setup(api: FakeApi, limits = { rate: 1000, burst: 1000 }, extra: Partial<AlertWorkerOptions> = {}, limiterNow?: () => number) {
  let journal: AlertJournal | undefined;
  const held: number[] = [];
  const gone: number[] = [];
  const opened: string[] = [];
  const worker = new AlertWorker({
    api,
    journal: () => journal,
    limiter: new KeyedRateLimiter(() => limits, limiterNow),
    log: silent,
    batchMs: 20,
    afterCreateMs: 10,
    onRateLimited: () => held.push(1),
    onNamespaceGone: () => gone.push(1),
    onOpened: (inv) => opened.push(`${inv.metadata.namespace}/${inv.metadata.name}`),
    ...extra,
  });
  journal = await AlertJournal.open(dir, { log: silent }, (e) => worker.observe(e));
  worker.start();
  const post = async (name: string, i: number) => worker.committed(await journal!.append([alertEntry(name, i)]));
  return { worker, journal: journal!, post, held, gone, opened };
}

/** What casefile itself creates for an alert of policy casefile-system/shells about web-0. */
const casefileCase = (name: string): InvestigationBody => ({
  apiVersion: 'casefile.dev/v1alpha1',
  kind: 'Investigation',
  metadata: { name, namespace: 'production', labels: { 'app.kubernetes.io/managed-by': 'casefile' }, annotations: { 'casefile.dev/response-policy': 'casefile-system/shells' } },
  spec: { target: { pod: 'web-0', uid: 'uid-web-0' } },
});

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('AlertWorker', () => {
  it('keeps status writes across all cases within its budget during a storm over many pods, and still counts every alert', async () => {
    const api = new FakeApi();
    const { post } = await setup(api, undefined, { batchMs: 1, statusWrites: { rate: 40, burst: 4 } });
    const cases = Array.from({ length: 20 }, (_, i) => `case-${i}`);
    const started = Date.now();
    for (let round = 0; round < 10; round++) {
      await Promise.all(cases.map((c) => post(c, round)));
      await sleep(50);
    }
    await until('every count', () => cases.every((c) => api.count(c) === 10), 10_000);
    const seconds = (Date.now() - started) / 1000;
    // Without the budget each case would be written about every round (200 writes); with it, at most
    // the burst and 40 a second (the first write of each case after create is a patch too).
    expect(api.patches).toBeLessThanOrEqual(4 + Math.ceil(40 * seconds) + 1);
    expect(api.patches).toBeLessThan(200);
  });

  it('opens one Investigation for many alerts and counts them all', async () => {
    const api = new FakeApi();
    const { worker, journal, post, opened } = await setup(api);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => post('case-a', i)));
    await until('count 1000', () => api.count('case-a') === 1000);
    expect(api.creates).toBe(1);
    expect(opened).toEqual(['production/case-a']); // told once, for the one create that succeeded
    const status = api.objects.get('production/case-a')!.status!.alerts!;
    expect(status.first).toBe(new Date(Date.UTC(2026, 10, 20, 10, 0, 0, 0)).toISOString());
    expect(status.last).toBe(new Date(Date.UTC(2026, 10, 20, 10, 0, 0, 999)).toISOString());
    // Batched: far fewer status writes than alerts.
    expect(api.patches).toBeLessThan(100);
    const spec = api.objects.get('production/case-a')!.spec as { target: unknown; alert: { source: string; raw: string } };
    expect(spec.target).toEqual({ pod: 'web-0', uid: 'uid-web-0' });
    expect(spec.alert.raw).toContain('"n":0');
    await worker.stop();
    await journal.close();
  });

  it('attaches to an existing Investigation (AlreadyExists) and retries on conflict', async () => {
    const api = new FakeApi();
    await api.create(casefileCase('case-b'));
    api.conflictNext = 3;
    const { worker, journal, post } = await setup(api);
    for (let i = 0; i < 5; i++) await post('case-b', i);
    await until('count 5', () => api.count('case-b') === 5);
    expect(api.creates).toBe(2); // ours got AlreadyExists
    await worker.stop();
    await journal.close();
  });

  describe('openAhead (ContainFirst: the create goes out while the alert is journaled)', () => {
    const containFirst = (name: string, i: number) => ({ ...(alertEntry(name, i) as AlertEntry), template: { containment: { order: 'ContainFirst' } } });

    it('creates before the journal commit, tells the lane once, and the journaled alert attaches without a second create', async () => {
      const api = new FakeApi();
      const { worker, journal, opened } = await setup(api);
      const entry = containFirst('ahead-1', 0);
      worker.openAhead([entry]);
      await until('created ahead', () => api.objects.has('production/ahead-1'));
      expect(opened).toEqual(['production/ahead-1']);
      worker.committed(await journal.append([entry]));
      await until('count 1', () => api.count('ahead-1') === 1);
      expect(api.creates).toBe(1);
      expect(opened).toEqual(['production/ahead-1']);
      // A second alert about the same case while it is known to exist: nothing ahead.
      worker.openAhead([containFirst('ahead-1', 1)]);
      expect(api.creates).toBe(1);
      await worker.stop();
      await journal.close();
    });

    it('EvidenceFirst, a create already ahead, or a rate limit that holds: nothing ahead; process() creates from the journal', async () => {
      const api = new FakeApi();
      const { worker, journal, post } = await setup(api, { rate: 1, burst: 1 });
      worker.openAhead([alertEntry('evidence-first', 0) as AlertEntry]);
      worker.openAhead([containFirst('c1', 0), containFirst('c1', 1)]); // the second: already ahead
      worker.openAhead([containFirst('c2', 0)]); // the limit's one token went to c1
      await sleep(20);
      expect([...api.objects.keys()]).toEqual(['production/c1']);
      expect(api.creates).toBe(1);
      await post('c2', 0);
      await until('c2 created later, from the journal', () => api.count('c2') === 1, 5000);
      await worker.stop();
      await journal.close();
    });

    it('isolates ahead with the create: the body it returns is created, and it settles with what the create returned (or nothing, on failure); never for a case the journal has seen', async () => {
      const api = new FakeApi();
      await api.create(casefileCase('exists'));
      const begun: string[] = [];
      const settled: (string | undefined)[] = [];
      const isolateAhead = (body: InvestigationBody) => {
        begun.push(body.metadata.name);
        return {
          body: { ...body, metadata: { ...body.metadata, annotations: { ...body.metadata.annotations, 'casefile.dev/isolated-ahead': 'feedc0de' } } },
          settle: async (inv: Investigation | undefined) => void settled.push(inv?.metadata.uid),
        };
      };
      const { worker, journal } = await setup(api, undefined, { isolateAhead });
      worker.openAhead([containFirst('fresh', 0)]);
      await until('settled', () => settled.length === 1);
      expect(api.objects.get('production/fresh')!.metadata.annotations).toMatchObject({ 'casefile.dev/isolated-ahead': 'feedc0de' });
      expect(settled).toEqual([api.objects.get('production/fresh')!.metadata.uid]);
      // The create fails (AlreadyExists): settled with nothing, so the writes are taken back.
      worker.openAhead([containFirst('exists', 0)]);
      await until('settled again', () => settled.length === 2);
      expect(settled[1]).toBeUndefined();
      // A case the journal has seen (it may exist, released): created ahead, but its pod is not isolated ahead.
      worker.committed(await journal.append([containFirst('seen', 0)]));
      await until('seen created', () => api.objects.has('production/seen'));
      worker.openAhead([containFirst('seen', 1)]);
      await sleep(20);
      expect(begun).toEqual(['fresh', 'exists']);
      await worker.stop();
      await journal.close();
    });

    it('a create ahead that failed (a name taken by a lookalike) is left to process(), which moves the case', async () => {
      const api = new FakeApi();
      await api.create({ ...casefileCase('taken'), metadata: { ...casefileCase('taken').metadata, labels: {} } });
      const { worker, journal, opened } = await setup(api);
      const entry = containFirst('taken', 0);
      worker.openAhead([entry]);
      worker.committed(await journal.append([entry]));
      await until('opened under a moved name', () => opened.some((k) => k.startsWith('production/taken-')));
      expect(opened).toHaveLength(1);
      await worker.stop();
      await journal.close();
    });
  });

  describe('a squatted case name', () => {
    const decoys: [string, (b: InvestigationBody) => InvestigationBody][] = [
      ['no casefile label', (b) => ({ ...b, metadata: { ...b.metadata, labels: {} } })],
      ['another policy', (b) => ({ ...b, metadata: { ...b.metadata, annotations: { 'casefile.dev/response-policy': 'team/other' } } })],
      ['another target pod', (b) => ({ ...b, spec: { target: { pod: 'web-0', uid: 'uid-decoy' } } })],
    ];
    it.each(decoys)('%s: the alerts open the case under a moved name, the decoy gets none', async (_what, decoy) => {
      const api = new FakeApi();
      await api.create(decoy(casefileCase('case-s')));
      const { worker, journal, post } = await setup(api);
      const taken: number[] = [];
      (worker as unknown as { opts: { onNameTaken: () => void } }).opts.onNameTaken = () => taken.push(1);
      for (let i = 0; i < 3; i++) await post('case-s', i);
      await until('moved case counted', () => [...api.objects.keys()].some((k) => /^production\/case-s-[0-9a-f]{8}$/.test(k) && api.objects.get(k)!.status?.alerts?.count === 3));
      expect(api.objects.get('production/case-s')!.status?.alerts).toBeUndefined();
      expect(taken).toHaveLength(1);
      const moved = [...api.objects.values()].find((o) => o.metadata.name !== 'case-s')!;
      expect((moved.spec as { target: unknown }).target).toEqual({ pod: 'web-0', uid: 'uid-web-0' });
      await worker.stop();
      await journal.close();

      // After a restart the journal's `moved` line keeps the case at its new name.
      const again = await setup(api);
      await again.post('case-s', 10);
      await until('moved case counted again', () => api.objects.get(`production/${moved.metadata.name}`)!.status?.alerts?.count === 4);
      expect(api.objects.size).toBe(2); // the decoy and the moved case: no third name
      expect(taken).toHaveLength(1);
      await again.worker.stop();
      await again.journal.close();
    });
  });

  it('rebuilds the same counts from the journal after a restart, without re-creating acknowledged cases', async () => {
    const api = new FakeApi();
    const first = await setup(api);
    for (let i = 0; i < 30; i++) await first.post(i % 2 ? 'case-c' : 'case-d', i);
    await until('both counted', () => api.count('case-c') === 15 && api.count('case-d') === 15);
    const acked = (name: string) => {
      const a = first.worker.alerts({ namespace: 'production', name })!;
      return a.ackedThrough >= a.lastSeq;
    };
    await until('acknowledged', () => acked('case-c') && acked('case-d'));
    await first.worker.stop();
    await first.journal.close();

    api.objects.delete('production/case-c'); // a responder deleted the finished case
    const creates = api.creates;
    const second = await setup(api);
    expect(second.worker.alerts({ namespace: 'production', name: 'case-c' })).toMatchObject({ count: 15 });
    expect(second.worker.alerts({ namespace: 'production', name: 'case-d' })).toMatchObject({ count: 15 });
    await sleep(200);
    expect(api.creates).toBe(creates); // nothing unacknowledged: nothing re-created
    await second.post('case-c', 100); // a new alert about the pod opens the case again
    await until('case-c re-opened', () => api.count('case-c') === 16);
    await second.worker.stop();
    await second.journal.close();
  });

  it('holds creations back past the rate limit, keeps their alerts, and creates them later', async () => {
    const api = new FakeApi();
    // The limiter's clock stands still until the test moves it: no refill however slow the machine is.
    let clock = 0;
    const { worker, journal, post, held } = await setup(api, { rate: 20, burst: 2 }, {}, () => clock);
    for (const name of ['r1', 'r2', 'r3', 'r4']) await post(name, 1);
    await until('the burst created', () => api.objects.size === 2);
    await until('the rest held back', () => held.length >= 2);
    await sleep(100);
    expect(api.objects.size).toBe(2);
    clock = 1000;
    await until('all four created', () => ['r1', 'r2', 'r3', 'r4'].every((n) => api.count(n) === 1));
    expect(held.length).toBeGreaterThan(0);
    await worker.stop();
    await journal.close();
  });

  it('drops a case whose namespace was deleted: counted once, acknowledged, not retried after a restart', async () => {
    const api = new FakeApi();
    api.namespaceGone = true;
    const first = await setup(api);
    const ref = { namespace: 'production', name: 'case-g' };
    const acked = (w: AlertWorker) => {
      const a = w.alerts(ref)!;
      return a.ackedThrough >= a.lastSeq;
    };
    for (let i = 0; i < 3; i++) await first.post('case-g', i);
    await until('acknowledged', () => acked(first.worker));
    const creates = api.creates;
    await sleep(100);
    expect(api.creates).toBe(creates); // terminal: no retry with backoff
    expect(first.gone).toHaveLength(1);
    await first.post('case-g', 3); // a late alert about the same case: tried once, acknowledged, not counted again
    await until('late alert acknowledged', () => acked(first.worker));
    expect(first.worker.alerts(ref)!.count).toBe(4);
    expect(first.gone).toHaveLength(1);
    await first.worker.stop();
    await first.journal.close();

    const before = api.creates;
    const second = await setup(api);
    expect(second.worker.alerts(ref)).toMatchObject({ count: 4 });
    expect(acked(second.worker)).toBe(true);
    await sleep(100);
    expect(api.creates).toBe(before); // the replay skips it
    expect(api.objects.size).toBe(0);
    await second.worker.stop();
    await second.journal.close();
  });

  it('retries a 404 that is not about the namespace (the CRD not installed yet)', async () => {
    const api = new FakeApi();
    const create = api.create.bind(api);
    let failures = 2;
    api.create = async (body) => {
      if (failures-- > 0) throw Object.assign(apiError(404), { body: '{"kind":"Status","reason":"NotFound","details":{},"code":404}' });
      return create(body);
    };
    const { worker, journal, post, gone } = await setup(api);
    await post('case-n', 0);
    await until('created after the 404s', () => api.count('case-n') === 1, 10_000);
    expect(gone).toHaveLength(0);
    await worker.stop();
    await journal.close();
  });

  it("a checkpoint's case line restores the counts and the acknowledgement without re-creating the case", async () => {
    const api = new FakeApi();
    const worker = new AlertWorker({ api, journal: () => undefined, limiter: new KeyedRateLimiter(() => ({ rate: 1000, burst: 1000 })), log: silent });
    const ref = { namespace: 'production', name: 'case-k' };
    worker.observe({ type: 'case', seq: 50, investigation: ref, policy: { namespace: 'casefile-system', name: 'shells' }, podUID: 'uid-web-0', count: 40, first: '2026-11-20T10:00:00.000Z', last: '2026-11-20T10:05:00.000Z', lastSeq: 48, ackedThrough: 48 });
    worker.observe({ ...(alertEntry('case-k', 7) as Omit<AlertEntry, 'seq'>), seq: 49 } as AlertEntry);
    expect(worker.alerts(ref)).toEqual({ count: 41, first: '2026-11-20T10:00:00.000Z', last: '2026-11-20T10:05:00.000Z', lastSeq: 49, ackedThrough: 48 });
  });
});
