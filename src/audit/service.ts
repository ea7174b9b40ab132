// Runs the audit receiver in its own worker thread and keeps it running: a thread that dies (a bug,
// the heap limit under a flood) is restarted with backoff, as a watch is, never the operator with it.
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditRecord } from './record.js';
import type { AuditStoreLimits } from './store.js';

export interface AuditReceiverConfig {
  port: number;
  tlsCert: string;
  tlsKey: string;
  clientCA: string;
  allowedNames: string[];
  maxBodyBytes: number;
  limits: AuditStoreLimits;
}

export type AuditThreadData = AuditReceiverConfig & { evidenceDir: string };

export type AuditThreadMessage =
  | { kind: 'listening'; port: number; storeBytes: number }
  | { kind: 'pod-access'; record: AuditRecord }
  | { kind: 'batch'; events: number; kept: number; skipped: number; prunedSegments: number; storeBytes: number };

/** The receiver thread's heap: a flood is refused (the thread restarts) before it can grow the operator. */
const THREAD_HEAP_MB = 160;

/** What the operator's metrics learn from the receiver thread. */
export interface AuditObserver {
  storeBytes(bytes: number): void;
  events(kept: number, skipped: number): void;
}

/** Someone got into a pod (exec, attach, port-forward, an ephemeral container): intake may open a case. */
export type PodAccessHandler = (record: AuditRecord) => void;

export class AuditService {
  private worker?: Worker;
  private stopping = false;
  private restarts = 0;

  constructor(
    private readonly config: AuditReceiverConfig,
    private readonly deps: { evidenceDir: string; log: Logger; observe?: AuditObserver; onPodAccess?: PodAccessHandler },
  ) {}

  /**
   * Starts the thread, and restarts it with backoff whenever it exits (a missing certificate, a taken
   * port, a crash): the operator runs on without audit events meanwhile, and the log says why.
   */
  start(): void {
    this.spawn();
  }

  private spawn(): void {
    const data: AuditThreadData = { ...this.config, evidenceDir: this.deps.evidenceDir };
    const worker = new Worker(new URL('./receiver-thread.js', import.meta.url), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB } });
    this.worker = worker;
    worker.on('message', (message: AuditThreadMessage) => {
      if (message.kind === 'pod-access') return this.deps.onPodAccess?.(message.record);
      this.deps.observe?.storeBytes(message.storeBytes);
      if (message.kind === 'listening') {
        this.deps.log.info({ port: message.port, storeBytes: message.storeBytes }, 'audit receiver listening');
        this.restarts = 0;
        return;
      }
      this.deps.observe?.events(message.kept, message.skipped);
    });
    worker.on('error', (err) => this.deps.log.error({ err: errorMessage(err) }, 'audit receiver thread failed'));
    worker.on('exit', (code) => {
      if (this.stopping) return;
      const delay = Math.min(60_000, 1000 * 2 ** this.restarts++);
      this.deps.log.error({ code, restartInMs: delay }, 'audit receiver thread exited; restarting');
      setTimeout(() => this.stopping || this.spawn(), delay).unref();
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage('stop');
    const timer = setTimeout(() => void worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
