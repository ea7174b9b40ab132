// The API answers src/phases/shared/node-actions.ts reads, for phase tests with a fake Kube: the admission
// policy and its binding installed (or not) and the operator's own grant (SelfSubjectAccessReview).
import { NODE_ACTIONS_POLICY } from '../../../../src/phases/shared/node-actions.js';

export function nodeActionsApi(opts: { admission?: boolean; granted?: boolean } = {}) {
  const { admission = true, granted = true } = opts;
  const notFound = () => Object.assign(new Error('not found'), { code: 404 });
  return {
    admission: {
      readValidatingAdmissionPolicy: async () => {
        if (!admission) throw notFound();
        return { metadata: { name: NODE_ACTIONS_POLICY }, spec: {} };
      },
      readValidatingAdmissionPolicyBinding: async () => {
        if (!admission) throw notFound();
        return { metadata: { name: NODE_ACTIONS_POLICY }, spec: { policyName: NODE_ACTIONS_POLICY, validationActions: ['Deny'] } };
      },
    },
    createSelfSubjectAccessReview: async () => ({ status: { allowed: granted } }),
  };
}
