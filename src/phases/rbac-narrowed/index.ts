// RBACNarrowed: the suspect's ServiceAccount taken out of the bindings that name it (apply.ts), put back
// from the saved originals on release (restore.ts). Pure planning in plan.ts, the authorizer in access.ts.
// What this cannot do is said too: group grants (system:serviceaccounts, ...) cannot be narrowed to one
// account, other pods running as the same ServiceAccount lose the same permissions, and the mounted
// token stays valid: only future API requests are denied, running processes are not stopped.
import { during, TerminalError } from '../../errors.js';
import { isForbidden } from '../../kube/errors.js';
import { nodeActionRefusal } from '../shared/node-actions.js';
import { podGone } from '../manifest-captured.js';
import type { Phase, PhaseOutcome, ReleaseOutcome } from '../phase.js';
import { narrow } from './apply.js';
import { restore } from './restore.js';

export const rbacNarrowed: Phase = {
  condition: 'RBACNarrowed',
  containment: true,
  needsTarget: true,
  enabled: (spec) => spec.containment.rbac.narrow,
  async run(ctx): Promise<PhaseOutcome> {
    const pod = await ctx.livePod();
    if (!pod) return podGone(ctx.spec.target.pod);
    const refusal = await nodeActionRefusal(ctx, 'rbac-narrowing');
    if (refusal) return refusal;
    try {
      return await narrow(ctx, ctx.investigation.metadata.namespace, pod.spec?.serviceAccountName ?? 'default', pod.metadata?.uid);
    } catch (err) {
      if (isForbidden(err)) {
        throw new TerminalError(
          `the operator may not change RBAC: ${during('narrowing RBAC', err).message}; it needs get/list/update on rolebindings and clusterrolebindings ` +
            '(and bind on the roles they reference); anything already changed is recorded in containment/originals/ and restored on release',
          'Forbidden',
        );
      }
      throw during('narrowing RBAC', err);
    }
  },
  async release(ctx): Promise<ReleaseOutcome> {
    try {
      return await restore(ctx);
    } catch (err) {
      throw during('restoring RBAC', err);
    }
  },
};
