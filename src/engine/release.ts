// Lifting containment, on spec.release and on deletion (casefile's finalizer): every phase that can
// release undoes what the record (status and the case file) says it applied, whatever the spec says
// now. The spec may have been edited since, or no longer parse; the record is what was done.
import type { V1Pod } from '@kubernetes/client-node';
import { getCondition, isTrue, setCondition } from '../api/conditions.js';
import { FINALIZER, GROUP, INVESTIGATION_PLURAL, VERSION, type ConditionType, type Investigation, type InvestigationStatus } from '../api/investigation.js';
import type { OperatorConfig } from '../config.js';
import type { CaseFile } from '../evidence/store.js';
import { errorMessage, RetryableError } from '../errors.js';
import type { Kube } from '../kube/client.js';
import { isNotFound } from '../kube/errors.js';
import type { Logger } from '../log.js';
import { phases } from '../phases/index.js';
import type { Phase, PhaseOutcome, ReleaseContext } from '../phases/phase.js';
import { containmentApplied } from './case-status.js';
import type { EventRecorder } from './events.js';
import { classify, Stop } from './outcome.js';
import { StatusWriter } from './status-writer.js';

export type SetCondition = (type: ConditionType, o: PhaseOutcome | { status: 'Unknown'; reason: string; message: string }) => void;

/** Sets a condition on `status`, stamped with the generation it was decided at. */
export function conditionSetter(status: InvestigationStatus, generation: number): SetCondition {
  return (type, o) => {
    status.conditions = setCondition(status.conditions, { type, ...o }, generation);
  };
}

export interface ReleaseDeps {
  kube: Kube;
  config: OperatorConfig;
  events: EventRecorder;
  phases?: readonly Phase[];
  openCaseFile: (inv: Investigation) => Promise<CaseFile>;
}

export class CaseRelease {
  constructor(private readonly deps: ReleaseDeps) {}

  /**
   * Lifts containment from the record: every phase that can release undoes what status and the case
   * file say it applied, last in the runbook first, whatever the spec says now (it may have been edited,
   * or no longer parse). Released turns True only when every release re-read its objects and found
   * them undone, or listed them as kept with the reason.
   */
  async lift(ctx: ReleaseContext, set: SetCondition, writer: StatusWriter, log: Logger): Promise<void> {
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

  /** No spec: release works from the record. The pod is found by name and must still have the recorded UID. */
  context(inv: Investigation, status: InvestigationStatus, caseFile: CaseFile, log: Logger, podName: string | undefined): ReleaseContext {
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

  /** Deletion (e.g. removed from git): lift containment, keep every byte of evidence, drop the finalizer. */
  async finalize(inv: Investigation, log: Logger): Promise<void> {
    if (!(inv.metadata.finalizers ?? []).includes(FINALIZER)) return;
    // Containment must be lifted before the Investigation may go: until then the finalizer stays and
    // the key is retried. The case file records it; evidence is never removed.
    let caseFile: CaseFile;
    try {
      caseFile = await this.deps.openCaseFile(inv);
    } catch (err) {
      // Restoring what containment changed needs the originals saved in the case file: wait for the
      // volume. With nothing contained, a broken volume must not block the deletion forever.
      if (containmentApplied(inv.status)) throw err;
      log.warn({ err: errorMessage(err) }, 'evidence store unavailable; nothing was contained, so the deletion proceeds unrecorded');
      await patchFinalizers(this.deps.kube, inv, (inv.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
      return;
    }
    try {
      // From the record alone: a spec that no longer parses (older CRD, hand edit) must not skip release.
      const status: InvestigationStatus = structuredClone(inv.status ?? {});
      const set = conditionSetter(status, inv.metadata.generation ?? 1);
      const podName = (inv.spec as { target?: { pod?: unknown } } | undefined)?.target?.pod;
      const ctx = this.context(inv, status, caseFile, log, typeof podName === 'string' ? podName : undefined);
      const writer = new StatusWriter(this.deps.kube, inv);
      await this.lift(ctx, set, writer, log);
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
    await patchFinalizers(this.deps.kube, inv, (inv.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
    log.info('finalized: evidence retained');
  }
}

/** Sets metadata.finalizers, guarded by the copy's resourceVersion. */
export async function patchFinalizers(kube: Kube, inv: Investigation, finalizers: string[]): Promise<Investigation> {
  return (await kube.custom.patchNamespacedCustomObject(
    {
      group: GROUP, version: VERSION, namespace: inv.metadata.namespace, plural: INVESTIGATION_PLURAL, name: inv.metadata.name,
      body: { metadata: { finalizers, resourceVersion: inv.metadata.resourceVersion } },
    },
    kube.mergePatch,
  )) as Investigation;
}
