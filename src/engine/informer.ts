// List+watch into a local cache, like client-go's reflector + indexer: list once, watch from the
// list's resourceVersion, resume from the last seen resourceVersion after a dropped watch, and relist
// only when the server says that version is gone (410). Nothing here throws out of its loop: the
// operator must keep its view of the cluster across API server restarts and network blips.
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/investigation.js';
import type { Query, WatchEventType, WatchFn, WatchHandle } from '../kube/rest.js';

export type { WatchEventType, WatchFn, WatchHandle };

/**
 * What the informer reads of an object. Any KubernetesObject fits, and so do CRD types that (like the
 * JSON a watch delivers) carry timestamps as strings rather than client-node's Dates.
 */
export interface ObjectWithMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/** RESYNC: a periodic re-delivery of an unchanged cached object (level-based reconcile). */
export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'RESYNC';

export interface InformerOptions<T extends ObjectWithMeta> {
  name: string;
  list: () => Promise<{ items: T[]; resourceVersion: string }>;
  watch: WatchFn;
  /** For DELETED, `obj` is the last state seen; for MODIFIED, `previous` is the state it replaced. */
  onChange: (key: string, obj: T | undefined, type: ChangeType, previous?: T) => void;
  /** Interval of RESYNC deliveries; 0 disables. Default 5 minutes. */
  resyncMs?: number;
  /** Delay before a relist or re-watch after a failure, doubling up to max. Default 800ms to 30s (client-go). */
  backoffMs?: { initial: number; max: number };
  log: Logger;
}

/** The cache key: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: ObjectWithMeta): string | undefined {
  const name = obj.metadata?.name;
  if (!name) return undefined;
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

function statusCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

type WatchEnd = { gone: boolean; err?: unknown; events: number };

export class Informer<T extends ObjectWithMeta> {
  private readonly cache = new Map<string, T>();
  private readonly log: Logger;
  private readonly backoff: { initial: number; max: number };
  private resourceVersion = '';
  private synced = false;
  private stopped = false;
  private running = false;
  private delay: number;
  private watchHandle: WatchHandle | undefined;
  private endWatch: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private onSynced: (() => void) | undefined;

  constructor(private readonly opts: InformerOptions<T>) {
    this.log = opts.log.child({ informer: opts.name });
    this.backoff = opts.backoffMs ?? { initial: 800, max: 30_000 };
    this.delay = this.backoff.initial;
  }

  /** Starts the list/watch loop; resolves once the first list is cached (or on stop before that). */
  start(): Promise<void> {
    if (this.running) throw new Error(`informer ${this.opts.name} already started`);
    if (this.stopped) throw new Error(`informer ${this.opts.name} was stopped and cannot restart`);
    this.running = true;
    const synced = new Promise<void>((resolve) => (this.onSynced = resolve));
    const resyncMs = this.opts.resyncMs ?? 5 * 60_000;
    if (resyncMs > 0) this.resyncTimer = setInterval(() => this.resync(), resyncMs);
    this.loop().catch((err: unknown) => this.log.error({ err }, 'informer loop ended unexpectedly'));
    return synced;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    clearTimeout(this.sleepTimer);
    this.wake?.();
    this.endWatch?.();
    this.onSynced?.();
  }

  hasSynced(): boolean {
    return this.synced;
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  private async loop(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      if (needList && !(await this.relist())) {
        await this.sleep(this.nextDelay());
        continue;
      }
      needList = false;
      const end = await this.watchOnce();
      if (this.stopped) return;
      // Backoff resets only on proof of progress, so a server that answers every fresh watch with
      // an error (or 410) is retried ever more slowly instead of being hammered with lists.
      if (end.events > 0) this.delay = this.backoff.initial;
      const retryInMs = this.nextDelay();
      const ctx = { err: end.err, resourceVersion: this.resourceVersion, retryInMs };
      if (end.gone) {
        // The server compacted past our resourceVersion: only a fresh list can catch up.
        this.log.info(ctx, 'watch expired (410), relisting');
        needList = true;
      } else if (end.err !== undefined) {
        this.log.warn(ctx, 'watch failed');
      } else {
        this.log.debug(ctx, 'watch closed');
      }
      await this.sleep(retryInMs);
    }
  }

  /** Lists and replaces the cache, emitting the difference; false on failure. */
  private async relist(): Promise<boolean> {
    let result: { items: T[]; resourceVersion: string };
    try {
      result = await this.opts.list();
    } catch (err) {
      this.log.error({ err, retryInMs: this.delay }, 'list failed');
      return false;
    }
    if (this.stopped) return true;
    const previous = new Map(this.cache);
    this.cache.clear();
    for (const obj of result.items) {
      const key = objectKey(obj);
      if (key === undefined) continue;
      this.cache.set(key, obj);
      const old = previous.get(key);
      previous.delete(key);
      if (!old) this.emit(key, obj, 'ADDED');
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit(key, obj, 'MODIFIED', old);
    }
    for (const [key, old] of previous) this.emit(key, old, 'DELETED');
    this.resourceVersion = result.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      this.log.info({ objects: this.cache.size, resourceVersion: this.resourceVersion }, 'cache synced');
      this.onSynced?.();
    }
    return true;
  }

  /** Runs one watch until it ends; never rejects. */
  private watchOnce(): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let ended = false;
      let events = 0;
      const end = (gone: boolean, err?: unknown): void => {
        if (ended) return;
        ended = true;
        this.endWatch = undefined;
        this.watchHandle?.abort();
        this.watchHandle = undefined;
        resolve({ gone, err, events });
      };
      this.endWatch = () => end(false);
      const onEvent = (type: WatchEventType, obj: any): void => {
        if (ended || this.stopped) return;
        if (type === 'ERROR') {
          end(statusCode(obj) === 410, obj);
          return;
        }
        events++;
        this.apply(type, obj);
      };
      const onDone = (err?: unknown): void => end(statusCode(err) === 410, err ?? undefined);
      this.opts.watch(this.resourceVersion, onEvent, onDone).then(
        (handle) => {
          if (ended) handle.abort();
          else this.watchHandle = handle;
        },
        (err: unknown) => end(statusCode(err) === 410, err),
      );
    });
  }

  private apply(type: WatchEventType, obj: any): void {
    const rv: unknown = obj?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (typeof rv === 'string' && rv) this.resourceVersion = rv;
      return;
    }
    const key = obj ? objectKey(obj as T) : undefined;
    if (key === undefined || (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED')) {
      this.log.warn({ type }, 'ignoring unexpected watch event');
      return;
    }
    const previous = this.cache.get(key);
    if (type === 'DELETED') this.cache.delete(key);
    else this.cache.set(key, obj as T);
    if (typeof rv === 'string' && rv) this.resourceVersion = rv;
    this.emit(key, obj as T, type, type === 'MODIFIED' ? previous : undefined);
  }

  private resync(): void {
    if (!this.synced || this.stopped) return;
    for (const [key, obj] of this.cache) this.emit(key, obj, 'RESYNC');
  }

  private emit(key: string, obj: T | undefined, type: ChangeType, previous?: T): void {
    try {
      this.opts.onChange(key, obj, type, previous);
    } catch (err) {
      this.log.error({ err, key, type }, 'onChange handler threw');
    }
  }

  private nextDelay(): number {
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.backoff.max);
    return delay;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      this.sleepTimer = setTimeout(() => this.wake?.(), ms);
    });
  }
}

/** What an informer's source needs of an API client: wire JSON reads and watches (Kube, or the intake thread's RestClient). */
export interface ObjectReader {
  getJSON(path: string, query?: Query): Promise<Record<string, unknown>>;
  watch(path: string, query?: Query): WatchFn;
}

/** list + watch of one casefile.dev custom resource across namespaces, optionally by label selector. */
export function customObjectSource<T extends ObjectWithMeta>(
  api: ObjectReader,
  plural: string,
  labelSelector?: string,
): Pick<InformerOptions<T>, 'list' | 'watch'> {
  const path = `/apis/${GROUP}/${VERSION}/${plural}`;
  return {
    list: async () => {
      const list = (await api.getJSON(path, { labelSelector })) as unknown as { items: T[]; metadata: { resourceVersion: string } };
      return { items: list.items, resourceVersion: list.metadata.resourceVersion };
    },
    watch: api.watch(path, { labelSelector }),
  };
}
