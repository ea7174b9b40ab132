import { describe, expect, it } from '@jest/globals';
import type { V1ValidatingAdmissionPolicy, V1ValidatingAdmissionPolicyBinding } from '@kubernetes/client-node';
import { nodeActions, requestedNodeActions } from '../../../../src/api/node-actions.js';
import { admissionGap, decideNodeAction, NODE_ACTIONS_POLICY, type NodeActionFacts } from '../../../../src/phases/shared/node-actions.js';

const policy: V1ValidatingAdmissionPolicy = { metadata: { name: NODE_ACTIONS_POLICY }, spec: {} };
const binding = (over: Partial<NonNullable<V1ValidatingAdmissionPolicyBinding['spec']>> = {}): V1ValidatingAdmissionPolicyBinding => ({
  metadata: { name: NODE_ACTIONS_POLICY },
  spec: { policyName: NODE_ACTIONS_POLICY, validationActions: ['Deny'], ...over },
});
const installed: NodeActionFacts = { requireAdmission: true, policy, binding: binding(), operatorGranted: true };

describe('which spec fields are node-level actions', () => {
  it('names each action a spec or template asks for, and none for a plain case', () => {
    expect(requestedNodeActions({})).toEqual([]);
    expect(requestedNodeActions(undefined)).toEqual([]);
    expect(requestedNodeActions({ evidence: { node: { enabled: false } }, containment: { cordonNode: false, rbac: { narrow: false } } })).toEqual([]);
    expect(requestedNodeActions({ evidence: { node: { enabled: true } } })).toEqual(['node-collector']);
    expect(requestedNodeActions({ containment: { cordonNode: true } })).toEqual(['cordon']);
    expect(requestedNodeActions({ containment: { rbac: { narrow: true } } })).toEqual(['rbac-narrowing']);
    expect(requestedNodeActions({ evidence: { node: { enabled: true } }, containment: { cordonNode: true, rbac: { narrow: true } } })).toEqual([...nodeActions]);
  });
});

describe('the operator refuses node-level work unless admission gates it and the installation enabled it', () => {
  it.each(nodeActions)('%s runs when the policy is installed and denies, and the operator holds the grant', (action) => {
    expect(decideNodeAction(action, installed)).toBeUndefined();
  });

  it.each([
    ['no policy', { policy: undefined }, /ValidatingAdmissionPolicy casefile-node-actions is not installed/],
    ['no binding', { binding: undefined }, /ValidatingAdmissionPolicyBinding casefile-node-actions is not installed/],
    ['a binding for another policy', { binding: binding({ policyName: 'something-else' }) }, /points at policy something-else/],
    ['a binding that only warns', { binding: binding({ validationActions: ['Warn', 'Audit'] }) }, /does not deny/],
  ])('%s: refused with a terminal reason naming the fix', (_what, change, why) => {
    const refusal = decideNodeAction('cordon', { ...installed, ...change });
    expect(refusal).toMatchObject({ status: 'False', reason: 'NodeActionsNotAdmitted' });
    expect(refusal!.message).toMatch(why);
    expect(refusal!.message).toMatch(/spec\.containment\.cordonNode/);
    expect(refusal!.message).toMatch(/--no-require-node-actions-admission/);
  });

  it('--no-require-node-actions-admission: a cluster without the policy still runs the action', () => {
    expect(decideNodeAction('node-collector', { requireAdmission: false, operatorGranted: true })).toBeUndefined();
  });

  it('an action whose component is not installed is refused even when admission is in place', () => {
    const refusal = decideNodeAction('rbac-narrowing', { ...installed, operatorGranted: false });
    expect(refusal).toMatchObject({ status: 'False', reason: 'NodeActionNotInstalled' });
    expect(refusal!.message).toMatch(/config\/rbac\/components\/rbac-narrowing/);
    expect(decideNodeAction('rbac-narrowing', { requireAdmission: false, operatorGranted: false })?.reason).toBe('NodeActionNotInstalled');
  });

  it('admissionGap is empty only for a denying binding of this policy', () => {
    expect(admissionGap({ policy, binding: binding() })).toBeUndefined();
    expect(admissionGap({ policy, binding: binding({ validationActions: ['Deny', 'Audit'] }) })).toBeUndefined();
    expect(admissionGap({ policy, binding: binding({ validationActions: [] }) })).toMatch(/does not deny/);
  });
});
