import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { pino } from 'pino';
import { WorkQueue, type ReconcileResult, type WorkQueueOptions } from '../../../src/engine/queue.js';

const silent = pino({ level: 'silent' });

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Lets pending promise callbacks run (real timers). */
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function queue(
  handler: (key: string) => Promise<ReconcileResult | void>,
  opts: Partial<WorkQueueOptions> = {},
): WorkQueue {
  return new WorkQueue(handler, { name: 'test', workers: 1, log: silent, qps: 1e6, burst: 1e6, ...opts });
}

describe('WorkQueue', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('dedupes keys waiting in the queue', async () => {
    const seen: string[] = [];
    const q = queue(async (k) => {
      seen.push(k);
    });
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.depth).toBe(2);
    q.start();
    await flush();
    expect(seen).toEqual(['a', 'b']);
    expect(q.depth).toBe(0);
    await q.stop();
  });

  it('never runs one key twice at once and re-runs a key added during its run exactly once', async () => {
    let active = 0;
    let maxActive = 0;
    const runs: Array<{ resolve: () => void }> = [];
    const q = queue(
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        const d = deferred();
        runs.push(d);
        await d.promise;
        active--;
      },
      { workers: 8 },
    );
    q.start();
    q.add('k');
    await flush();
    expect(runs).toHaveLength(1);
    for (let i = 0; i < 10; i++) q.add('k'); // while processing: marks dirty only
    await flush();
    expect(runs).toHaveLength(1);
    expect(q.depth).toBe(0);
    expect(q.inFlight).toBe(1);

    runs[0]!.resolve();
    await flush();
    expect(runs).toHaveLength(2); // the dirty re-run
    runs[1]!.resolve();
    await flush();
    await flush();
    expect(runs).toHaveLength(2); // and only one
    expect(maxActive).toBe(1);
    expect(q.inFlight).toBe(0);
    await q.stop();
  });

  it('runs different keys in parallel up to the worker count', async () => {
    const running = new Map<string, () => void>();
    let maxInFlight = 0;
    const q = queue(
      async (k) => {
        const d = deferred();
        running.set(k, d.resolve);
        maxInFlight = Math.max(maxInFlight, running.size);
        await d.promise;
        running.delete(k);
      },
      { workers: 3 },
    );
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k);
    q.start();
    await flush();
    expect([...running.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(q.inFlight).toBe(3);
    expect(q.depth).toBe(2);

    running.get('b')!();
    await flush();
    expect([...running.keys()].sort()).toEqual(['a', 'c', 'd']);
    for (const r of [...running.values()]) r();
    await flush();
    for (const r of [...running.values()]) r();
    await flush();
    expect(running.size).toBe(0);
    expect(maxInFlight).toBe(3);
    await q.stop();
  });

  it('backs off exponentially on failure, caps the delay, and resets after success', async () => {
    jest.useFakeTimers({ now: 0 });
    const times: number[] = [];
    let fail = true;
    const q = queue(
      async () => {
        times.push(Date.now());
        if (fail) throw new Error('boom');
      },
      { baseDelayMs: 100, maxDelayMs: 1000 },
    );
    q.start();
    q.add('k');
    await jest.advanceTimersByTimeAsync(0);
    await jest.advanceTimersByTimeAsync(100 + 200 + 400 + 800 + 1000 + 1000);
    const gaps = (ts: number[]): number[] => ts.slice(1).map((t, i) => t - ts[i]!);
    expect(gaps(times)).toEqual([100, 200, 400, 800, 1000, 1000]);

    fail = false;
    await jest.advanceTimersByTimeAsync(1000); // a successful run forgets the failures
    expect(times).toHaveLength(8);
    fail = true;
    const from = times.length;
    q.add('k');
    await jest.advanceTimersByTimeAsync(100 + 200);
    expect(gaps(times.slice(from))).toEqual([100, 200]);
    await q.stop();
  });

  it('requeues after requeueAfterMs without counting a failure', async () => {
    jest.useFakeTimers({ now: 0 });
    const results: Array<'fail' | ReconcileResult> = ['fail', 'fail', { requeueAfterMs: 5000 }, 'fail', {}];
    const times: number[] = [];
    const q = queue(
      async () => {
        times.push(Date.now());
        const r = results.shift();
        if (r === 'fail') throw new Error('boom');
        return r;
      },
      { baseDelayMs: 100 },
    );
    q.start();
    q.add('k');
    await jest.advanceTimersByTimeAsync(10_000);
    // fail (+100) fail (+200) requeue (+5000) fail (+100: backoff was reset) ok
    expect(times).toEqual([0, 100, 300, 5300, 5400]);
    await q.stop();
  });

  it('addAfter keeps the earliest pending time per key', async () => {
    jest.useFakeTimers({ now: 0 });
    const times: Array<[string, number]> = [];
    const q = queue(async (k) => {
      times.push([k, Date.now()]);
    });
    q.start();
    q.addAfter('a', 1000);
    q.addAfter('a', 200); // earlier: replaces
    q.addAfter('b', 100);
    q.addAfter('b', 500); // later: ignored
    await jest.advanceTimersByTimeAsync(2000);
    expect(times).toEqual([
      ['b', 100],
      ['a', 200],
    ]);
    await q.stop();
  });

  it('rate-limits dequeues to the burst, then qps', async () => {
    jest.useFakeTimers({ now: 0 });
    const times: number[] = [];
    const q = queue(
      async () => {
        times.push(Date.now());
      },
      { workers: 10, qps: 10, burst: 3 },
    );
    for (let i = 0; i < 8; i++) q.add(`k${i}`);
    q.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(times).toEqual([0, 0, 0]);
    await jest.advanceTimersByTimeAsync(1000);
    expect(times).toEqual([0, 0, 0, 100, 200, 300, 400, 500]);
    await q.stop();
  });

  it('stop waits for in-flight handlers and drops queued and delayed work', async () => {
    const started: string[] = [];
    const release = new Map<string, () => void>();
    const q = queue(
      async (k) => {
        started.push(k);
        const d = deferred();
        release.set(k, d.resolve);
        await d.promise;
      },
      { workers: 2 },
    );
    q.add('a');
    q.add('b');
    q.add('c');
    q.addAfter('d', 10);
    q.start();
    await flush();
    let stopped = false;
    const stopping = q.stop().then(() => (stopped = true));
    q.add('e');
    release.get('a')!();
    await flush();
    expect(stopped).toBe(false);
    expect(q.inFlight).toBe(1);
    release.get('b')!();
    await stopping;
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toEqual(['a', 'b']);
    expect(q.depth).toBe(0);
  });

  it('logs a handler error (thrown synchronously or not) with the key and keeps working', async () => {
    const lines: string[] = [];
    const log = pino({}, { write: (s: string) => void lines.push(s) });
    const ok: string[] = [];
    const q = new WorkQueue(
      (k) => {
        if (k === 'sync') throw new Error('sync boom');
        if (k === 'async') return Promise.reject(new Error('async boom'));
        ok.push(k);
        return Promise.resolve();
      },
      { name: 'test', workers: 1, log, baseDelayMs: 60_000 },
    );
    q.start();
    q.add('sync');
    q.add('async');
    q.add('fine');
    await flush();
    await flush();
    expect(ok).toEqual(['fine']);
    const entries = lines.map((l) => JSON.parse(l) as { key: string; msg: string; err: { message: string }; workqueue: string });
    expect(entries.map((e) => [e.key, e.msg, e.err.message, e.workqueue])).toEqual([
      ['sync', 'reconcile failed', 'sync boom', 'test'],
      ['async', 'reconcile failed', 'async boom', 'test'],
    ]);
    await q.stop();
  });

  it('reports depth, latency, outcomes and retries to the metrics hooks', async () => {
    const depth: number[] = [];
    const outcomes: string[] = [];
    const retries: Array<[string, number, number]> = [];
    let latencies = 0;
    const q = queue(
      async (k) => {
        if (k === 'bad') throw new Error('boom');
        return k === 'again' ? { requeueAfterMs: 60_000 } : undefined;
      },
      {
        baseDelayMs: 60_000,
        onMetrics: {
          depth: (d) => depth.push(d),
          queueLatency: () => latencies++,
          reconciled: (s, o) => {
            expect(s).toBeGreaterThanOrEqual(0);
            outcomes.push(o);
          },
          retry: (k, f, d) => retries.push([k, f, d]),
        },
      },
    );
    q.add('ok');
    q.add('bad');
    q.add('again');
    q.start();
    await flush();
    await flush();
    expect(depth).toEqual([1, 2, 3, 2, 1, 0]);
    expect(latencies).toBe(3);
    expect(outcomes).toEqual(['success', 'error', 'requeue']);
    expect(retries).toEqual([['bad', 1, 60_000]]);
    await q.stop();
  });
});
