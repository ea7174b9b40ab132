// The one place that sorts errors. Workers (phases, release steps) throw; the reconciler asks
// `classify` what the error means and applies the verdict the same way everywhere:
// - terminal: the condition turns False with a reason, written once, never retried;
// - wait: the condition stays Unknown and the key comes back after a delay (no poll inside a worker);
// - retry: the condition stays Unknown and the queue retries with exponential backoff.
import { errorMessage, RequeueAfter, RetryableError, rootCause, TerminalError } from '../errors.js';
import { evidenceErrorReason } from '../evidence/store.js';
import { errorCode } from '../kube/errors.js';

export type Verdict =
  | { kind: 'terminal'; reason: string; message: string }
  | { kind: 'wait'; reason: string; message: string; afterMs: number }
  | { kind: 'retry'; reason: string; message: string };

export function classify(err: unknown): Verdict {
  const message = errorMessage(err);
  const cause = rootCause(err);
  if (cause instanceof TerminalError) return { kind: 'terminal', reason: cause.reason, message };
  if (cause instanceof RequeueAfter) return { kind: 'wait', reason: cause.reason, message, afterMs: cause.afterMs };
  if (cause instanceof RetryableError) return { kind: 'retry', reason: cause.reason, message };
  // A full or unwritable evidence volume does not heal by itself: an operator must act.
  const store = evidenceErrorReason(cause);
  if (store) return { kind: 'terminal', reason: store, message: `writing evidence failed: ${message}` };
  switch (errorCode(cause)) {
    case 403:
      return { kind: 'terminal', reason: 'Forbidden', message: `${message}; grant the operator this permission (config/rbac), then re-apply the Investigation` };
    case 400:
    case 422:
      return { kind: 'terminal', reason: 'Invalid', message };
    case 409:
      return { kind: 'retry', reason: 'Conflict', message };
    default:
      // 404 of something expected, 429, 5xx, timeouts, resets: the cluster's trouble, likely to pass.
      return { kind: 'retry', reason: 'Retrying', message };
  }
}

/** A worker's verdict that stops this reconcile: wait, or retry with backoff (the queue's). */
export class Stop {
  constructor(readonly verdict: Verdict & { kind: 'wait' | 'retry' }, readonly cause: unknown) {}
}
