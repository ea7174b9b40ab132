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
import { GROUP, INVESTIGATION_PLURAL, VERSION, type ContainmentStatus } from '../../api/investigation.js';
import { isForbidden, isNotFound } from '../../kube/errors.js';
import { errorMessage, during } from '../../errors.js';
import type { Phase, PhaseContext, PhaseOutcome, ReleaseContext, ReleaseOutcome } from '../phase.js';
import { nodeActionRefusal } from '../shared/node-actions.js';
import { recordOnce } from '../shared/record-once.js';
import { casefileHolds, cordonKey, originalNodeArtifact, PHASE, planCordon, planUncordon } from './plan.js';

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
      throw during(`cordoning node ${nodeName}`, err);
    }
  },
  async release(ctx): Promise<ReleaseOutcome> {
    const nodeName = ctx.status.target?.node;
    if (!nodeName) return { message: 'the pod was never scheduled to a node: nothing to restore' };
    try {
      return await uncordon(ctx, nodeName);
    } catch (err) {
      throw during(`releasing the cordon of node ${nodeName}`, err);
    }
  },
};

async function readNode(ctx: ReleaseContext, name: string): Promise<V1Node | undefined> {
  try {
    return await ctx.kube.core.readNode({ name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const investigationName = (ctx: ReleaseContext) => `${ctx.investigation.metadata.namespace}/${ctx.investigation.metadata.name}`;

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
  await recordOnce(ctx, PHASE, 'limitation', { finding: `node ${nodeName}: ${CAVEAT}` });

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
async function staleHolds(ctx: ReleaseContext, annotations: Record<string, string> | undefined, ownKey: string): Promise<Set<string>> {
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

async function uncordon(ctx: ReleaseContext, nodeName: string): Promise<ReleaseOutcome> {
  const node = await readNode(ctx, nodeName);
  if (!node) {
    await recordOnce(ctx, PHASE, 'node-cordon-released', { node: nodeName, outcome: 'NodeGone' });
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
