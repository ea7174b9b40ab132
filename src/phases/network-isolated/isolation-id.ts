// Which id names a case's deny-all policy and incident label (policy.ts). A case intake opened in
// ContainFirst was isolated before its Investigation existed, under an id intake drew; once the create
// returned, intake claimed that policy for the Investigation's UID (src/intake/isolate-ahead.ts). Only
// the operator writes that claim, so it is what adoption trusts: the Investigation's own annotation is a
// hint to wait for the claim, never a claim. A look-alike carrying someone else's id gets only its own.
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { Investigation, InvestigationStatus } from '../../api/investigation.js';
import { RequeueAfter } from '../../errors.js';
import type { Kube } from '../../kube/client.js';
import { caseIsolationId, INVESTIGATION_UID, ISOLATED_AHEAD, MANAGED_BY } from './policy.js';

/** Intake claims the policy it made ahead within this long of starting, or takes it back. */
export const AHEAD_CLAIM_MS = 5000;
/** A case annotated as isolated ahead waits this long from its creation for intake's claim (clock skew included). */
const AHEAD_WAIT_MS = 3 * AHEAD_CLAIM_MS;

const ID = /^[0-9a-f]{8}$/;

/** The id in the Investigation's annotation, if it is one intake could have drawn. */
export function aheadIdOf(inv: Pick<Investigation, 'metadata'>): string | undefined {
  const id = inv.metadata.annotations?.[ISOLATED_AHEAD];
  return id && ID.test(id) ? id : undefined;
}

/** The id of the label status.containment recorded (`casefile.dev/incident-<id>=isolated`). */
function recordedId(status: InvestigationStatus | undefined): string | undefined {
  return /^casefile\.dev\/incident-([0-9a-f]{8})=/.exec(status?.containment?.label ?? '')?.[1];
}

/**
 * The case's id: the recorded one; else the id of a casefile policy claimed for this UID (one made ahead
 * first); else, while intake may still claim the one it made ahead, a RequeueAfter; else the UID's prefix.
 * `policies`: the namespace's, when the caller has listed them already (else casefile's are listed here).
 */
export async function resolveIsolationId(
  kube: Kube,
  inv: Investigation,
  status: InvestigationStatus | undefined,
  policies?: readonly V1NetworkPolicy[],
  now = Date.now(),
): Promise<string> {
  const recorded = recordedId(status);
  if (recorded) return recorded;
  const selector = Object.entries(MANAGED_BY).map(([k, v]) => `${k}=${v}`).join(',');
  const listed = policies ?? (await kube.networking.listNamespacedNetworkPolicy({ namespace: inv.metadata.namespace, labelSelector: selector })).items;
  const ours = listed.filter((p) => Object.entries(MANAGED_BY).every(([k, v]) => p.metadata?.labels?.[k] === v) && p.metadata?.annotations?.[INVESTIGATION_UID] === inv.metadata.uid);
  const policy = ours.find((p) => p.metadata?.labels?.[ISOLATED_AHEAD]) ?? ours[0];
  const claimed = /^casefile-([0-9a-f]{8})$/.exec(policy?.metadata?.name ?? '')?.[1];
  if (claimed) return claimed;
  const created = new Date(inv.metadata.creationTimestamp ?? 0).getTime();
  if (aheadIdOf(inv) && now - created < AHEAD_WAIT_MS) {
    throw new RequeueAfter('intake isolated the pod ahead of this Investigation and has not yet claimed its policy for it', 250, 'IsolatingAhead');
  }
  return caseIsolationId(inv);
}
