// The asynchronous half of intake (leader only): for each Investigation that journaled alerts point
// at, create it if it is missing (rate-limited per namespace and per policy), then set status.alerts
// to { count, first, last } computed from the journal. The values are absolute, so replaying the
// journal after a restart and writing them again is idempotent. Writes are merge patches of only
// status.alerts, guarded by resourceVersion (the reconciler writes status too) and batched to at most
// one per Investigation every batchMs, and to a budget across all of them (a storm over many pods must
// not turn into a hundred status writes a second, each one a watch event and a reconcile). When status caught up, an `ack` line in the journal says so:
// on replay, a case whose alerts are all acknowledged needs nothing (and is not re-created if someone
// deleted it since).
//
// The name is deterministic, so anyone who may create Investigations in the namespace can create one
// with it first. An existing Investigation is attached to only if it is this case: casefile's label,
// this policy's annotation and the alert's pod UID as target. Otherwise the case opens under a moved
// name (`<name>-<8 hex>`), journaled so every replica and restart uses the same one.
//
// A case whose namespace is gone (404 naming the namespace on create) can never be opened: its alerts
// are acknowledged in the journal, so neither this worker nor a replay retries them forever.
import { randomBytes } from 'node:crypto';
import type { Investigation } from '../api/investigation.js';
import { isConflict, isNamespaceNotFound, isNotFound } from '../kube/errors.js';
import { WorkQueue } from '../engine/queue.js';
import type { Logger } from '../log.js';
import { buildInvestigation, isCasefileCase, type InvestigationBody } from './investigation-factory.js';
import type { Ahead } from './isolate-ahead.js';
import type { AlertJournal } from './journal.js';
import type { AlertEntry, InvestigationRef, JournalEntry } from './journal-format.js';
import { acknowledge, keyOf, observeEntry, type CaseState } from './case-aggregate.js';
import { KeyedRateLimiter } from './rate-limit.js';

export interface AlertsStatus {
  count: number;
  first: string;
  last: string;
}

/** The few Investigation calls the worker makes (errors carry the HTTP code: 404, 409). */
export interface InvestigationApi {
  create(body: InvestigationBody): Promise<Investigation>;
  get(ref: InvestigationRef): Promise<Investigation | undefined>;
  /** Merge patch of status.alerts carrying `resourceVersion`; 409 if the object changed since. */
  patchAlerts(ref: InvestigationRef, resourceVersion: string, alerts: AlertsStatus): Promise<Investigation>;
}

export interface AlertWorkerOptions {
  api: InvestigationApi;
  journal: () => AlertJournal | undefined;
  limiter: KeyedRateLimiter;
  log: Logger;
  /** Minimum time between two status.alerts writes of one Investigation. Default 500 ms. */
  batchMs?: number;
  /** status.alerts writes (and the reads before them) across all Investigations. Default 10/s, burst 20. */
  statusWrites?: { rate: number; burst: number };
  /** Delay of the first status.alerts write after creating an Investigation, so its first reconcile is not made to retry. Default 1000 ms. */
  afterCreateMs?: number;
  workers?: number;
  onRateLimited?: () => void;
  /** An Investigation someone else created holds the case's name: the case moved to another name. */
  onNameTaken?: () => void;
  /** An Investigation was created (as the API server returned it): ContainFirst's lane need not wait for the watch. */
  onOpened?: (inv: Investigation) => void;
  /** ContainFirst: isolates the pod at once with openAhead's create (./isolate-ahead.ts); undefined for a case that does not isolate. */
  isolateAhead?: (body: InvestigationBody) => Ahead | undefined;
  /** The case's namespace was deleted before its Investigation could be created: its alerts are acknowledged, nothing opened. */
  onNamespaceGone?: () => void;
  now?: () => number;
}

/** `<name>-<8 hex>`, still a DNS-1123 label of at most 63 characters. */
function movedName(name: string): string {
  return `${name.slice(0, 54).replace(/-+$/, '')}-${randomBytes(4).toString('hex')}`;
}

function isReleased(inv: Investigation): boolean {
  return (inv.spec as { release?: unknown } | undefined)?.release === true || inv.status?.phase === 'Released';
}

export class AlertWorker {
  private readonly cases = new Map<string, CaseState>();
  /** ContainFirst creates made while their alert was being journaled (openAhead), by case key: taken by create(). */
  private readonly ahead = new Map<string, Promise<Investigation | undefined>>();
  private readonly queue: WorkQueue;
  private readonly now: () => number;
  private readonly batchMs: number;
  private readonly statusWrites: KeyedRateLimiter;

  constructor(private readonly opts: AlertWorkerOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.batchMs = opts.batchMs ?? 500;
    const budget = opts.statusWrites ?? { rate: 10, burst: 20 };
    this.statusWrites = new KeyedRateLimiter(() => budget, this.now);
    this.queue = new WorkQueue((key) => this.process(key), {
      name: 'intake',
      workers: opts.workers ?? 4,
      // Batching bounds the API calls; this limit only has to let 2 runs/s per active case through.
      qps: 500,
      burst: 1000,
      log: opts.log,
    });
  }

  /** Feeds one journal entry (replayed or just committed) into the per-Investigation aggregates. */
  observe(entry: JournalEntry): void {
    observeEntry(this.cases, entry);
  }

  /** Starts processing every Investigation with unacknowledged alerts. */
  start(): void {
    this.queue.start();
    for (const [key, s] of this.cases) if (s.lastSeq > s.ackedThrough) this.queue.add(key);
  }

  /**
   * ContainFirst: creates the Investigation while its alert is still being journaled, not after, so
   * containment does not also wait for the fsync; a case that isolates its pod has it isolated at once
   * with the create (isolateAhead), not after it. Only a case not known to exist, under its derived
   * name, within the rate limit; anything else (a conflict, a moved name, a limit, a failure) is left to
   * process(), which creates or attaches from the journaled alert as for any other case. Nothing is lost
   * if the journal write then fails: the sender is told to retry, and the retry attaches to this case.
   */
  openAhead(entries: readonly Omit<AlertEntry, 'seq'>[]): void {
    for (const entry of entries) {
      if ((entry.template as { containment?: { order?: unknown } }).containment?.order !== 'ContainFirst') continue;
      const key = keyOf(entry.investigation);
      if (this.cases.get(key)?.exists || this.ahead.has(key)) continue;
      if (this.opts.limiter.take([`namespace:${entry.investigation.namespace}`, `policy:${entry.policy.namespace}/${entry.policy.name}`]) > 0) continue;
      const body = buildInvestigation(entry);
      // Only a case the journal has never seen: one seen before may exist, released, and its pod is not re-isolated even briefly.
      const isolation = this.cases.has(key) ? undefined : this.opts.isolateAhead?.(body);
      const made = this.opts.api.create(isolation?.body ?? body).then(
        (inv) => {
          void isolation?.settle(inv);
          this.opts.onOpened?.(inv);
          return inv;
        },
        () => {
          void isolation?.settle(undefined);
          return undefined;
        },
      );
      this.ahead.set(key, made);
    }
  }

  /** After a journal commit: aggregate and schedule. */
  committed(entries: readonly JournalEntry[]): void {
    for (const e of entries) {
      this.observe(e);
      if (e.type === 'alert') this.queue.add(keyOf(e.investigation));
    }
  }

  stop(): Promise<void> {
    return this.queue.stop();
  }

  /** The aggregate for an Investigation (tests, debugging). */
  alerts(ref: InvestigationRef): (AlertsStatus & { lastSeq: number; ackedThrough: number }) | undefined {
    const s = this.cases.get(keyOf(ref));
    return s && { count: s.count, first: s.first, last: s.last, lastSeq: s.lastSeq, ackedThrough: s.ackedThrough };
  }

  private async process(key: string): Promise<{ requeueAfterMs: number } | void> {
    const s = this.cases.get(key);
    if (!s || s.lastSeq <= s.ackedThrough) return;
    const log = this.opts.log.child({ investigation: key, policy: s.policy });
    if (!s.exists) {
      const held = await this.create(s, log);
      if (held === 'gone') return;
      if (held !== undefined) return { requeueAfterMs: held };
    }
    const wait = s.notBefore - this.now();
    if (wait > 0) return { requeueAfterMs: wait };
    const held = this.statusWrites.take(['status']);
    if (held > 0) return { requeueAfterMs: held };

    const alerts: AlertsStatus = { count: s.count, first: s.first, last: s.last };
    const through = s.lastSeq;
    if (s.resourceVersion === undefined) {
      const inv = await this.opts.api.get(s.ref);
      if (!inv) {
        s.exists = false; // deleted since: the new alerts open it again
        return { requeueAfterMs: 0 };
      }
      if (!isCasefileCase(inv, s.policy, s.podUID)) {
        await this.move(s, inv, log);
        return { requeueAfterMs: 0 };
      }
      this.noteReleased(s, inv, log);
      if ((inv.status?.alerts?.count ?? -1) >= alerts.count) {
        // Already written (by a previous leader, or before a conflict): only the acknowledgement is missing.
        await this.ack(s, through, alerts.count, log);
        return s.lastSeq > s.ackedThrough ? { requeueAfterMs: 0 } : undefined;
      }
      s.resourceVersion = inv.metadata.resourceVersion;
    }
    try {
      const inv = await this.opts.api.patchAlerts(s.ref, s.resourceVersion!, alerts);
      s.resourceVersion = inv.metadata.resourceVersion;
      this.noteReleased(s, inv, log);
    } catch (err) {
      s.resourceVersion = undefined;
      if (isConflict(err)) return { requeueAfterMs: 20 }; // the reconciler wrote meanwhile: re-read, try again
      if (isNotFound(err)) {
        s.exists = false;
        return { requeueAfterMs: 0 };
      }
      throw err;
    }
    s.notBefore = this.now() + this.batchMs;
    await this.ack(s, through, alerts.count, log);
    return s.lastSeq > s.ackedThrough ? { requeueAfterMs: this.batchMs } : undefined;
  }

  /** Creates the Investigation; returns the milliseconds to wait when the rate limit holds it back, 'gone' when its namespace is. */
  private async create(s: CaseState, log: Logger): Promise<number | 'gone' | undefined> {
    const entry = s.creator ?? s.latest;
    if (!entry) throw new Error(`no journaled alert to create ${keyOf(s.ref)} from`);
    // Made while its alert was being journaled (the rate limit was taken then); a failed one is made here.
    const ahead = this.ahead.get(keyOf(s.origin));
    if (ahead) {
      this.ahead.delete(keyOf(s.origin));
      const inv = await ahead;
      if (inv && keyOf(s.ref) === keyOf(s.origin)) return this.opened(s, inv, entry, log);
    }
    const waitMs = this.opts.limiter.take([`namespace:${s.ref.namespace}`, `policy:${s.policy}`]);
    if (waitMs > 0) {
      if (!s.held) {
        s.held = true;
        this.opts.onRateLimited?.();
        log.warn({ retryInMs: waitMs, alerts: s.count }, 'creation rate limit reached: Investigation held back (its alerts are journaled; it is created when the limit allows)');
      }
      return waitMs;
    }
    s.held = false;
    let inv: Investigation;
    try {
      inv = await this.opts.api.create(buildInvestigation(entry, s.ref));
    } catch (err) {
      if (isNamespaceNotFound(err)) {
        await this.dropGone(s, log);
        return 'gone';
      }
      if (!isConflict(err)) throw err;
      // AlreadyExists: the open case for this pod and policy; the alert attaches to it.
      s.resourceVersion = undefined;
      s.exists = true;
      return undefined;
    }
    this.opts.onOpened?.(inv);
    return this.opened(s, inv, entry, log);
  }

  private opened(s: CaseState, inv: Investigation, entry: AlertEntry, log: Logger): undefined {
    s.resourceVersion = inv.metadata.resourceVersion;
    s.notBefore = this.now() + (this.opts.afterCreateMs ?? 1000);
    s.exists = true;
    log.info({ pod: entry.pod.name, podUID: entry.pod.uid, rule: entry.alert.rule, seq: entry.seq }, 'Investigation opened from an alert');
    return undefined;
  }

  /** Someone else's Investigation holds the name: journal a new name for the case and open it there. */
  private async move(s: CaseState, squatter: Investigation, log: Logger): Promise<void> {
    const to = movedName(s.origin.name);
    // Journaled first: if this fails, the next attempt draws a new name, and nothing was created under this one.
    await this.opts.journal()?.append([{ type: 'moved', at: new Date().toISOString(), investigation: s.origin, to }]);
    log.warn(
      { taken: keyOf(s.ref), movedTo: `${s.ref.namespace}/${to}`, holder: { uid: squatter.metadata.uid, labels: squatter.metadata.labels ?? {}, annotations: squatter.metadata.annotations ?? {} } },
      "an Investigation casefile did not open for this case holds its name: not attaching the alerts to it; the case opens under another name",
    );
    this.opts.onNameTaken?.();
    s.ref = { namespace: s.origin.namespace, name: to };
    s.exists = false;
    s.resourceVersion = undefined;
  }

  /** Terminal: acknowledge every alert so far, so the queue and a replay skip the case. */
  private async dropGone(s: CaseState, log: Logger): Promise<void> {
    if (!s.gone) {
      s.gone = true;
      this.opts.onNamespaceGone?.();
      log.warn({ namespace: s.ref.namespace, alerts: s.count }, "the case's namespace no longer exists: no Investigation opened, its alerts are acknowledged and not retried");
    }
    await this.ack(s, s.lastSeq, s.count, log);
  }

  private noteReleased(s: CaseState, inv: Investigation, log: Logger): void {
    if (s.releasedLogged || !isReleased(inv)) return;
    s.releasedLogged = true;
    log.info({ alerts: s.count }, 'alert recorded against a released Investigation; the case is not reopened');
  }

  private async ack(s: CaseState, through: number, count: number, log: Logger): Promise<void> {
    acknowledge(s, through);
    try {
      await this.opts.journal()?.append([{ type: 'ack', at: new Date().toISOString(), investigation: s.origin, throughSeq: through, count }]);
    } catch (err) {
      // Not fatal: a replay without the ack writes the same absolute values again.
      log.warn({ err }, 'could not journal the status.alerts acknowledgement');
    }
  }
}
