// The containment lane (ContainFirst): the containment phases' first cluster writes (Phase.containNow),
// then the finalizer, before the main reconcile opens the case file or writes status; those follow on
// the main queue and record what was done. It runs on its own queue, so a case waiting for isolation
// never waits behind others that are capturing, and it reads the object from the informer's cache (or
// as intake's create returned it) like a controller-runtime client: no API round trip before the writes.
// A stale copy costs nothing: every write is idempotent, the finalizer patch is guarded by the copy's
// resourceVersion, and the lane acts only on a case nobody has touched (no finalizer, no condition).
import { FINALIZER, GROUP, INVESTIGATION_PLURAL, parseSpec, VERSION, type Investigation } from '../api/investigation.js';
import type { OperatorConfig } from '../config.js';
import { type Kube } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import type { Logger } from '../log.js';
import { phases } from '../phases/index.js';
import type { Phase } from '../phases/phase.js';
import { containNowPhases } from './case-status.js';
import { patchFinalizers } from './release.js';

const MADE_LIMIT = 4096;

export interface ContainmentLaneDeps {
  kube: Kube;
  config: OperatorConfig;
  log: Logger;
  phases?: readonly Phase[];
  /** The informer's latest copy of a key (none: read from the API server). */
  cached?: (key: string) => Investigation | undefined;
}

export class ContainmentLane {
  /** Keys whose first writes are in flight: the main reconcile waits for them, so a release never overtakes them. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** Investigations as intake's create returned them, until the lane has run them (the watch may not have delivered them yet). */
  private readonly handedOver = new Map<string, Investigation>();
  /**
   * UIDs whose first writes this process has made (or is making): the watch's ADDED and intake's
   * handover (or the lane's own finalizer patch, seen before the reconcile's first condition) each queue
   * a case, and a copy without the finalizer yet would otherwise send every write a second time. A
   * failed attempt is forgotten, so the queue's retry is not skipped.
   */
  private readonly made = new Set<string>();

  constructor(private readonly deps: ContainmentLaneDeps) {}

  /** An Investigation just created (by intake): the lane need not wait for the watch to see it. */
  handOver(inv: Investigation): string {
    const key = `${inv.metadata.namespace}/${inv.metadata.name}`;
    this.handedOver.set(key, inv);
    return key;
  }

  /** The first writes of `key` if they are in flight (never rejects). */
  settled(key: string): Promise<unknown> | undefined {
    return this.inFlight.get(key);
  }

  /** The queue's handler. */
  async run(key: string): Promise<void> {
    const work = this.firstWrites(key);
    this.inFlight.set(key, work.catch(() => undefined));
    try {
      await work;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async firstWrites(key: string): Promise<void> {
    const handed = this.handedOver.get(key);
    this.handedOver.delete(key);
    const inv = this.deps.cached?.(key) ?? handed ?? (await this.read(key));
    if (!inv) return;
    const parsed = parseSpec(inv.spec);
    if (!parsed.ok) return; // reconcile() refuses it, with what to fix
    const todo = containNowPhases(inv, parsed.spec, this.deps.phases ?? phases);
    if (todo.length === 0 || this.made.has(inv.metadata.uid)) return;
    this.remember(inv.metadata.uid);
    const log = this.deps.log.child({ investigation: key });
    const ctx = { investigation: inv, spec: parsed.spec, kube: this.deps.kube, log, config: this.deps.config };
    // The writes alone, at once: the API server commits one write at a time, so a third one sent with
    // them (the finalizer) would hold isolation back by a commit.
    const writes = await Promise.allSettled(todo.map((p) => p.containNow!(ctx)));
    // Then the finalizer, guarded by the copy's resourceVersion: added in every case, since a failed write
    // may still have made part of the isolation that release must find.
    try {
      await patchFinalizers(this.deps.kube, inv, [...(inv.metadata.finalizers ?? []), FINALIZER]);
    } catch (err) {
      if (isNotFound(err)) {
        // Deleted before its finalizer landed: nothing would release it, so the lane gives back what it made.
        await Promise.all(writes.map((w) => (w.status === 'fulfilled' ? w.value?.() : undefined)));
        log.info('the Investigation was deleted before its finalizer landed: its first containment writes were taken back');
        return;
      }
      // Changed meanwhile (409): reconcile() adds it from the latest object. Anything else: the queue retries.
      if (!isConflict(err)) {
        this.made.delete(inv.metadata.uid);
        throw err;
      }
    }
    const failed = writes.find((w) => w.status === 'rejected');
    if (failed) {
      this.made.delete(inv.metadata.uid); // the queue's retry makes them again
      throw failed.reason;
    }
    if (this.deps.config.exitAfterPhase === 'ContainNow') {
      log.warn('fault injection: exiting after the first containment writes (CASEFILE_EXIT_AFTER_PHASE=ContainNow)');
      process.exit(137);
    }
  }

  private remember(uid: string): void {
    this.made.add(uid);
    // Bounded: a case long past its first writes has its finalizer or a condition, which stop the lane anyway.
    if (this.made.size > MADE_LIMIT) this.made.delete(this.made.values().next().value!);
  }

  private async read(key: string): Promise<Investigation | undefined> {
    const [namespace, name] = key.split('/') as [string, string];
    try {
      return (await this.deps.kube.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVESTIGATION_PLURAL, name })) as Investigation;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}
