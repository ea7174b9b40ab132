// Node-level and cluster-level actions: what an Investigation can make casefile do beyond the
// suspect's own namespace. Each needs an explicit grant (`use` on casefile.dev nodeactions/<name>)
// that namespace roles never carry; the admission policy config/admission/node-actions.yaml checks it
// for the requester, and src/phases/shared/node-actions.ts re-checks before the operator acts.

export const NODE_ACTIONS_GROUP = 'casefile.dev';
export const NODE_ACTIONS_RESOURCE = 'nodeactions';
export const NODE_ACTIONS_VERB = 'use';

export const nodeActions = ['node-collector', 'cordon', 'rbac-narrowing'] as const;
export type NodeAction = (typeof nodeActions)[number];

/** The spec field that asks for each action (as the user writes it). */
export const nodeActionFields: Record<NodeAction, string> = {
  'node-collector': 'spec.evidence.node.enabled',
  cordon: 'spec.containment.cordonNode',
  'rbac-narrowing': 'spec.containment.rbac.narrow',
};

interface SpecLike {
  evidence?: { node?: { enabled?: boolean } };
  containment?: { cordonNode?: boolean; rbac?: { narrow?: boolean } };
}

/** The node-level actions a (possibly partial) spec or policy template asks for. */
export function requestedNodeActions(spec: SpecLike | undefined): NodeAction[] {
  const asked: Record<NodeAction, boolean> = {
    'node-collector': spec?.evidence?.node?.enabled === true,
    cordon: spec?.containment?.cordonNode === true,
    'rbac-narrowing': spec?.containment?.rbac?.narrow === true,
  };
  return nodeActions.filter((a) => asked[a]);
}
