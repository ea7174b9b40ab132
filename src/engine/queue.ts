// A rate-limited work queue with client-go workqueue semantics: a key is queued at most once, is
// never processed by two workers at once, and a key added while it is being processed runs once
// more afterwards, so no change is lost and no reconcile races itself.
import { pino, type Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { RepeatFilter } from './repeat-filter.js';

export interface ReconcileResult {
  /** Run the key again after this delay; not a failure (backoff is reset). */
  requeueAfterMs?: number;
}

export type ReconcileOutcome = 'success' | 'requeue' | 'error';

/** Hooks for metrics; the queue name is known to whoever builds them. */
export interface WorkQueueMetrics {
  /** Keys ready to run (not delayed, not in flight), reported whenever the number changes. */
  depth?(depth: number): void;
  /** Seconds between a key becoming ready and a worker taking it. */
  queueLatency?(seconds: number): void;
  /** One finished handler run. */
  reconciled?(seconds: number, outcome: ReconcileOutcome): void;
  /** A failed key was scheduled to run again after `delayMs` (its `failures`-th consecutive failure). */
  retry?(key: string, failures: number, delayMs: number): void;
}

export interface WorkQueueOptions {
  name: string;
  workers: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  qps?: number;
  burst?: number;
  log?: Logger;
  onMetrics?: WorkQueueMetrics;
}

export type ReconcileHandler = (key: string) => Promise<ReconcileResult | void>;

/** Token bucket: `burst` tokens, refilled at `qps` per second. */
class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes a token and returns 0, or returns the milliseconds until one is available. */
  take(): number {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.qps);
  }
}

export class WorkQueue {
  private readonly log: Logger;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly limiter: TokenBucket;
  private readonly metrics: WorkQueueMetrics;

  /** Ready keys in FIFO order; a key is here only if it is dirty and not processing. */
  private readonly ready: string[] = [];
  /** Keys that need a run: queued, or added again while processing. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly readySince = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  /** A key failing the same way is logged once a minute, with the number of repeats, not on every retry. */
  private readonly repeats = new RepeatFilter();
  private pumpTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly handler: ReconcileHandler,
    private readonly opts: WorkQueueOptions,
  ) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new Error(`workqueue ${opts.name}: workers must be >= 1`);
    this.baseDelayMs = opts.baseDelayMs ?? 250;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
    const qps = opts.qps ?? 20;
    const burst = opts.burst ?? 100;
    if (!(qps > 0) || !(burst >= 1)) throw new Error(`workqueue ${opts.name}: qps must be > 0 and burst >= 1`);
    this.limiter = new TokenBucket(qps, burst);
    this.log = (opts.log ?? pino()).child({ workqueue: opts.name });
    this.metrics = opts.onMetrics ?? {};
  }

  get depth(): number {
    return this.ready.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  add(key: string): void {
    if (this.stopped || this.dirty.has(key)) return;
    this.dirty.add(key);
    // A key in flight is re-queued when its run ends (see finish), never run concurrently.
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  /** Adds `key` after `ms`; an earlier pending time for the key wins, one timer per key. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = performance.now() + ms;
    const pending = this.delayed.get(key);
    if (pending) {
      if (pending.at <= at) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  start(): void {
    if (this.stopped) throw new Error(`workqueue ${this.opts.name} was stopped and cannot restart`);
    this.started = true;
    this.pump();
  }

  /** Stops taking work (queued and delayed keys are dropped) and resolves when no handler runs. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pumpTimer);
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.ready.length = 0;
    this.dirty.clear();
    this.readySince.clear();
    this.emit('depth', () => this.metrics.depth?.(0));
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(key: string): void {
    this.ready.push(key);
    this.readySince.set(key, performance.now());
    this.emit('depth', () => this.metrics.depth?.(this.ready.length));
    this.pump();
  }

  /** Starts as many ready keys as workers and the rate limit allow. */
  private pump(): void {
    if (this.pumpTimer) return; // already waiting for a token
    while (this.started && !this.stopped && this.ready.length > 0 && this.processing.size < this.opts.workers) {
      const waitMs = this.limiter.take();
      if (waitMs > 0) {
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, waitMs);
        return;
      }
      const key = this.ready.shift()!;
      this.dirty.delete(key);
      this.processing.add(key);
      const since = this.readySince.get(key)!;
      this.readySince.delete(key);
      this.emit('depth', () => this.metrics.depth?.(this.ready.length));
      this.emit('queueLatency', () => this.metrics.queueLatency?.((performance.now() - since) / 1000));
      void this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    const start = performance.now();
    let outcome: ReconcileOutcome;
    try {
      // Deferred so a synchronous throw is caught and the handler never runs inside add()'s caller.
      const result = await Promise.resolve().then(() => this.handler(key));
      this.failures.delete(key);
      this.repeats.forget(key);
      const after = result?.requeueAfterMs;
      if (after !== undefined && after >= 0) {
        outcome = 'requeue';
        this.addAfter(key, after);
      } else {
        outcome = 'success';
      }
    } catch (err) {
      outcome = 'error';
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      const delayMs = this.backoff(failures);
      const held = this.repeats.admit(key, errorMessage(err));
      if (held !== undefined) this.log.error({ err, key, failures, retryInMs: delayMs, repeats: held }, 'reconcile failed');
      if (!this.stopped) this.emit('retry', () => this.metrics.retry?.(key, failures, delayMs));
      this.addAfter(key, delayMs);
    }
    const seconds = (performance.now() - start) / 1000;
    this.emit('reconciled', () => this.metrics.reconciled?.(seconds, outcome));
    this.finish(key);
  }

  private finish(key: string): void {
    this.processing.delete(key);
    if (this.stopped) {
      if (this.processing.size === 0) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      }
      return;
    }
    if (this.dirty.has(key)) this.enqueue(key);
    else this.pump();
  }

  /** Deterministic exponential backoff: base * 2^(failures-1), capped. */
  private backoff(failures: number): number {
    return Math.min(this.baseDelayMs * 2 ** Math.min(failures - 1, 64), this.maxDelayMs);
  }

  /** A failing metrics hook must not corrupt queue state. */
  private emit(hook: keyof WorkQueueMetrics, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.log.warn({ err, hook }, 'workqueue metrics hook failed');
    }
  }
}
