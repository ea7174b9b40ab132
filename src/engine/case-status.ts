// Pure decisions about a case's status, from its conditions and spec: whether the spec contradicts
// what containment recorded, whether containment was applied, readiness, and the overall phase.
import { getCondition, isTrue } from '../api/conditions.js';
import { FINALIZER, parseSpec, type Condition, type ConditionType, type InvestigationPhase, type InvestigationSpec, type InvestigationStatus } from '../api/investigation.js';
import { phasesInOrder } from '../phases/index.js';
import type { Phase, PhaseOutcome } from '../phases/phase.js';

/**
 * Containment phases whose recorded outcome contradicts the spec: recorded Disabled but enabled now
 * (the edit would silently do nothing), or acted on but disabled now (release must still undo it).
 */
export function containmentDrift(conditions: readonly Condition[], ordered: readonly Phase[], spec: InvestigationSpec): string[] {
  const drift: string[] = [];
  for (const phase of ordered) {
    if (!phase.containment || !phase.enabled) continue;
    const c = getCondition(conditions, phase.condition);
    if (!c || c.status === 'Unknown' || c.reason === 'ReleaseRequested') continue;
    const recordedOff = c.reason === 'Disabled';
    if (recordedOff && phase.enabled(spec)) drift.push(`${phase.condition} was recorded Disabled but the spec now enables it`);
    if (!recordedOff && !phase.enabled(spec)) drift.push(`${phase.condition} acted (${c.reason}) but the spec now disables it`);
  }
  return drift;
}

/**
 * The containment phases whose first writes should go now, ahead of the bookkeeping: a ContainFirst case
 * not being released or deleted, that the operator has not touched yet (no finalizer, no condition).
 */
export function containNowPhases(inv: { metadata: { deletionTimestamp?: unknown; finalizers?: string[] }; status?: InvestigationStatus }, spec: InvestigationSpec, phases: readonly Phase[]): Phase[] {
  if (spec.containment.order !== 'ContainFirst' || spec.release || inv.metadata.deletionTimestamp) return [];
  // The finalizer follows the first writes: once it is there, they were made (or the reconcile has
  // begun, or intake isolated the case ahead of its create), and the phases own the rest, a restarted
  // operator included.
  if ((inv.metadata.finalizers ?? []).includes(FINALIZER)) return [];
  const conditions = inv.status?.conditions ?? [];
  if (getCondition(conditions, 'TargetResolved')) return [];
  return phases.filter((p) => p.containNow && p.containment && (!p.enabled || p.enabled(spec)) && !getCondition(conditions, p.condition));
}

/**
 * A cheap look at an Investigation as an event (or intake's create) delivered it: could it want first
 * containment writes? (The containment lane then takes its latest copy and decides with containNowPhases.)
 */
export function wantsContainmentLane(obj: { metadata?: { finalizers?: string[] }; spec?: unknown; status?: { conditions?: unknown[] } }): boolean {
  const spec = obj.spec as { containment?: { order?: unknown }; release?: unknown } | undefined;
  return spec?.containment?.order === 'ContainFirst' && !spec.release && !(obj.status?.conditions?.length) && !obj.metadata?.finalizers?.includes(FINALIZER);
}

/**
 * Nothing left to do at this generation: every phase the spec asks for has settled (True or False),
 * so has a release it asks for, and Ready. The reconciler stops there; the informer does not even
 * queue such a case on resync (a queue of settled keys would hold back the cases that have work).
 */
export function isSettled(status: InvestigationStatus | undefined, generation: number, spec: InvestigationSpec, ordered: readonly Phase[]): boolean {
  const settled = (type: ConditionType) => {
    const c = getCondition(status?.conditions, type);
    return c !== undefined && c.status !== 'Unknown';
  };
  const releaseSettled = !spec.release || isTrue(status?.conditions, 'Released');
  return ordered.every((p) => settled(p.condition)) && releaseSettled && settled('Ready') && status?.observedGeneration === generation;
}

/**
 * Nothing for a reconcile to do with an object as the informer delivered it: settled at its generation,
 * not being deleted, and still carrying casefile's finalizer (a reconcile puts back one someone removed,
 * so release still runs on deletion). A spec that does not parse is never settled here.
 */
export function settledAsDelivered(obj: { metadata?: { generation?: number; deletionTimestamp?: unknown; finalizers?: string[] }; spec?: unknown; status?: InvestigationStatus }, phases: readonly Phase[]): boolean {
  if (obj.metadata?.deletionTimestamp || !obj.metadata?.finalizers?.includes(FINALIZER)) return false;
  const parsed = parseSpec(obj.spec);
  return parsed.ok && isSettled(obj.status, obj.metadata?.generation ?? 1, parsed.spec, phasesInOrder(parsed.spec, phases));
}

/**
 * An update a reconcile has to see: the spec (generation), a deletion, or casefile's finalizer taken away
 * (a reconcile puts it back, so release still runs on deletion). Status, labels, annotations and the
 * finalizer casefile itself just added are not (its own writes, intake's alert counts): each would
 * otherwise queue the case again behind the queue's rate limit, and a burst of new cases would run every
 * one of them twice (controller-runtime's GenerationChangedPredicate, plus what release needs).
 */
export function changedForReconcile(
  previous: { metadata?: { generation?: number; deletionTimestamp?: unknown; finalizers?: string[] } } | undefined,
  obj: { metadata?: { generation?: number; deletionTimestamp?: unknown; finalizers?: string[] } },
): boolean {
  if (!previous) return true;
  const a = previous.metadata ?? {};
  const b = obj.metadata ?? {};
  const finalizerTaken = (a.finalizers ?? []).includes(FINALIZER) && !(b.finalizers ?? []).includes(FINALIZER);
  return a.generation !== b.generation || Boolean(a.deletionTimestamp) !== Boolean(b.deletionTimestamp) || finalizerTaken;
}

export function containmentApplied(status: InvestigationStatus | undefined): boolean {
  const c = status?.containment;
  return Boolean(c?.label || c?.rbac?.length || c?.cordoned);
}

export function readiness(
  conditions: readonly Condition[],
  phases: readonly Phase[],
  releaseRequested = false,
): PhaseOutcome | { status: 'Unknown'; reason: string; message: string } {
  for (const phase of phases) {
    const c = getCondition(conditions, phase.condition);
    if (c?.status === 'False') return { status: 'False', reason: c.reason, message: `${c.type} failed: ${c.message}` };
  }
  const pending: string[] = phases.filter((p) => getCondition(conditions, p.condition)?.status !== 'True').map((p) => p.condition);
  if (releaseRequested && !isTrue(conditions, 'Released')) pending.push('Released');
  if (pending.length > 0) {
    return { status: 'Unknown', reason: 'InProgress', message: `waiting for ${pending.join(', ')}` };
  }
  return { status: 'True', reason: 'CaseSealed', message: 'every phase the spec asks for is done and the case file is sealed' };
}

export function overallPhase(conditions: readonly Condition[], spec: InvestigationSpec): InvestigationPhase {
  const ready = getCondition(conditions, 'Ready');
  if (ready?.status === 'False') return 'Failed';
  if (isTrue(conditions, 'Released')) return 'Released';
  if (ready?.status === 'True') {
    return spec.containment.network.isolate && isTrue(conditions, 'NetworkIsolated') ? 'Contained' : 'Completed';
  }
  return conditions.length > 1 ? 'Capturing' : 'Pending';
}
