// Condition helpers with metav1.Condition semantics (cf. apimachinery meta.SetStatusCondition and
// cert-manager's SetCertificateCondition): a list keyed by type whose lastTransitionTime moves only
// when the status does, so readers can tell how long a condition has held.
import type { Condition, ConditionStatus, ConditionType } from './investigation.js';

/** metav1.Condition's maxLength for message. */
export const MAX_CONDITION_MESSAGE_LENGTH = 32768;
/** metav1.Condition's maxLength for reason. */
export const MAX_CONDITION_REASON_LENGTH = 1024;

const REASON_PATTERN = /^[A-Z][A-Za-z0-9]*$/;

export interface ConditionUpdate {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * Returns a new list with `update` applied; the input is not modified. Existing conditions keep
 * their position, a new type is appended, and duplicate entries of a type (only possible in a
 * hand-edited status) collapse into the first. Throws on a reason that is not UpperCamelCase:
 * reasons are machine-readable constants chosen in code, so a bad one is a programming error.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  generation: number,
  now: Date = new Date(),
): Condition[] {
  if (!REASON_PATTERN.test(update.reason) || update.reason.length > MAX_CONDITION_REASON_LENGTH) {
    throw new Error(`condition ${update.type}: reason ${JSON.stringify(update.reason)} is not UpperCamelCase`);
  }
  if (!Number.isSafeInteger(generation) || generation < 0) {
    throw new Error(`condition ${update.type}: observedGeneration ${generation} is not a non-negative integer`);
  }
  const result: Condition[] = [];
  const seen = new Set<ConditionType>();
  let applied = false;
  for (const existing of conditions ?? []) {
    if (seen.has(existing.type)) continue;
    seen.add(existing.type);
    if (existing.type !== update.type) {
      result.push({ ...existing });
      continue;
    }
    result.push(build(update, generation, existing.status === update.status ? existing.lastTransitionTime : now));
    applied = true;
  }
  if (!applied) result.push(build(update, generation, now));
  return result;
}

function build(update: ConditionUpdate, generation: number, transition: string | Date): Condition {
  return {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: truncate(update.message, MAX_CONDITION_MESSAGE_LENGTH),
    lastTransitionTime: typeof transition === 'string' ? transition : toKubeTime(transition),
    observedGeneration: generation,
  };
}

/** metav1.Time is serialised at second precision; writing the same form keeps round trips stable. */
function toKubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Truncates to `max` code points (the API server counts characters, not UTF-16 units). */
function truncate(message: string, max: number): string {
  if (message.length <= max) return message;
  let out = '';
  let count = 0;
  for (const ch of message) {
    if (count === max) break;
    out += ch;
    count++;
  }
  return out;
}

/**
 * kstatus's abnormal-true conditions (sigs.k8s.io/cli-utils; what Flux `wait: true` reads), derived
 * from Ready: Reconciling=True while the case is under way, Stalled=True once it failed, and each
 * absent otherwise (Flux's own convention), so a reader that counts False conditions as failures, like
 * the Argo CD health check, is not misled. The input is not modified.
 */
export function withKstatusConditions(conditions: readonly Condition[] | undefined, generation: number, now: Date = new Date()): Condition[] {
  const ready = getCondition(conditions, 'Ready');
  const without = (...types: ConditionType[]) => (conditions ?? []).filter((c) => !types.includes(c.type));
  if (ready?.status === 'True') return without('Reconciling', 'Stalled');
  if (ready?.status === 'False') {
    return setCondition(without('Reconciling'), { type: 'Stalled', status: 'True', reason: ready.reason, message: ready.message }, generation, now);
  }
  const update = ready
    ? { reason: ready.reason, message: ready.message }
    : { reason: 'InProgress', message: 'casefile is working through the phases; Ready is set at the end of the pass' };
  return setCondition(without('Stalled'), { type: 'Reconciling', status: 'True', ...update }, generation, now);
}

export function getCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: ConditionType): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

/**
 * Whether two status values differ as JSON: key order is ignored and a property set to
 * `undefined` equals an absent one (neither is sent to the API server). Array order matters.
 */
export function statusChanged(before: unknown, after: unknown): boolean {
  return !jsonEqual(before, after);
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keysA = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const keysB = Object.keys(rb).filter((k) => rb[k] !== undefined);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && jsonEqual(ra[k], rb[k]));
}
