import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ApiException, CoordinationV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { LeaderElector, type LeaseApi } from '../../../src/engine/leader.js';

const silent = pino({ level: 'silent' });
const NS = 'casefile-system';
const NAME = 'casefile-leader';

/** The API server's view of one Lease: JSON on the wire, resourceVersion checked on replace. */
class LeaseStore {
  lease: any;
  private rv = 0;
  conflicts = 0;

  private commit(body: V1Lease): V1Lease {
    const stored = JSON.parse(JSON.stringify(body));
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    this.lease = stored;
    return structuredClone(stored);
  }

  /** A client whose calls can fail or hang, as seen by one candidate. */
  client(): LeaseApi & { down: boolean; hang: boolean } {
    const store = this;
    const gate = async function (this: { down: boolean; hang: boolean }): Promise<void> {
      await new Promise((r) => setTimeout(r, 5)); // network latency lets candidates interleave
      if (this.hang) await new Promise(() => undefined);
      if (this.down) throw new ApiException(503, 'unavailable', {}, {});
    };
    return {
      down: false,
      hang: false,
      async readNamespacedLease({ name, namespace }) {
        await gate.call(this);
        expect([name, namespace]).toEqual([NAME, NS]);
        if (!store.lease) throw new ApiException(404, 'not found', {}, {});
        return structuredClone(store.lease);
      },
      async createNamespacedLease({ namespace, body }) {
        await gate.call(this);
        expect([body.metadata?.name, namespace]).toEqual([NAME, NS]);
        if (store.lease) throw new ApiException(409, 'exists', {}, {});
        return store.commit(body);
      },
      async replaceNamespacedLease({ body }) {
        await gate.call(this);
        if (!store.lease) throw new ApiException(404, 'not found', {}, {});
        if (body.metadata?.resourceVersion !== store.lease.metadata.resourceVersion) {
          store.conflicts++;
          throw new ApiException(409, 'conflict', {}, {});
        }
        return store.commit(body);
      },
    };
  }
}

type Event = [number, string, 'start' | 'stop'];

function candidate(store: LeaseStore, identity: string, events: Event[]) {
  const api = store.client();
  const elector = new LeaderElector({
    api,
    namespace: NS,
    name: NAME,
    identity,
    onStartedLeading: () => events.push([Date.now(), identity, 'start']),
    onStoppedLeading: () => events.push([Date.now(), identity, 'stop']),
    log: silent,
  });
  return { api, elector };
}

const MICRO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

describe('LeaderElector', () => {
  const electors: LeaderElector[] = [];
  beforeEach(() => {
    jest.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(async () => {
    const stopping = Promise.all(electors.splice(0).map((e) => e.stop()));
    await jest.runAllTimersAsync();
    await stopping;
    jest.useRealTimers();
  });

  function start(store: LeaseStore, identity: string, events: Event[]) {
    const c = candidate(store, identity, events);
    electors.push(c.elector);
    const done = c.elector.run();
    return { ...c, done };
  }

  it('a single candidate creates the lease, leads, and renews it', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    const a = start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    expect(events).toEqual([[expect.any(Number), 'a', 'start']]);
    expect(a.elector.isLeader).toBe(true);
    const first = store.lease.spec;
    expect(first).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(first.renewTime).toMatch(MICRO);
    expect(first.acquireTime).toMatch(MICRO);

    await jest.advanceTimersByTimeAsync(2000);
    const renewed = store.lease.spec;
    expect(Date.parse(renewed.renewTime) - Date.parse(first.renewTime)).toBeGreaterThanOrEqual(2000);
    expect(renewed.acquireTime).toBe(first.acquireTime);
    expect(renewed.leaseTransitions).toBe(0);
    expect(store.lease.metadata.resourceVersion).toBe('2');
    await jest.advanceTimersByTimeAsync(60_000);
    expect(events).toHaveLength(1);
  });

  it('a second candidate waits while the lease is fresh and takes over only after it expires', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    const a = start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    const b = start(store, 'b', events);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(b.elector.isLeader).toBe(false);
    expect(events.map((e) => e.slice(1))).toEqual([['a', 'start']]);

    a.api.down = true; // a is partitioned from the API server
    const lastRenew = Date.parse(store.lease.spec.renewTime);
    await jest.advanceTimersByTimeAsync(30_000);
    expect(events.map((e) => e.slice(1))).toEqual([
      ['a', 'start'],
      ['a', 'stop'],
      ['b', 'start'],
    ]);
    const [, aStop, bStart] = events;
    expect(aStop![0]).toBeLessThan(bStart![0]); // never two leaders
    expect(aStop![0] - lastRenew).toBeLessThanOrEqual(10_000 + 5);
    expect(bStart![0] - lastRenew).toBeGreaterThan(15_000);
    expect(store.lease.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(Date.parse(store.lease.spec.acquireTime)).toBeGreaterThan(lastRenew + 15_000);
    await a.done;
    expect(a.elector.isLeader).toBe(false);
  });

  it('candidates racing for an expired lease produce one leader; the loser gets a conflict', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    const old = new Date(Date.now() - 60_000).toISOString().replace('Z', '000Z');
    store.lease = {
      metadata: { name: NAME, namespace: NS, resourceVersion: '0' },
      spec: { holderIdentity: 'gone', leaseDurationSeconds: 15, renewTime: old, acquireTime: old, leaseTransitions: 4 },
    };
    const a = start(store, 'a', events);
    const b = start(store, 'b', events);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(store.conflicts).toBeGreaterThanOrEqual(1);
    expect(events).toHaveLength(1);
    const winner = events[0]![1];
    expect([a, b].filter((c) => c.elector.isLeader)).toHaveLength(1);
    expect(store.lease.spec).toMatchObject({ holderIdentity: winner, leaseTransitions: 5 });
  });

  it('calls onStoppedLeading once when renewals fail past the renew deadline', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    const a = start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    const acquired = events[0]![0];
    a.api.down = true;
    await jest.advanceTimersByTimeAsync(9_000);
    expect(a.elector.isLeader).toBe(true);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(events.map((e) => e.slice(1))).toEqual([
      ['a', 'start'],
      ['a', 'stop'],
    ]);
    expect(events[1]![0] - acquired).toBeLessThanOrEqual(10_000);
    await a.done;
    a.api.down = false;
    await jest.advanceTimersByTimeAsync(60_000);
    expect(events).toHaveLength(2); // single-use: no re-campaign
  });

  it('gives up leadership by the deadline even when a renewal request hangs', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    const a = start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    const acquired = events[0]![0];
    a.api.hang = true;
    await jest.advanceTimersByTimeAsync(20_000);
    expect(events.map((e) => e[2])).toEqual(['start', 'stop']);
    expect(events[1]![0] - acquired).toBeLessThanOrEqual(10_000);
  });

  it('stops leading at once when another holder has taken the lease', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    store.lease.spec.holderIdentity = 'intruder';
    await jest.advanceTimersByTimeAsync(2_100);
    expect(events.map((e) => e.slice(1))).toEqual([
      ['a', 'start'],
      ['a', 'stop'],
    ]);
  });

  it('stop() releases the lease so a successor takes over within seconds', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    const a = start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    const b = start(store, 'b', events);
    await jest.advanceTimersByTimeAsync(5_000);

    const stopping = a.elector.stop();
    await jest.advanceTimersByTimeAsync(100);
    await stopping;
    await a.done;
    const released = Date.now();
    expect(store.lease.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 1 });
    expect(Math.abs(Date.parse(store.lease.spec.renewTime) - released)).toBeLessThan(100);
    expect(a.elector.isLeader).toBe(false);

    await jest.advanceTimersByTimeAsync(4_100);
    expect(events.map((e) => e.slice(1))).toEqual([
      ['a', 'start'],
      ['b', 'start'],
    ]); // no onStoppedLeading for a voluntary stop
    expect(b.elector.isLeader).toBe(true);
    expect(store.lease.spec).toMatchObject({ holderIdentity: 'b', leaseDurationSeconds: 15, leaseTransitions: 1 });
  });

  it('stop() while campaigning leaves the lease alone', async () => {
    const store = new LeaseStore();
    const events: Event[] = [];
    start(store, 'a', events);
    await jest.advanceTimersByTimeAsync(100);
    const b = start(store, 'b', events);
    await jest.advanceTimersByTimeAsync(3_000);
    const before = structuredClone(store.lease);
    const stopping = b.elector.stop();
    await jest.advanceTimersByTimeAsync(100);
    await stopping;
    await b.done;
    expect(store.lease.spec.holderIdentity).toBe('a');
    expect(store.lease.spec.leaseDurationSeconds).toBe(before.spec.leaseDurationSeconds);
  });

  it('rejects timings that could allow two leaders', () => {
    const api = new LeaseStore().client();
    const base = { api, namespace: NS, name: NAME, identity: 'x', onStartedLeading() {}, onStoppedLeading() {}, log: silent };
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 10, renewDeadlineSeconds: 10 })).toThrow();
    expect(() => new LeaderElector({ ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 })).toThrow();
  });

  it('accepts client-node CoordinationV1Api as its api', () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://127.0.0.1:6443' }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const api: LeaseApi = kc.makeApiClient(CoordinationV1Api); // the type check is the point
    expect(typeof api.replaceNamespacedLease).toBe('function');
  });
});
