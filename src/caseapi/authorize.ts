// Each case-file request is authorized by the API server's own authorizer for the forwarded user:
// `get` on investigations/casefile in casefile.dev, in the case's namespace and by its name (ClusterRole
// casefile-viewer grants it). The aggregator has already authorized the aggregated resource itself; this
// check ties reading evidence to the Investigation, and holds even for a request that reached casefile
// without passing the aggregator's own check.
import type { Kube } from '../kube/client.js';
import { GROUP, INVESTIGATION_PLURAL } from '../api/investigation.js';
import type { UserIdentity } from './front-proxy.js';

export const CASE_FILE_SUBRESOURCE = 'casefile';

export async function mayReadCaseFile(kube: Kube, who: UserIdentity, namespace: string, name: string): Promise<{ allowed: boolean; reason: string }> {
  const review = await kube.authz.createSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: who.user,
        groups: who.groups,
        extra: who.extra,
        resourceAttributes: { verb: 'get', group: GROUP, resource: INVESTIGATION_PLURAL, subresource: CASE_FILE_SUBRESOURCE, namespace, name },
      },
    },
  });
  const s = review.status;
  return { allowed: s?.allowed === true && s.denied !== true, reason: s?.reason || s?.evaluationError || '' };
}
