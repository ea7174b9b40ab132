// The Investigation reconciler. Level-based: a key comes in, the latest object is read from the API
// server (never the event), and the phases that are not yet done run in order. Everything a phase
// learns is persisted in status (conditions, target) or the case file, so a restart resumes where it
// stopped. Status is written only when it changed, with the resourceVersion it was computed from.
import type { V1Pod } from '@kubernetes/client-node';
import { getCondition, isTrue, setCondition } from '../api/conditions.js';
import {
  FINALIZER,
  GROUP,
  INVESTIGATION_PLURAL,
  parseSpec,
  VERSION,
  type ConditionType,
  type Investigation,
  type InvestigationSpec,
  type InvestigationStatus,
} from '../api/investigation.js';
import type { OperatorConfig } from '../config.js';
import type { SigningKey } from '../evidence/signing.js';
import { CaseFile, evidenceErrorReason } from '../evidence/store.js';
import type { Logger } from '../log.js';
import { phases, phasesInOrder } from '../phases/index.js';
import { errorMessage, RetryableError } from '../errors.js';
import type { AlertImporter, AuditTrailSource, Phase, PhaseContext, PhaseOutcome, ReleaseContext } from '../phases/phase.js';
import { containmentApplied, containmentDrift, isSettled, overallPhase, readiness } from './case-status.js';
import { EventRecorder } from './events.js';
import { type Kube } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import type { Metrics } from './metrics.js';
import { classify, type Verdict } from './outcome.js';
import { RepeatFilter } from './repeat-filter.js';
import type { ReconcileResult } from './queue.js';
import { StaleObjectError, StatusWriter } from './status-writer.js';

export interface ReconcilerDeps {
  kube: Kube;
  config: OperatorConfig;
  log: Logger;
  metrics: Metrics;
  events: EventRecorder;
  phases?: readonly Phase[];
  /** Brings alerts journaled by intake into a case file before it is sealed (none: nothing to import). */
  importAlerts?: AlertImporter;
  /** The key that signs sealed cases (none: cases are sealed unsigned, and say so). */
  signingKey?: () => Promise<SigningKey>;
  /** The rolling audit store AuditCorrelated copies from (none: cases say they have no audit trail). */
  audit?: AuditTrailSource;
}

/** A worker's verdict that stops this reconcile: wait, or retry with backoff (the queue's). */
class Stop {
  constructor(readonly verdict: Verdict & { kind: 'wait' | 'retry' }, readonly cause: unknown) {}
}

type SetCondition = (type: ConditionType, o: PhaseOutcome | { status: 'Unknown'; reason: string; message: string }) => void;

/** Containment phases whose recorded outcome the spec must not contradict (release works from that record). */
const CONTAINMENT_DRIFT_HINT =
  'spec.containment cannot change once containment has acted: casefile undoes what it applied, not what the spec says now. ' +
  'To lift containment set spec.release: true; to contain differently, release this case and open a new Investigation';

export class InvestigationReconciler {
  /** The same failure of the same case is logged once a minute, not on every retry. */
  private readonly repeats = new RepeatFilter();

  constructor(private readonly deps: ReconcilerDeps) {}

  private async read(key: string): Promise<Investigation | undefined> {
    const [namespace, name] = key.split('/') as [string, string];
    try {
      return (await this.deps.kube.custom.getNamespacedCustomObject({
        group: GROUP, version: VERSION, namespace, plural: INVESTIGATION_PLURAL, name,
      })) as Investigation;
    } catch (err) {
      if (isNotFound(err)) return undefined; // deleted and finalized: nothing left to do
      throw err;
    }
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    let inv = await this.read(key);
    if (!inv) return;
    const log = this.deps.log.child({ investigation: key });
    try {
      if (inv.metadata.deletionTimestamp) return await this.finalize(inv, log);
      if (!(inv.metadata.finalizers ?? []).includes(FINALIZER)) {
        inv = await this.patchMetadata(inv, { finalizers: [...(inv.metadata.finalizers ?? []), FINALIZER] });
      }
      const result = await this.run(inv, log);
      this.repeats.forget(key);
      return result;
    } catch (err) {
      return this.stopped(key, err, log);
    }
  }

  /** Applies a verdict that ended a reconcile: requeue after a wait, or rethrow for the queue's backoff. */
  private stopped(key: string, err: unknown, log: Logger): ReconcileResult {
    if (err instanceof StaleObjectError || isConflict(err)) return { requeueAfterMs: 100 };
    const verdict = err instanceof Stop ? err.verdict : classify(err);
    const held = this.repeats.admit(key, `${verdict.kind}:${verdict.message}`);
    if (held !== undefined) log.warn({ verdict: verdict.kind, reason: verdict.reason, repeats: held }, verdict.message);
    if (verdict.kind === 'wait') return { requeueAfterMs: verdict.afterMs };
    throw err instanceof Stop ? err.cause : err;
  }

  private async run(inv: Investigation, log: Logger): Promise<ReconcileResult | void> {
    const generation = inv.metadata.generation ?? 1;
    const writer = new StatusWriter(this.deps.kube, inv);
    const status: InvestigationStatus = structuredClone(inv.status ?? {});
    const set: SetCondition = (type, outcome) => {
      status.conditions = setCondition(status.conditions, { type, ...outcome }, generation);
    };

    const parsed = parseSpec(inv.spec);
    if (!parsed.ok) {
      set('Ready', { status: 'False', reason: 'InvalidSpec', message: `${parsed.message}; fix the spec and apply it again` });
      status.phase = 'Failed';
      status.observedGeneration = generation;
      if (await writer.write(status)) this.deps.events.emit(inv, 'Warning', 'InvalidSpec', parsed.message);
      return;
    }
    const spec = parsed.spec;
    const ordered = phasesInOrder(spec, this.deps.phases);
    // A settled case is not reopened on resync: the evidence directory is touched only to add to it.
    if (isSettled(status, generation, spec, ordered)) return;

    // Fallback for a cluster whose CRD lacks the CEL rule that freezes spec.containment: an edit that
    // contradicts what containment recorded is refused here, once, instead of being silently ignored.
    const drift = spec.release ? [] : containmentDrift(status.conditions ?? [], ordered, spec);
    if (drift.length > 0) {
      const message = `${drift.join('; ')}. ${CONTAINMENT_DRIFT_HINT}`;
      set('Ready', { status: 'False', reason: 'ContainmentChanged', message });
      status.phase = 'Failed';
      status.observedGeneration = generation;
      if (await writer.write(status)) this.deps.events.emit(inv, 'Warning', 'ContainmentChanged', message);
      return;
    }

    let caseFile: CaseFile;
    try {
      caseFile = await this.openCaseFile(inv);
    } catch (err) {
      const reason = evidenceErrorReason(err) ?? 'EvidenceStoreUnavailable';
      set('Ready', { status: 'Unknown', reason, message: `cannot open the case directory: ${errorMessage(err)}; retrying` });
      await writer.write(status);
      throw err;
    }

    try {
      try {
        await openCase(caseFile, inv, spec);
      } catch (err) {
        // The opening record could not be written (a full volume): say so on the case, not only in the log.
        const verdict = classify(err);
        set('Ready', { status: verdict.kind === 'terminal' ? 'False' : 'Unknown', reason: verdict.reason, message: `cannot open the case file: ${verdict.message}` });
        if (verdict.kind === 'terminal') status.phase = 'Failed';
        status.observedGeneration = generation;
        await writer.write(status).catch(() => undefined);
        throw err;
      }
      const ctx = this.context(inv, spec, status, caseFile, log);
      for (const phase of ordered) {
        const existing = getCondition(status.conditions, phase.condition);
        if (existing && existing.status !== 'Unknown') continue; // done, or failed for good
        if (spec.release && phase.containment && !existing) {
          set(phase.condition, { status: 'True', reason: 'ReleaseRequested', message: 'not applied: spec.release is true' });
          continue;
        }
        const outcome = await this.runPhase(phase, ctx, spec, status, set, writer, inv);
        if (!outcome) continue;
        if (this.deps.config.exitAfterPhase === phase.condition) {
          // A crash, not a shutdown: no drain, no lease release. (Not a self-SIGKILL: as PID 1 in its
          // container the operator would not receive it.) After the phase's result is written, as the
          // next phase's start would have written it.
          await writer.write(status);
          log.warn({ phase: phase.condition }, 'fault injection: exiting after phase (CASEFILE_EXIT_AFTER_PHASE)');
          process.exit(137);
        }
      }
      if (spec.release) await this.release(ctx, set, writer, log);
      const ready = readiness(status.conditions ?? [], ordered, spec.release);
      set('Ready', ready);
      status.phase = overallPhase(status.conditions ?? [], spec);
      status.observedGeneration = generation;
      if (await writer.write(status)) {
        this.deps.events.emit(inv, ready.status === 'True' ? 'Normal' : 'Warning', ready.reason, ready.message);
      }
      this.deps.metrics.observeInvestigationPhase(`${inv.metadata.namespace}/${inv.metadata.name}`, status.phase);
    } finally {
      await caseFile.close();
    }
  }

  /** Runs one phase and records its outcome; returns undefined when the phase was not run (disabled, no target). */
  private async runPhase(
    phase: Phase,
    ctx: PhaseContext,
    spec: InvestigationSpec,
    status: InvestigationStatus,
    set: SetCondition,
    writer: StatusWriter,
    inv: Investigation,
  ): Promise<PhaseOutcome | undefined> {
    const type = phase.condition;
    if (phase.enabled && !phase.enabled(spec)) {
      set(type, { status: 'True', reason: 'Disabled', message: 'turned off by the spec' });
      return undefined;
    }
    if (phase.needsTarget && !isTrue(status.conditions, 'TargetResolved')) {
      const target = getCondition(status.conditions, 'TargetResolved');
      set(type, {
        status: 'False',
        reason: 'TargetUnavailable',
        message: `not run: TargetResolved is ${target?.status ?? 'missing'} (${target?.reason ?? 'not run'})`,
      });
      await ctx.caseFile.record('negative-finding', { finding: `${type} not run: the target pod could not be resolved (${target?.reason})` }, type);
      return undefined;
    }
    // A phase already Unknown (waiting, retrying) is not flipped back to InProgress: each flip is a status
    // write, and each write an informer event that would run the key again before its backoff is over.
    if (getCondition(status.conditions, type)?.status !== 'Unknown') {
      set(type, { status: 'Unknown', reason: 'InProgress', message: 'running' });
      status.phase = phase.containment ? 'Containing' : 'Capturing';
    }
    // One write per phase, before it runs: it carries this phase's start and what the phases before it
    // ended with (their results are not written on their own: that was twice the writes, back to back).
    await writer.write(status);

    const started = performance.now();
    let outcome: PhaseOutcome;
    try {
      outcome = await phase.run(ctx);
    } catch (err) {
      const verdict = classify(err);
      if (verdict.kind !== 'terminal') {
        // Waiting or transient: stay Unknown; the reconcile stops here and the queue brings the key back.
        set(type, { status: 'Unknown', reason: verdict.reason, message: `${verdict.message}; ${verdict.kind === 'wait' ? 'waiting' : 'will retry'}` });
        await writer.write(status).catch(() => undefined);
        this.deps.metrics.phaseDuration.observe({ phase: type, status: 'Unknown' }, (performance.now() - started) / 1000);
        throw new Stop(verdict, err);
      }
      outcome = { status: 'False', reason: verdict.reason, message: verdict.message };
    }
    this.deps.metrics.phaseDuration.observe({ phase: type, status: outcome.status }, (performance.now() - started) / 1000);
    set(type, outcome);
    await ctx.caseFile
      .record('phase-finished', { condition: type, status: outcome.status, reason: outcome.reason, message: outcome.message }, type)
      .catch((err) => ctx.log.error({ err: errorMessage(err) }, 'custody record failed'));
    this.deps.events.emit(inv, outcome.status === 'True' ? 'Normal' : 'Warning', outcome.reason, `${type}: ${outcome.message}`);
    ctx.log.info({ phase: type, status: outcome.status, reason: outcome.reason }, outcome.message);
    return outcome;
  }

  /**
   * Lifts containment from the record: every phase that can release undoes what status and the case
   * file say it applied, last in the runbook first, whatever the spec says now (it may have been edited,
   * or no longer parse). Released turns True only when every release re-read its objects and found
   * them undone, or listed them as kept with the reason.
   */
  private async release(ctx: ReleaseContext, set: SetCondition, writer: StatusWriter, log: Logger): Promise<void> {
    const status = ctx.status;
    if (isTrue(status.conditions, 'Released')) return;
    // Written once: a retried release must not flip the condition (and wake the informer) every attempt.
    if (getCondition(status.conditions, 'Released')?.status !== 'Unknown') {
      set('Released', { status: 'Unknown', reason: 'InProgress', message: 'lifting containment' });
      await writer.write(status);
    }
    const messages: string[] = [];
    const differences: string[] = [];
    for (const phase of [...(this.deps.phases ?? phases)].reverse()) {
      if (!phase.release) continue;
      try {
        const outcome = await phase.release(ctx);
        messages.push(`${phase.condition}: ${outcome.message}`);
        differences.push(...(outcome.differences ?? []));
      } catch (err) {
        const verdict = classify(err);
        // A terminal failure of release is still not "released": containment may be in force.
        set('Released', { status: verdict.kind === 'terminal' ? 'False' : 'Unknown', reason: verdict.reason, message: `${phase.condition}: ${verdict.message}` });
        await writer.write(status).catch(() => undefined);
        if (verdict.kind === 'terminal') return;
        throw new Stop(verdict, err);
      }
    }
    status.containment = { ...status.containment, released: { at: new Date().toISOString(), ...(differences.length ? { differences } : {}) } };
    let message = (messages.length ? messages.join('; ') : 'nothing was contained') +
      (differences.length ? `; not restored (kept, with the reason): ${differences.join('; ')}` : '');
    // The cluster is given back whether or not the volume can take the note: a full evidence volume
    // must not keep a pod contained (or an Investigation undeletable). The condition says what is missing.
    await ctx.caseFile.record('released', { messages, differences }, 'Released').catch((err) => {
      message += `; the custody log could not record the release (${errorMessage(err)})`;
      log.warn({ err: errorMessage(err) }, 'release not recorded in the custody log');
    });
    set('Released', { status: 'True', reason: 'Released', message });
    await writer.write(status);
    this.deps.events.emit(ctx.investigation, 'Normal', 'Released', message);
    log.info({ differences }, 'containment lifted');
  }

  private context(inv: Investigation, spec: InvestigationSpec, status: InvestigationStatus, caseFile: CaseFile, log: Logger): PhaseContext {
    return {
      ...this.releaseContext(inv, status, caseFile, log, spec.target.pod),
      spec,
      importJournaledAlerts: async () => {
        await this.deps.importAlerts?.(caseFile, inv);
      },
      signingKey: () => this.deps.signingKey?.() ?? Promise.reject(new Error('the operator was started without a signing key')),
      audit: this.deps.audit,
    };
  }

  /** No spec: release works from the record. The pod is found by name and must still have the recorded UID. */
  private releaseContext(inv: Investigation, status: InvestigationStatus, caseFile: CaseFile, log: Logger, podName: string | undefined): ReleaseContext {
    const kube = this.deps.kube;
    let cached: V1Pod | undefined;
    return {
      investigation: inv,
      kube,
      caseFile,
      config: this.deps.config,
      log,
      status,
      async livePod(opts) {
        if (cached && !opts?.fresh) return cached;
        const uid = status.target?.podUID;
        if (!uid || !podName) return undefined;
        try {
          const pod = await kube.core.readNamespacedPod({ name: podName, namespace: inv.metadata.namespace });
          if (pod.metadata?.uid !== uid) return undefined; // replaced: not our evidence
          cached = pod;
          return pod;
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw new RetryableError(`reading pod ${podName}: ${errorMessage(err)}`);
        }
      },
    };
  }

  private openCaseFile(inv: Investigation): Promise<CaseFile> {
    return CaseFile.open({
      root: this.deps.config.evidenceDir,
      namespace: inv.metadata.namespace,
      name: inv.metadata.name,
      uid: inv.metadata.uid,
      actor: `casefile/${this.deps.config.identity}`,
      onBytesWritten: (n) => this.deps.metrics.evidenceBytes.inc(n),
    });
  }

  /** Deletion (e.g. removed from git): lift containment, keep every byte of evidence, drop the finalizer. */
  private async finalize(inv: Investigation, log: Logger): Promise<void> {
    if (!(inv.metadata.finalizers ?? []).includes(FINALIZER)) return;
    // Containment must be lifted before the Investigation may go: until then the finalizer stays and
    // the key is retried. The case file records it; evidence is never removed.
    let caseFile: CaseFile;
    try {
      caseFile = await this.openCaseFile(inv);
    } catch (err) {
      // Restoring what containment changed needs the originals saved in the case file: wait for the
      // volume. With nothing contained, a broken volume must not block the deletion forever.
      if (containmentApplied(inv.status)) throw err;
      log.warn({ err: errorMessage(err) }, 'evidence store unavailable; nothing was contained, so the deletion proceeds unrecorded');
      await this.patchMetadata(inv, { finalizers: (inv.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) });
      return;
    }
    try {
      // From the record alone: a spec that no longer parses (older CRD, hand edit) must not skip release.
      const status: InvestigationStatus = structuredClone(inv.status ?? {});
      const generation = inv.metadata.generation ?? 1;
      const set: SetCondition = (type, o) => {
        status.conditions = setCondition(status.conditions, { type, ...o }, generation);
      };
      const podName = (inv.spec as { target?: { pod?: unknown } } | undefined)?.target?.pod;
      const ctx = this.releaseContext(inv, status, caseFile, log, typeof podName === 'string' ? podName : undefined);
      const writer = new StatusWriter(this.deps.kube, inv);
      await this.release(ctx, set, writer, log);
      // A release that failed for good keeps the finalizer: containment is still in force, and status says why.
      if (!isTrue(status.conditions, 'Released')) return;
      // A note, not evidence: containment is lifted, so a full or broken volume must not hold the deletion.
      await caseFile
        .record('investigation-deleted', { note: 'the Investigation was deleted; the case file is retained' })
        .catch((err) => log.warn({ err: errorMessage(err) }, 'could not record the deletion in the custody log; the deletion proceeds'));
      // The status write above moved resourceVersion on: patch against the version it left.
      inv = { ...inv, metadata: { ...inv.metadata, resourceVersion: writer.resourceVersion } };
    } finally {
      await caseFile.close();
    }
    await this.patchMetadata(inv, { finalizers: (inv.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) });
    log.info('finalized: evidence retained');
  }

  private async patchMetadata(inv: Investigation, metadata: { finalizers: string[] }): Promise<Investigation> {
    return (await this.deps.kube.custom.patchNamespacedCustomObject(
      {
        group: GROUP, version: VERSION, namespace: inv.metadata.namespace, plural: INVESTIGATION_PLURAL, name: inv.metadata.name,
        body: { metadata: { ...metadata, resourceVersion: inv.metadata.resourceVersion } },
      },
      this.deps.kube.mergePatch,
    )) as Investigation;
  }
}

/** First reconcile of a case: the opening custody record and the raw signal, before anything else. */
async function openCase(caseFile: CaseFile, inv: Investigation, spec: InvestigationSpec): Promise<void> {
  if (caseFile.has('alert.json')) return;
  await caseFile.record('case-opened', {
    investigation: `${inv.metadata.namespace}/${inv.metadata.name}`,
    uid: inv.metadata.uid,
    generation: inv.metadata.generation,
    spec,
  });
  const alert = spec.alert;
  let raw: unknown = null;
  if (alert?.raw) {
    try {
      raw = JSON.parse(alert.raw);
    } catch {
      raw = alert.raw; // not JSON (e.g. Falco's plain-text output): kept verbatim as a string
    }
  }
  await caseFile.writeJSON('alert.json', {
    source: alert?.source ?? 'manual',
    rule: alert?.rule ?? null,
    priority: alert?.priority ?? null,
    time: alert?.time ?? null,
    raw,
    note: alert ? undefined : 'no alert attached: the case was opened by hand or by GitOps',
  });
}

