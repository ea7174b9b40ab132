// Intake's metrics cross the thread boundary in batches: the intake thread records into a
// MetricsBatch and posts it about once a second; the main thread, which owns the prom-client registry
// behind /metrics, replays it. Histogram observations travel one by one (a few hundred per second at
// most), so the buckets, sums and counts on /metrics are exactly what observing in place would give.
import type { Metrics } from '../engine/metrics.js';
import type { IntakeOutcome } from './server.js';

/** What intake reports: alert outcomes, request durations by status code, journal fsync durations. */
export interface IntakeObserver {
  outcome(outcome: IntakeOutcome, n?: number): void;
  request(seconds: number, code: number): void;
  fsync(seconds: number): void;
}

/** A structured-clone-safe summary of observations since the last take(). */
export interface IntakeMetricsBatch {
  outcomes: Partial<Record<IntakeOutcome, number>>;
  requests: Record<string, number[]>;
  fsyncs: number[];
}

export class MetricsBatch implements IntakeObserver {
  private batch = MetricsBatch.empty();
  private size = 0;

  private static empty(): IntakeMetricsBatch {
    return { outcomes: {}, requests: {}, fsyncs: [] };
  }

  outcome(outcome: IntakeOutcome, n = 1): void {
    this.batch.outcomes[outcome] = (this.batch.outcomes[outcome] ?? 0) + n;
    this.size++;
  }

  request(seconds: number, code: number): void {
    (this.batch.requests[String(code)] ??= []).push(seconds);
    this.size++;
  }

  fsync(seconds: number): void {
    this.batch.fsyncs.push(seconds);
    this.size++;
  }

  /** The observations so far (undefined when there were none), and a fresh batch. */
  take(): IntakeMetricsBatch | undefined {
    if (this.size === 0) return undefined;
    const batch = this.batch;
    this.batch = MetricsBatch.empty();
    this.size = 0;
    return batch;
  }
}

/** Feeds a batch into an observer, as if each observation had been made there. */
export function replayBatch(batch: IntakeMetricsBatch, into: IntakeObserver): void {
  for (const [outcome, n] of Object.entries(batch.outcomes)) into.outcome(outcome as IntakeOutcome, n);
  for (const [code, seconds] of Object.entries(batch.requests)) for (const s of seconds) into.request(s, Number(code));
  for (const s of batch.fsyncs) into.fsync(s);
}

/** The operator's registry as an IntakeObserver. */
export function metricsObserver(metrics: Metrics): IntakeObserver {
  return {
    outcome: (outcome, n = 1) => metrics.intakeAlerts.inc({ outcome }, n),
    request: (seconds, code) => metrics.intakeDuration.observe({ code: String(code) }, seconds),
    fsync: (seconds) => metrics.journalFsync.observe(seconds),
  };
}
