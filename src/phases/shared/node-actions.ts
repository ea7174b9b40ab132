// The operator's own check before a node-level or cluster-level action (node collector, cordon, RBAC
// narrowing). Who may ask for one is decided at admission (config/admission/node-actions.yaml: the
// requester needs `use` on casefile.dev nodeactions/<action>); the operator acts only while that gate is
// in place, so an Investigation that reached it was admitted by it, and only while the installation
// enabled the action for casefile itself (the optional RBAC component grants the operator the same verb).
// A refusal is a terminal condition: nothing retries it until the installation changes.
import type { V1ValidatingAdmissionPolicy, V1ValidatingAdmissionPolicyBinding } from '@kubernetes/client-node';
import { NODE_ACTIONS_GROUP, NODE_ACTIONS_RESOURCE, NODE_ACTIONS_VERB, nodeActionFields, type NodeAction } from '../../api/node-actions.js';
import { isNotFound } from '../../kube/errors.js';
import { errorMessage } from '../../errors.js';
import type { PhaseContext, PhaseOutcome } from '../phase.js';

/** Name of the ValidatingAdmissionPolicy and of its binding in config/admission/node-actions.yaml. */
export const NODE_ACTIONS_POLICY = 'casefile-node-actions';
/** The kustomize component that enables each action for the operator (config/rbac/components/). */
export const nodeActionComponents: Record<NodeAction, string> = {
  'node-collector': 'config/rbac/components/node-collector',
  cordon: 'config/rbac/components/cordon',
  'rbac-narrowing': 'config/rbac/components/rbac-narrowing',
};

export interface NodeActionFacts {
  requireAdmission: boolean;
  policy?: V1ValidatingAdmissionPolicy;
  binding?: V1ValidatingAdmissionPolicyBinding;
  /** The API server's answer: may the operator itself `use` this action? */
  operatorGranted: boolean;
}

/** Why the admission gate is not in force, or undefined when it is. */
export function admissionGap(facts: Pick<NodeActionFacts, 'policy' | 'binding'>): string | undefined {
  if (!facts.policy) return `ValidatingAdmissionPolicy ${NODE_ACTIONS_POLICY} is not installed`;
  if (!facts.binding) return `ValidatingAdmissionPolicyBinding ${NODE_ACTIONS_POLICY} is not installed`;
  if (facts.binding.spec?.policyName !== NODE_ACTIONS_POLICY) return `binding ${NODE_ACTIONS_POLICY} points at policy ${facts.binding.spec?.policyName ?? '(none)'}`;
  if (!facts.binding.spec?.validationActions?.includes('Deny')) return `binding ${NODE_ACTIONS_POLICY} does not deny (validationActions ${JSON.stringify(facts.binding.spec?.validationActions ?? [])})`;
  return undefined;
}

/** The pure decision: a terminal refusal, or undefined when the action may run. */
export function decideNodeAction(action: NodeAction, facts: NodeActionFacts): PhaseOutcome | undefined {
  const gap = facts.requireAdmission ? admissionGap(facts) : undefined;
  if (gap) {
    return {
      status: 'False',
      reason: 'NodeActionsNotAdmitted',
      message:
        `${nodeActionFields[action]} is a node-level action and ${gap}: without it a namespace admin could ask for it. ` +
        `Apply config/admission (kubectl apply -k config/admission), or start the operator with --no-require-node-actions-admission on a cluster without ValidatingAdmissionPolicy`,
    };
  }
  if (!facts.operatorGranted) {
    return {
      status: 'False',
      reason: 'NodeActionNotInstalled',
      message:
        `${nodeActionFields[action]}: this installation has not enabled ${action} for casefile (the operator may not ${NODE_ACTIONS_VERB} ` +
        `${NODE_ACTIONS_RESOURCE}/${action} in ${NODE_ACTIONS_GROUP}); add the kustomize component ${nodeActionComponents[action]}`,
    };
  }
  return undefined;
}

/** Reads the facts from the API server and decides; called by each phase before its node-level work. */
export async function nodeActionRefusal(ctx: PhaseContext, action: NodeAction): Promise<PhaseOutcome | undefined> {
  const requireAdmission = ctx.config.requireNodeActionsAdmission;
  const [policy, binding, operatorGranted] = await Promise.all([
    requireAdmission ? orUndefined(ctx.kube.admission.readValidatingAdmissionPolicy({ name: NODE_ACTIONS_POLICY })) : undefined,
    requireAdmission ? orUndefined(ctx.kube.admission.readValidatingAdmissionPolicyBinding({ name: NODE_ACTIONS_POLICY })) : undefined,
    operatorMay(ctx, action),
  ]);
  const refusal = decideNodeAction(action, { requireAdmission, policy, binding, operatorGranted });
  if (refusal) ctx.log.warn({ action, reason: refusal.reason }, 'node-level action refused');
  return refusal;
}

async function orUndefined<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new Error(`reading the admission policy ${NODE_ACTIONS_POLICY}: ${errorMessage(err)}`);
  }
}

async function operatorMay(ctx: PhaseContext, action: NodeAction): Promise<boolean> {
  const review = await ctx.kube.authz.createSelfSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { group: NODE_ACTIONS_GROUP, resource: NODE_ACTIONS_RESOURCE, name: action, verb: NODE_ACTIONS_VERB } },
    },
  });
  return review.status?.allowed === true;
}
