// NodeCordoned: mark the suspect pod's node unschedulable so no new pod (a replacement, a debug or
// collector pod of someone else) lands beside a possibly compromised runtime. Cordon does not stop
// anything already running there, the suspect process included; the condition says so.
//
// Several Investigations may cordon the same node. Each leaves its own hold on the Node, the annotation
// `cordon.casefile.dev/<uid8>` = {"investigation":"ns/name","wasUnschedulable":bool,"at":iso}, where
// wasUnschedulable is the node's state before ANY casefile cordon (copied from an existing hold when there
// is one). Release removes only its own hold, and uncordons only when it removes the last hold and the
// node was schedulable before casefile touched it.
import type { V1Node } from '@kubernetes/client-node';
import { GROUP, INVESTIGATION_PLURAL, VERSION, type ContainmentStatus } from '../api/investigation.js';
import { errorMessage, isConflict, isForbidden, isNotFound } from '../engine/kube.js';
import { sanitizeSegment } from '../evidence/paths.js';
import { evidenceErrorReason } from '../evidence/store.js';
import { nodeActionRefusal } from '../security/node-actions.js';
import { RetryableError, type Phase, type PhaseContext, type PhaseOutcome, type ReleaseOutcome } from './phase.js';

const PHASE = 'NodeCordoned';
export const CORDON_PREFIX = 'cordon.casefile.dev/';

// ---- pure decision logic (unit-tested) ----

export interface CordonHold {
  investigation: string;
  wasUnschedulable: boolean;
  at: string;
}

/** This Investigation's annotation key: the first 8 hex digits of its UID (dashes removed). */
export function cordonKey(uid: string): string {
  return `${CORDON_PREFIX}${uid.replace(/-/g, '').slice(0, 8).toLowerCase()}`;
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

// ---- the phase ----

const CAVEAT =
  'cordon keeps new pods off the node; it does not stop the suspect process or any pod already running there ' +
  '(DaemonSet pods and pods tolerating node.kubernetes.io/unschedulable can still be scheduled)';

export const nodeCordoned: Phase = {
  condition: 'NodeCordoned',
  containment: true,
  needsTarget: true,
  enabled: (spec) => spec.containment.cordonNode,
  async run(ctx): Promise<PhaseOutcome> {
    const nodeName = ctx.status.target?.node;
    const containment = (ctx.status.containment ??= {} as ContainmentStatus);
    if (!nodeName) {
      containment.cordoned = false;
      return { status: 'False', reason: 'NodeUnknown', message: `pod ${ctx.spec.target.pod} was never scheduled to a node: nothing to cordon` };
    }
    const refusal = await nodeActionRefusal(ctx, 'cordon');
    if (refusal) return refusal;
    try {
      return await cordon(ctx, nodeName, containment);
    } catch (err) {
      if (isForbidden(err)) {
        return { status: 'False', reason: 'Forbidden', message: `the operator may not cordon node ${nodeName}: ${errorMessage(err)}; it needs get and patch on nodes` };
      }
      throw passThrough(err, `cordoning node ${nodeName}`);
    }
  },
  async release(ctx): Promise<ReleaseOutcome> {
    const nodeName = ctx.status.target?.node;
    if (!nodeName) return { message: 'the pod was never scheduled to a node: nothing to restore' };
    try {
      return await uncordon(ctx, nodeName);
    } catch (err) {
      throw passThrough(err, `releasing the cordon of node ${nodeName}`);
    }
  },
};

function passThrough(err: unknown, doing: string): unknown {
  if (err instanceof RetryableError || evidenceErrorReason(err)) return err;
  if (isConflict(err)) return new RetryableError(`${doing}: the node changed meanwhile (409 Conflict)`, 'Conflict');
  return new RetryableError(`${doing}: ${errorMessage(err)}`);
}

async function readNode(ctx: PhaseContext, name: string): Promise<V1Node | undefined> {
  try {
    return await ctx.kube.core.readNode({ name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const investigationName = (ctx: PhaseContext) => `${ctx.investigation.metadata.namespace}/${ctx.investigation.metadata.name}`;

function nodeGone(nodeName: string, containment: ContainmentStatus): PhaseOutcome {
  containment.cordoned = false;
  return {
    status: 'False',
    reason: 'NodeNotFound',
    message: `node ${nodeName} no longer exists: nothing to cordon; network isolation and capture are unaffected`,
  };
}

async function cordon(ctx: PhaseContext, nodeName: string, containment: ContainmentStatus): Promise<PhaseOutcome> {
  const node = await readNode(ctx, nodeName);
  if (!node) return nodeGone(nodeName, containment);
  // The state as first seen, before this Investigation's cordon; a rerun keeps the first copy.
  await ctx.caseFile.writeJSON(originalNodeArtifact(nodeName), {
    node: nodeName,
    uid: node.metadata?.uid,
    resourceVersion: node.metadata?.resourceVersion,
    unschedulable: node.spec?.unschedulable === true,
    annotations: node.metadata?.annotations ?? {},
    taints: node.spec?.taints ?? [],
    capturedAt: new Date().toISOString(),
  }, { phase: PHASE });

  const key = cordonKey(ctx.investigation.metadata.uid);
  const plan = planCordon({ unschedulable: node.spec?.unschedulable, annotations: node.metadata?.annotations }, key, investigationName(ctx), new Date().toISOString());
  const hadHold = node.metadata?.annotations?.[key] !== undefined && plan.basis === 'own-hold';
  if (plan.needsPatch) {
    try {
      await ctx.kube.core.patchNode(
        {
          name: nodeName,
          body: { metadata: { resourceVersion: node.metadata?.resourceVersion, annotations: { [key]: plan.annotation } }, spec: { unschedulable: true } },
        },
        ctx.kube.mergePatch,
      );
    } catch (err) {
      if (isNotFound(err)) return nodeGone(nodeName, containment);
      throw err;
    }
    await ctx.caseFile.record('node-cordoned', {
      node: nodeName,
      annotation: key,
      wasUnschedulable: plan.wasUnschedulable,
      wasUnschedulableFrom: plan.basis,
      ...(plan.otherHolders.length ? { alsoHeldBy: plan.otherHolders } : {}),
      ...(hadHold ? { reapplied: true } : {}),
    }, PHASE);
  }
  await recordOnce(ctx, 'limitation', { finding: `node ${nodeName}: ${CAVEAT}` });

  containment.cordoned = true;
  containment.nodeWasUnschedulable = plan.wasUnschedulable;

  let state: string;
  if (plan.wasUnschedulable) state = `node ${nodeName} was already unschedulable before casefile; this Investigation's hold is recorded and release will leave it unschedulable`;
  else if (plan.otherHolders.length > 0) state = `node ${nodeName} is cordoned (also held by ${plan.otherHolders.join(', ')}); release uncordons it only when the last casefile hold is released`;
  else state = `node ${nodeName} cordoned (spec.unschedulable=true); release will uncordon it`;
  if (hadHold && plan.needsPatch) state += ' (it had been uncordoned meanwhile and was cordoned again)';
  return {
    status: 'True',
    reason: plan.wasUnschedulable ? 'AlreadyUnschedulable' : 'Cordoned',
    message: `${state}; ${CAVEAT}`,
  };
}

/** Holds of Investigations that no longer exist (deleted without release): they must not keep a node cordoned forever. */
async function staleHolds(ctx: PhaseContext, annotations: Record<string, string> | undefined, ownKey: string): Promise<Set<string>> {
  const stale = new Set<string>();
  for (const { key, hold } of casefileHolds(annotations)) {
    if (key === ownKey || !hold) continue;
    const [namespace, name, ...rest] = hold.investigation.split('/');
    if (!namespace || !name || rest.length > 0) continue;
    try {
      const inv = (await ctx.kube.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVESTIGATION_PLURAL, name })) as {
        metadata?: { uid?: string };
      };
      // Same name, different UID: the holder was deleted and a new Investigation took its name.
      if (inv.metadata?.uid && cordonKey(inv.metadata.uid) !== key) stale.add(key);
    } catch (err) {
      if (isNotFound(err)) stale.add(key);
      // Any other answer: assume the holder exists (never uncordon on a guess).
    }
  }
  return stale;
}

async function uncordon(ctx: PhaseContext, nodeName: string): Promise<ReleaseOutcome> {
  const node = await readNode(ctx, nodeName);
  if (!node) {
    await recordOnce(ctx, 'node-cordon-released', { node: nodeName, outcome: 'NodeGone' });
    return { message: `node ${nodeName} no longer exists: nothing to restore` };
  }
  const key = cordonKey(ctx.investigation.metadata.uid);
  const annotations = node.metadata?.annotations;
  const plan = planUncordon(annotations, key, await staleHolds(ctx, annotations, key));
  const differences: string[] = [];
  const unschedulable = node.spec?.unschedulable === true;
  if (plan.held && !unschedulable) differences.push(`node ${nodeName} was uncordoned by someone else while casefile held it`);
  if (!plan.held && ctx.status.containment?.cordoned === true && unschedulable) {
    differences.push(`this Investigation's hold annotation ${key} was removed by someone else; node ${nodeName} left unschedulable`);
  }
  const staleRemoved = plan.remove.filter((k) => k !== key);
  if (plan.remove.length > 0) {
    await ctx.kube.core.patchNode(
      {
        name: nodeName,
        body: {
          metadata: { resourceVersion: node.metadata?.resourceVersion, annotations: Object.fromEntries(plan.remove.map((k) => [k, null])) },
          ...(plan.uncordon ? { spec: { unschedulable: false } } : {}),
        },
      },
      ctx.kube.mergePatch,
    );
    await ctx.caseFile.record('node-cordon-released', {
      node: nodeName,
      annotation: key,
      uncordoned: plan.uncordon,
      why: plan.why,
      ...(staleRemoved.length ? { staleHoldsRemoved: staleRemoved } : {}),
      ...(differences.length ? { differences } : {}),
    }, PHASE);
  }
  if (ctx.status.containment) ctx.status.containment.cordoned = false;

  const stale = staleRemoved.length ? `; removed ${staleRemoved.length} hold(s) of Investigations that no longer exist (${staleRemoved.join(', ')})` : '';
  let message: string;
  if (!plan.held) message = `node ${nodeName}: ${plan.why}; spec.unschedulable left as is${stale}`;
  else if (plan.uncordon) message = `node ${nodeName} uncordoned: ${plan.why}${stale}`;
  else message = `node ${nodeName} left unschedulable: ${plan.why}; this Investigation's hold removed${stale}`;
  return { message, ...(differences.length ? { differences } : {}) };
}

async function recordOnce(ctx: PhaseContext, action: string, detail: Record<string, unknown>): Promise<void> {
  const key = JSON.stringify(detail);
  if (ctx.caseFile.custodyRecords().some((r) => r.action === action && r.phase === PHASE && JSON.stringify(r.detail) === key)) return;
  await ctx.caseFile.record(action, detail, PHASE);
}
