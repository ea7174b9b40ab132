// What the journal says of each case, aggregated entry by entry (replayed at start, then as each batch
// commits): how many alerts, the first and last, how far status caught up (the acknowledgement), and
// which journaled alert a missing Investigation is created from. The creation worker (./worker.ts) adds
// what it learned from the API server (exists, resourceVersion, the pacing fields).
import type { AlertEntry, InvestigationRef, JournalEntry } from './journal-format.js';

export interface CaseState {
  /** The deterministic name: what alerts and acknowledgements are journaled under. */
  origin: InvestigationRef;
  /** The Investigation's actual name: origin, or the name the case moved to. */
  ref: InvestigationRef;
  policy: string;
  podUID: string;
  count: number;
  first: string;
  last: string;
  lastSeq: number;
  ackedThrough: number;
  /** The first alert not yet acknowledged: what a missing Investigation is created from. */
  creator?: AlertEntry;
  latest?: AlertEntry;
  exists: boolean;
  resourceVersion?: string;
  notBefore: number;
  held: boolean;
  releasedLogged: boolean;
  /** Its namespace was found deleted (logged and counted once). */
  gone: boolean;
}

export const keyOf = (ref: InvestigationRef) => `${ref.namespace}/${ref.name}`;

/** Moves the acknowledgement mark: the alerts up to `through` need nothing more, not even a create. */
export function acknowledge(s: CaseState, through: number): void {
  s.ackedThrough = Math.max(s.ackedThrough, through);
  if (s.creator && s.creator.seq <= s.ackedThrough) s.creator = undefined;
  if (s.latest && s.latest.seq <= s.ackedThrough) s.latest = undefined;
}

/** Feeds one journal entry (replayed or just committed) into the aggregates, by the case's journaled key. */
export function observeEntry(cases: Map<string, CaseState>, entry: JournalEntry): void {
  const key = keyOf(entry.investigation);
  if (entry.type === 'moved') {
    const s = cases.get(key);
    if (s) s.ref = { namespace: s.origin.namespace, name: entry.to };
    return;
  }
  if (entry.type === 'ack') {
    const s = cases.get(key);
    if (!s) return;
    acknowledge(s, entry.throughSeq);
    return;
  }
  let s = cases.get(key);
  if (!s) {
    s = {
      origin: entry.investigation,
      ref: entry.investigation,
      policy: `${entry.policy.namespace}/${entry.policy.name}`,
      podUID: entry.type === 'case' ? entry.podUID : entry.pod.uid,
      count: 0,
      first: entry.type === 'case' ? entry.first : entry.receivedAt,
      last: entry.type === 'case' ? entry.last : entry.receivedAt,
      lastSeq: 0,
      ackedThrough: 0,
      exists: false,
      notBefore: 0,
      held: false,
      releasedLogged: false,
      gone: false,
    };
    cases.set(key, s);
  }
  if (entry.type === 'case') {
    // A checkpoint's summary of alerts it no longer holds one by one.
    s.count += entry.count;
    if (entry.first < s.first) s.first = entry.first;
    if (entry.last > s.last) s.last = entry.last;
    s.lastSeq = Math.max(s.lastSeq, entry.lastSeq);
    acknowledge(s, entry.ackedThrough);
    return;
  }
  s.count++;
  if (entry.receivedAt < s.first) s.first = entry.receivedAt;
  if (entry.receivedAt > s.last) s.last = entry.receivedAt;
  s.lastSeq = Math.max(s.lastSeq, entry.seq);
  if (entry.seq > s.ackedThrough) {
    s.creator ??= entry;
    s.latest = entry;
  }
}
