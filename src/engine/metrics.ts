// Prometheus metrics on the operator's /metrics: reconcile and phase durations, queue depth,
// investigations by phase, evidence bytes written, alert intake (outcomes, latency, journal fsync) and
// the audit receiver (events kept or skipped, store size).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditObserver } from '../audit/service.js';
import type { WorkQueueMetrics } from './queue.js';

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileDuration = new Histogram({
    name: 'casefile_reconcile_duration_seconds',
    help: 'Time to reconcile one Investigation key, by queue (investigations, containment) and outcome.',
    labelNames: ['queue', 'outcome'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly phaseDuration = new Histogram({
    name: 'casefile_phase_duration_seconds',
    help: 'Time one phase took, by phase and resulting condition status.',
    labelNames: ['phase', 'status'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'casefile_workqueue_depth', help: 'Keys waiting in a work queue, by queue.', labelNames: ['queue'], registers: [this.registry] });
  readonly queueDuration = new Histogram({
    name: 'casefile_workqueue_queue_duration_seconds',
    help: 'Time a key waited in a work queue, ready, before a worker took it (the rate limit and busy workers), by queue.',
    labelNames: ['queue'],
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly retries = new Counter({ name: 'casefile_workqueue_retries_total', help: 'Keys requeued after a failed run, by queue.', labelNames: ['queue'], registers: [this.registry] });
  readonly evidenceBytes = new Counter({ name: 'casefile_evidence_bytes_written_total', help: 'Bytes of evidence written to case files.', registers: [this.registry] });
  readonly intakeAlerts = new Counter({
    name: 'casefile_intake_alerts_total',
    help:
      'Alerts posted to the intake endpoint, by outcome: rejections (unauthenticated, invalid, too_large, unsupported_media_type), ' +
      'journal_full (503: the journal reached --intake-journal-max-bytes), ' +
      'no_pod (no pod, or the alert\'s container.id is not one of the named pod\'s), unmatched, accepted (journaled), matched and dry_run (per matching policy), ' +
      'rate_limited (per Investigation creation held back), name_taken (an Investigation casefile did not open held a case\'s name: the case opened under another), ' +
      'namespace_gone (per case whose namespace was deleted before its Investigation could be created: its alerts are acknowledged, nothing opened).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly intakeDuration = new Histogram({
    name: 'casefile_intake_request_duration_seconds',
    help: 'Time from an intake request to its answer, by HTTP status code.',
    labelNames: ['code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly auditEvents = new Counter({
    name: 'casefile_audit_events_total',
    help: 'Audit events received from the API server, by outcome: kept (in the rolling store) or skipped (not a final stage, malformed, oversized).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly auditStoreBytes = new Gauge({ name: 'casefile_audit_store_bytes', help: 'Bytes held by the rolling audit store (both partitions).', registers: [this.registry] });
  auditObserver(): AuditObserver {
    return {
      storeBytes: (bytes) => this.auditStoreBytes.set(bytes),
      events: (kept, skipped) => {
        this.auditEvents.inc({ outcome: 'kept' }, kept);
        this.auditEvents.inc({ outcome: 'skipped' }, skipped);
      },
    };
  }
  readonly journalFsync = new Histogram({
    name: 'casefile_intake_journal_fsync_duration_seconds',
    help: 'Duration of one alert journal fsync (one per group commit).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  private readonly phases = new Map<string, string>();

  constructor() {
    const phases = this.phases;
    new Gauge({
      name: 'casefile_investigations',
      help: 'Investigations seen by this operator, by status.phase.',
      labelNames: ['phase'],
      registers: [this.registry],
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const phase of phases.values()) counts.set(phase, (counts.get(phase) ?? 0) + 1);
        for (const [phase, n] of counts) this.set({ phase }, n);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'casefile_' });
  }

  observeInvestigationPhase(key: string, phase: string | undefined): void {
    if (phase) this.phases.set(key, phase);
    else this.phases.delete(key);
  }

  queueHooks(queue: string): WorkQueueMetrics {
    return {
      depth: (n) => this.queueDepth.set({ queue }, n),
      queueLatency: (seconds) => this.queueDuration.observe({ queue }, seconds),
      reconciled: (seconds, outcome) => this.reconcileDuration.observe({ queue, outcome }, seconds),
      retry: () => this.retries.inc({ queue }),
    };
  }
}
