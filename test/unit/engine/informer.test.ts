import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ApiException, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { Investigation } from '../../../src/api/investigation.js';
import { Informer, type WatchEventType, type WatchFn } from '../../../src/engine/informer.js';

const silent = pino({ level: 'silent' });

function obj(name: string, rv: string, ns = 'default'): KubernetesObject {
  return { metadata: { name, namespace: ns, resourceVersion: rv } };
}

interface FakeWatch {
  rv: string;
  aborted: boolean;
  emit(type: WatchEventType, o: unknown): void;
  done(err?: unknown): void;
}

/** A scripted API: `items`/`rv` is what the next list returns; every watch call is recorded. */
class FakeApi {
  items: KubernetesObject[] = [];
  rv = '1';
  listCalls = 0;
  listFailures = 0;
  watchError: unknown;
  watches: FakeWatch[] = [];

  list = async (): Promise<{ items: KubernetesObject[]; resourceVersion: string }> => {
    this.listCalls++;
    if (this.listFailures > 0) {
      this.listFailures--;
      throw new Error('list unavailable');
    }
    return { items: structuredClone(this.items), resourceVersion: this.rv };
  };

  watch: WatchFn = async (rv, onEvent, onDone) => {
    if (this.watchError !== undefined) {
      const err = this.watchError;
      this.watchError = undefined;
      throw err;
    }
    const w: FakeWatch = { rv, aborted: false, emit: onEvent, done: onDone };
    this.watches.push(w);
    return { abort: () => (w.aborted = true) };
  };

  get current(): FakeWatch {
    return this.watches[this.watches.length - 1]!;
  }
}

type Change = [string, string, string | undefined] | [string, string, string | undefined, string | undefined];

function setup(opts: { resyncMs?: number } = {}): { api: FakeApi; changes: Change[]; informer: Informer<KubernetesObject> } {
  const api = new FakeApi();
  const changes: Change[] = [];
  const informer = new Informer<KubernetesObject>({
    name: 'test',
    list: api.list,
    watch: api.watch,
    onChange: (key, o, type, previous) => changes.push(previous ? [type, key, o?.metadata?.resourceVersion, previous.metadata?.resourceVersion] : [type, key, o?.metadata?.resourceVersion]),
    resyncMs: opts.resyncMs ?? 0,
    backoffMs: { initial: 10, max: 40 },
    log: silent,
  });
  return { api, changes, informer };
}

describe('Informer', () => {
  let informer: Informer<KubernetesObject> | undefined;
  beforeEach(() => {
    jest.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    informer?.stop();
    informer = undefined;
    jest.useRealTimers();
  });

  it('lists, caches, emits ADDED for each object, then watches from the list resourceVersion', async () => {
    const s = setup();
    informer = s.informer;
    s.api.items = [obj('a', '5'), obj('b', '6', 'other'), { metadata: { name: 'node-1', resourceVersion: '7' } }];
    s.api.rv = '10';
    expect(s.informer.hasSynced()).toBe(false);
    await s.informer.start();
    expect(s.informer.hasSynced()).toBe(true);
    expect(s.changes).toEqual([
      ['ADDED', 'default/a', '5'],
      ['ADDED', 'other/b', '6'],
      ['ADDED', 'node-1', '7'],
    ]);
    expect(s.informer.get('other/b')?.metadata?.resourceVersion).toBe('6');
    expect(s.informer.list()).toHaveLength(3);
    await jest.advanceTimersByTimeAsync(0);
    expect(s.api.watches.map((w) => w.rv)).toEqual(['10']);
  });

  it('retries a failing list with exponential backoff', async () => {
    const s = setup();
    informer = s.informer;
    s.api.listFailures = 3;
    let synced = false;
    void s.informer.start().then(() => (synced = true));
    await jest.advanceTimersByTimeAsync(0);
    expect(s.api.listCalls).toBe(1);
    await jest.advanceTimersByTimeAsync(10);
    expect(s.api.listCalls).toBe(2);
    await jest.advanceTimersByTimeAsync(19);
    expect(s.api.listCalls).toBe(2);
    await jest.advanceTimersByTimeAsync(1);
    expect(s.api.listCalls).toBe(3);
    await jest.advanceTimersByTimeAsync(40);
    expect(s.api.listCalls).toBe(4);
    expect(synced).toBe(true);
  });

  it('applies watch events to the cache; BOOKMARK only advances the resourceVersion', async () => {
    const s = setup();
    informer = s.informer;
    s.api.items = [obj('a', '5')];
    await s.informer.start();
    await jest.advanceTimersByTimeAsync(0);
    s.changes.length = 0;
    const w = s.api.current;
    w.emit('ADDED', obj('b', '11'));
    w.emit('MODIFIED', obj('a', '12'));
    w.emit('DELETED', obj('b', '13'));
    w.emit('BOOKMARK', { metadata: { resourceVersion: '20' } });
    expect(s.changes).toEqual([
      ['ADDED', 'default/b', '11'],
      ['MODIFIED', 'default/a', '12', '5'], // with the state it replaced
      ['DELETED', 'default/b', '13'],
    ]);
    expect(s.informer.list().map((o) => o.metadata?.resourceVersion)).toEqual(['12']);
    expect(s.informer.get('default/b')).toBeUndefined();

    // A dropped watch resumes from the last seen resourceVersion after the backoff.
    w.done(new Error('connection reset'));
    await jest.advanceTimersByTimeAsync(9);
    expect(s.api.watches).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(s.api.watches.map((x) => x.rv)).toEqual(['1', '20']);
    expect(s.api.listCalls).toBe(1);
  });

  it('re-watches from the last resourceVersion after a clean close, a non-410 ERROR event, or a rejected watch', async () => {
    const s = setup();
    informer = s.informer;
    await s.informer.start();
    await jest.advanceTimersByTimeAsync(0);
    s.api.current.emit('ADDED', obj('a', '2'));
    s.api.current.done();
    await jest.advanceTimersByTimeAsync(10);
    expect(s.api.current.rv).toBe('2');

    s.api.current.emit('ERROR', { kind: 'Status', code: 500, message: 'internal error' });
    expect(s.api.watches[1]!.aborted).toBe(true);
    await jest.advanceTimersByTimeAsync(20); // no events on that watch: backoff doubled
    expect(s.api.watches).toHaveLength(3);
    expect(s.api.current.rv).toBe('2');

    s.api.watchError = new Error('ECONNREFUSED');
    s.api.current.done();
    await jest.advanceTimersByTimeAsync(40 + 40);
    expect(s.api.watches.map((w) => w.rv)).toEqual(['1', '2', '2', '2']);
    expect(s.api.listCalls).toBe(1);
  });

  it.each([
    ['an ERROR event with code 410', (w: FakeWatch) => w.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' })],
    ['a watch ending with statusCode 410', (w: FakeWatch) => w.done(Object.assign(new Error('Gone'), { statusCode: 410 }))],
  ])('relists on %s and emits DELETED for vanished objects', async (_, expire) => {
    const s = setup();
    informer = s.informer;
    s.api.items = [obj('keep', '1'), obj('change', '2'), obj('vanish', '3')];
    await s.informer.start();
    await jest.advanceTimersByTimeAsync(0);
    s.changes.length = 0;

    s.api.items = [obj('keep', '1'), obj('change', '8'), obj('new', '9')];
    s.api.rv = '50';
    expire(s.api.current);
    await jest.advanceTimersByTimeAsync(10);
    expect(s.api.listCalls).toBe(2);
    expect(s.changes).toEqual([
      ['MODIFIED', 'default/change', '8', '2'], // a relist says what it replaced too
      ['ADDED', 'default/new', '9'],
      ['DELETED', 'default/vanish', '3'],
    ]);
    expect(s.informer.list().map((o) => o.metadata?.name).sort()).toEqual(['change', 'keep', 'new']);
    expect(s.api.current.rv).toBe('50');
  });

  it('relists when starting the watch fails with ApiException 410', async () => {
    const s = setup();
    informer = s.informer;
    await s.informer.start();
    await jest.advanceTimersByTimeAsync(0);
    s.api.watchError = new ApiException(410, 'Gone', {}, {});
    s.api.current.done();
    await jest.advanceTimersByTimeAsync(10 + 20);
    expect(s.api.listCalls).toBe(2);
  });

  it('resync re-delivers every cached object', async () => {
    const s = setup({ resyncMs: 1000 });
    informer = s.informer;
    s.api.items = [obj('a', '1'), obj('b', '2')];
    await s.informer.start();
    s.changes.length = 0;
    await jest.advanceTimersByTimeAsync(1000);
    expect(s.changes).toEqual([
      ['RESYNC', 'default/a', '1'],
      ['RESYNC', 'default/b', '2'],
    ]);
    await jest.advanceTimersByTimeAsync(1000);
    expect(s.changes).toHaveLength(4);
  });

  it('survives an onChange handler that throws', async () => {
    const api = new FakeApi();
    api.items = [obj('a', '1'), obj('b', '2')];
    const seen: string[] = [];
    informer = new Informer<KubernetesObject>({
      name: 'test',
      list: api.list,
      watch: api.watch,
      onChange: (key) => {
        seen.push(key);
        throw new Error('handler bug');
      },
      log: silent,
    });
    await informer.start();
    await jest.advanceTimersByTimeAsync(0);
    api.current.emit('ADDED', obj('c', '3'));
    expect(seen).toEqual(['default/a', 'default/b', 'default/c']);
    expect(informer.list()).toHaveLength(3);
  });

  it('stop aborts the watch and ends the loop and the resync', async () => {
    const s = setup({ resyncMs: 100 });
    s.api.items = [obj('a', '1')];
    await s.informer.start();
    await jest.advanceTimersByTimeAsync(0);
    const w = s.api.current;
    s.changes.length = 0;
    s.informer.stop();
    expect(w.aborted).toBe(true);
    w.emit('ADDED', obj('b', '2'));
    w.done(new Error('aborted'));
    await jest.advanceTimersByTimeAsync(1000);
    expect(s.changes).toEqual([]);
    expect(s.api.watches).toHaveLength(1);
    expect(s.api.listCalls).toBe(1);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('stop during list backoff resolves start() and lists no more', async () => {
    const s = setup();
    s.api.listFailures = 100;
    const started = s.informer.start();
    await jest.advanceTimersByTimeAsync(0);
    s.informer.stop();
    await started;
    await jest.advanceTimersByTimeAsync(1000);
    expect(s.api.listCalls).toBe(1);
    expect(s.informer.hasSynced()).toBe(false);
  });
});

describe('Informer typing', () => {
  it('accepts CRD types whose timestamps are strings', () => {
    // Compile-time check: Investigation's metadata is not client-node's V1ObjectMeta.
    const informer = new Informer<Investigation>({
      name: 'investigations',
      list: async () => ({ items: [], resourceVersion: '1' }),
      watch: async () => ({ abort: () => undefined }),
      onChange: (_key, obj) => void obj?.metadata.creationTimestamp?.toUpperCase(),
      log: silent,
    });
    expect(informer.hasSynced()).toBe(false);
  });
});
