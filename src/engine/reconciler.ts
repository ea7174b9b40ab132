// The Investigation reconciler. Level-based: a key comes in, the latest object is read from the API
// server (never the event), and the phases that are not yet done run in order. Everything a phase
// learns is persisted in status (conditions, target) or the case file, so a restart resumes where it
// stopped. Status is written only when it changed, with the resourceVersion it was computed from.
// Lifting containment (spec.release, deletion) is ./release.ts.
import { getCondition, isTrue } from '../api/conditions.js';
import {
  FINALIZER,
  GROUP,
  INVESTIGATION_PLURAL,
  parseSpec,
  VERSION,
  type Investigation,
  type InvestigationSpec,
  type InvestigationStatus,
} from '../api/investigation.js';
import type { OperatorConfig } from '../config.js';
import type { SigningKey } from '../evidence/signing.js';
import { CaseFile, evidenceErrorReason } from '../evidence/store.js';
import type { Logger } from '../log.js';
import { phasesInOrder } from '../phases/index.js';
import { errorMessage } from '../errors.js';
import type { AlertImporter, AuditTrailSource, Phase, PhaseContext, PhaseOutcome } from '../phases/phase.js';
import { containmentDrift, isSettled, overallPhase, readiness } from './case-status.js';
import { EventRecorder } from './events.js';
import { type Kube } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import type { Metrics } from './metrics.js';
import { classify, Stop } from './outcome.js';
import { CaseRelease, conditionSetter, patchFinalizers, type SetCondition } from './release.js';
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

/** Containment phases whose recorded outcome the spec must not contradict (release works from that record). */
const CONTAINMENT_DRIFT_HINT =
  'spec.containment cannot change once containment has acted: casefile undoes what it applied, not what the spec says now. ' +
  'To lift containment set spec.release: true; to contain differently, release this case and open a new Investigation';

export class InvestigationReconciler {
  /** The same failure of the same case is logged once a minute, not on every retry. */
  private readonly repeats = new RepeatFilter();

  private readonly releases: CaseRelease;

  constructor(private readonly deps: ReconcilerDeps) {
    this.releases = new CaseRelease({ ...deps, openCaseFile: (inv) => this.openCaseFile(inv) });
  }

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
      if (inv.metadata.deletionTimestamp) return await this.releases.finalize(inv, log);
      if (!(inv.metadata.finalizers ?? []).includes(FINALIZER)) {
        inv = await patchFinalizers(this.deps.kube, inv, [...(inv.metadata.finalizers ?? []), FINALIZER]);
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
    const set = conditionSetter(status, generation);

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
      if (spec.release) await this.releases.lift(ctx, set, writer, log);
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

  private context(inv: Investigation, spec: InvestigationSpec, status: InvestigationStatus, caseFile: CaseFile, log: Logger): PhaseContext {
    return {
      ...this.releases.context(inv, status, caseFile, log, spec.target.pod),
      spec,
      importJournaledAlerts: async () => {
        await this.deps.importAlerts?.(caseFile, inv);
      },
      signingKey: () => this.deps.signingKey?.() ?? Promise.reject(new Error('the operator was started without a signing key')),
      audit: this.deps.audit,
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

