// NodeCordoned, pure decisions (unit-tested): the per-Investigation hold annotations on a Node, when
// to cordon, and when release may uncordon (only the last casefile hold, and only if casefile cordoned).
import { sanitizeSegment, uidPrefix } from '../../evidence/paths.js';

export const PHASE = 'NodeCordoned';
export const CORDON_PREFIX = 'cordon.casefile.dev/';

export interface CordonHold {
  investigation: string;
  wasUnschedulable: boolean;
  at: string;
}

/** This Investigation's annotation key: the first 8 hex digits of its UID (dashes removed). */
export function cordonKey(uid: string): string {
  return `${CORDON_PREFIX}${uidPrefix(uid)}`;
}

export function cordonAnnotation(investigation: string, wasUnschedulable: boolean, at: string): string {
  return JSON.stringify({ investigation, wasUnschedulable, at } satisfies CordonHold);
}

export function parseHold(value: string | undefined): CordonHold | undefined {
  if (value === undefined) return undefined;
  try {
    const v = JSON.parse(value) as Partial<CordonHold> | null;
    if (!v || typeof v.wasUnschedulable !== 'boolean') return undefined;
    return { investigation: typeof v.investigation === 'string' ? v.investigation : '?', wasUnschedulable: v.wasUnschedulable, at: typeof v.at === 'string' ? v.at : '' };
  } catch {
    return undefined;
  }
}

/** Every casefile hold on a node; `hold` is undefined when the annotation cannot be read. */
export function casefileHolds(annotations: Record<string, string> | undefined): { key: string; hold?: CordonHold }[] {
  return Object.entries(annotations ?? {})
    .filter(([k]) => k.startsWith(CORDON_PREFIX))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, value]) => {
      const hold = parseHold(value);
      return hold ? { key, hold } : { key };
    });
}

const holderName = (h: { key: string; hold?: CordonHold }) => h.hold?.investigation ?? `unreadable hold ${h.key}`;

export interface CordonPlan {
  /** The node's state before any casefile cordon. */
  wasUnschedulable: boolean;
  /** Where wasUnschedulable comes from, for the message. */
  basis: 'own-hold' | 'other-holds' | 'node';
  /** The annotation value to set (an existing own hold is kept as written). */
  annotation: string;
  /** Other Investigations holding the node cordoned. */
  otherHolders: string[];
  /** A patch is needed: the hold is missing or the node is schedulable. */
  needsPatch: boolean;
}

export function planCordon(
  node: { unschedulable?: boolean; annotations?: Record<string, string> },
  ownKey: string,
  investigation: string,
  now: string,
): CordonPlan {
  const unschedulable = node.unschedulable === true;
  const holds = casefileHolds(node.annotations);
  const own = holds.find((h) => h.key === ownKey)?.hold;
  const others = holds.filter((h) => h.key !== ownKey);
  const otherHolders = others.map(holderName);
  if (own) {
    return { wasUnschedulable: own.wasUnschedulable, basis: 'own-hold', annotation: node.annotations![ownKey]!, otherHolders, needsPatch: !unschedulable };
  }
  if (others.length > 0) {
    // The node is (or was) cordoned by casefile already: its original state is what the other holds recorded.
    // An unreadable hold counts as "was unschedulable": never uncordon on a guess.
    const wasUnschedulable = others.some((h) => !h.hold || h.hold.wasUnschedulable);
    return { wasUnschedulable, basis: 'other-holds', annotation: cordonAnnotation(investigation, wasUnschedulable, now), otherHolders, needsPatch: true };
  }
  return { wasUnschedulable: unschedulable, basis: 'node', annotation: cordonAnnotation(investigation, unschedulable, now), otherHolders, needsPatch: true };
}

export interface UncordonPlan {
  /** This Investigation holds the node. */
  held: boolean;
  /** Annotation keys to remove: our own hold and holds of Investigations that no longer exist. */
  remove: string[];
  /** Set spec.unschedulable=false. */
  uncordon: boolean;
  /** Investigations still holding the node after this release. */
  remainingHolders: string[];
  why: string;
}

/**
 * Whether releasing this Investigation's hold uncordons the node: only when no other casefile hold
 * remains and the node was schedulable before casefile cordoned it. `stale` are holds of Investigations
 * that no longer exist; they are removed and do not keep the node cordoned.
 */
export function planUncordon(annotations: Record<string, string> | undefined, ownKey: string, stale: ReadonlySet<string> = new Set()): UncordonPlan {
  const holds = casefileHolds(annotations);
  const ownEntry = holds.find((h) => h.key === ownKey);
  const staleKeys = holds.filter((h) => h.key !== ownKey && stale.has(h.key)).map((h) => h.key);
  const remaining = holds.filter((h) => h.key !== ownKey && !stale.has(h.key));
  const remainingHolders = remaining.map(holderName);
  if (!ownEntry) {
    return { held: false, remove: staleKeys, uncordon: false, remainingHolders, why: 'this Investigation holds no cordon on the node (already released, or never cordoned)' };
  }
  const remove = [ownKey, ...staleKeys];
  if (remaining.length > 0) {
    const who = remainingHolders.length === 1 ? `another Investigation (${remainingHolders[0]}) still holds` : `other Investigations (${remainingHolders.join(', ')}) still hold`;
    return { held: true, remove, uncordon: false, remainingHolders, why: `${who} the node cordoned` };
  }
  if (!ownEntry.hold) {
    return { held: true, remove, uncordon: false, remainingHolders, why: 'the hold annotation is unreadable, so the state before casefile is unknown: left unschedulable' };
  }
  if (ownEntry.hold.wasUnschedulable) {
    return { held: true, remove, uncordon: false, remainingHolders, why: 'the node was already unschedulable before casefile' };
  }
  return { held: true, remove, uncordon: true, remainingHolders, why: 'the last casefile hold was released and the node was schedulable before casefile' };
}

export function originalNodeArtifact(node: string): string {
  return `containment/originals/node-${sanitizeSegment(node)}.json`;
}
