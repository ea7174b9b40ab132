// Runs IntakeService in its own worker thread (./service-thread.ts) so that accepting an alert never
// waits behind the reconciles it causes, and keeps it running: a thread that dies (a bug, its heap
// limit) is restarted with backoff and logged, never the operator with it. The main thread keeps what
// is process-wide: leader election (it says `lead`), the audit receiver's alerts (forwarded), the
// /metrics registry (batches replayed) and SIGTERM (it says `stop`; the thread closes its journal).
//
// The port: a thread binds it only after the main thread has let go of it. While a thread is down, a
// standby server in the main thread holds the port and answers as a replica that is not ready does
// (401 without credentials, else 503 with Retry-After), so senders retry instead of being refused.
import { Worker } from 'node:worker_threads';
import type { Investigation } from '../api/investigation.js';
import type { AuditAlert } from '../audit/alert.js';
import type { IntakeConfig } from '../config.js';
import { errorMessage } from '../errors.js';
import type { RestCredentials } from '../kube/rest.js';
import type { Logger } from '../log.js';
import { replayBatch, type IntakeMetricsBatch, type IntakeObserver } from './metrics-batch.js';
import { standbyServer, type Standby } from './standby.js';

export type IntakeThreadConfig = IntakeConfig & { port: number };

export interface IntakeThreadData {
  config: IntakeThreadConfig;
  evidenceDir: string;
}

/** Main thread → intake thread. */
export type ToIntakeThread =
  | { kind: 'listen' }
  | { kind: 'lead' }
  | { kind: 'audit-alert'; alert: AuditAlert }
  | { kind: 'credentials'; credentials: RestCredentials }
  | { kind: 'credentials'; error: string }
  | { kind: 'stop' };

/** Intake thread → main thread. `loaded`: built, waiting for the port; `stopped`: journal closed. */
export type FromIntakeThread =
  | { kind: 'loaded' }
  | { kind: 'listening'; port: number }
  | { kind: 'metrics'; batch: IntakeMetricsBatch }
  | { kind: 'opened'; investigation: Investigation }
  | { kind: 'credentials-wanted' }
  | { kind: 'stopped' };

/** The part of a Worker this bridge uses (tests pass a fake). */
export interface IntakeWorker {
  postMessage(message: ToIntakeThread): void;
  terminate(): Promise<number>;
  on(event: 'message', listener: (message: FromIntakeThread) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
}

export interface IntakeThreadOptions {
  /** The API server and this operator's identity, resolved afresh on each call (the thread asks after a minute, or a 401). */
  credentials: () => Promise<RestCredentials>;
  evidenceDir: string;
  observe: IntakeObserver;
  log: Logger;
  spawn?: (data: IntakeThreadData) => IntakeWorker;
  standby?: Standby;
  /** Delay before the n-th restart in a row (n from 0). Default 1 s doubling to 60 s. */
  backoffMs?: (n: number) => number;
  /** A thread that ran this long before it exited starts the backoff over. Default 60 s. */
  stableMs?: number;
  /** After `stop`, the thread is terminated if it has not exited within this. Default 10 s. */
  stopTimeoutMs?: number;
  /** An Investigation the thread created, as the API server returned it: for the containment lane. */
  onOpened?: (inv: Investigation) => void;
}

/**
 * The thread's heap: the policies, a pod-name cache, the pod list of a container-ID lookup, one
 * aggregate per open case and the journal's pending batch. A runaway is stopped (and the thread
 * restarted) before it can grow the operator; the bound leaves room for a large cluster's pod list.
 * Requests are short-lived garbage: a small young generation keeps a storm from growing the RSS.
 */
const THREAD_HEAP_MB = 256;
const THREAD_YOUNG_MB = 8;

function spawnWorker(data: IntakeThreadData): IntakeWorker {
  return new Worker(new URL('./service-thread.js', import.meta.url), {
    workerData: data,
    resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB, maxYoungGenerationSizeMb: THREAD_YOUNG_MB },
  }) as IntakeWorker;
}

export class IntakeThread {
  private worker?: IntakeWorker;
  /** The thread is listening: it takes messages about alerts. */
  private up = false;
  private leading = false;
  private stopping = false;
  private restarts = 0;
  private spawnedAt = 0;
  private restartTimer?: NodeJS.Timeout;
  private port: number;
  private firstStart?: { resolve: () => void; reject: (err: unknown) => void; error?: unknown };
  private exited?: () => void;
  private readonly standby: Standby;
  private readonly log: Logger;

  constructor(
    private readonly config: IntakeThreadConfig,
    private readonly opts: IntakeThreadOptions,
  ) {
    this.port = config.port;
    this.log = opts.log.child({ component: 'intake' });
    this.standby = opts.standby ?? standbyServer(config, this.log);
  }

  /**
   * Starts the thread; resolves once it listens. If the first thread cannot (a missing certificate, a
   * taken port) this rejects with its error: a start-up error, as before intake had a thread.
   */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstStart = { resolve, reject };
      this.spawn();
    });
  }

  /** This replica leads: the thread replays the journal, syncs policies and answers 202 (now, and after any restart). */
  startLeading(): void {
    this.leading = true;
    if (this.up) this.worker?.postMessage({ kind: 'lead' });
  }

  /** An alert raised from the audit trail; while no thread is up it is not acted on (the record stays in the audit store). */
  acceptAuditAlert(alert: AuditAlert): void {
    if (!this.up) return void this.log.debug({ rule: alert.rule }, 'audit alert not acted on: the intake thread is not running');
    this.worker?.postMessage({ kind: 'audit-alert', alert });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.up = false;
    clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (worker) {
      const exited = new Promise<void>((resolve) => (this.exited = resolve));
      worker.postMessage({ kind: 'stop' });
      const timer = setTimeout(() => {
        this.log.warn({ timeoutMs: this.opts.stopTimeoutMs ?? 10_000 }, 'intake thread did not stop in time: terminating it');
        void worker.terminate();
      }, this.opts.stopTimeoutMs ?? 10_000);
      await exited;
      clearTimeout(timer);
    }
    await this.standby.close();
  }

  private spawn(): void {
    const worker = (this.opts.spawn ?? spawnWorker)({ config: { ...this.config, port: this.port }, evidenceDir: this.opts.evidenceDir });
    this.worker = worker;
    this.spawnedAt = performance.now();
    worker.on('message', (message) => this.onMessage(worker, message));
    worker.on('error', (err) => {
      if (this.firstStart) this.firstStart.error = err;
      this.log.error({ err: errorMessage(err) }, 'intake thread failed');
    });
    worker.on('exit', (code) => this.onExit(worker, code));
  }

  private onMessage(worker: IntakeWorker, message: FromIntakeThread): void {
    if (worker !== this.worker) return;
    switch (message.kind) {
      case 'loaded':
        if (this.stopping) return;
        // Only now let go of the port: the gap in which it is unbound is a close and a bind.
        void this.standby.close().then(
          () => worker.postMessage({ kind: 'listen' }),
          (err: unknown) => this.log.error({ err: errorMessage(err) }, 'cannot close the standby intake server'),
        );
        return;
      case 'listening':
        this.up = true;
        this.port = message.port; // a restart binds the same port even when 0 (any) was asked
        this.firstStart?.resolve();
        this.firstStart = undefined;
        if (this.leading) worker.postMessage({ kind: 'lead' });
        return;
      case 'metrics':
        return replayBatch(message.batch, this.opts.observe);
      case 'opened':
        return this.opts.onOpened?.(message.investigation);
      case 'credentials-wanted':
        void this.opts.credentials().then(
          (credentials) => worker.postMessage({ kind: 'credentials', credentials }),
          (err: unknown) => {
            this.log.error({ err: errorMessage(err) }, 'cannot resolve API server credentials for the intake thread');
            worker.postMessage({ kind: 'credentials', error: errorMessage(err) });
          },
        );
        return;
      case 'stopped':
        void worker.terminate();
        return;
    }
  }

  private onExit(worker: IntakeWorker, code: number): void {
    if (worker !== this.worker) return;
    this.up = false;
    this.worker = undefined;
    if (this.stopping) return this.exited?.();
    if (this.firstStart) {
      const { reject, error } = this.firstStart;
      this.firstStart = undefined;
      return reject(error ?? new Error(`the intake thread exited (code ${code}) before it listened`));
    }
    if (performance.now() - this.spawnedAt >= (this.opts.stableMs ?? 60_000)) this.restarts = 0;
    const delay = (this.opts.backoffMs ?? ((n) => Math.min(60_000, 1000 * 2 ** n)))(this.restarts++);
    this.log.error({ code, restartInMs: delay }, 'intake thread exited; intake answers 503 until it is restarted');
    void this.standby.open(this.port).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'cannot bind the standby intake server: the port refuses connections until the thread is back'));
    this.restartTimer = setTimeout(() => this.stopping || this.spawn(), delay);
  }
}
