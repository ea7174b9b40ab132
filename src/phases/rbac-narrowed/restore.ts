// RBACNarrowed, releasing: each binding recorded in the case file gets the ServiceAccount's subject(s)
// back by an update (narrowing never deleted one, so nothing is re-created), merged into what is there
// now. A RoleBinding whose namespace is terminating or gone went with it: that is recorded, not retried.
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1RoleBinding } from '@kubernetes/client-node';
import { isConflict, isNotFound } from '../../kube/errors.js';
import { RetryableError } from '../../errors.js';
import type { ReleaseContext, ReleaseOutcome } from '../phase.js';
import { savedOriginals, type SavedObject } from '../shared/originals.js';
import { recordOnce } from '../shared/record-once.js';
import { checkLabel, type AccessResult, type AccessSnapshot } from './access.js';
import { ACCESS_AFTER, ACCESS_BEFORE, accessSnapshot, readJSONArtifact, SETTLE_ATTEMPTS, SETTLE_DELAY_MS } from './apply.js';
import { namespaceGoing, readBinding, updateBinding } from './client.js';
import { bindingLabel, namesServiceAccount, PHASE, planRestore, type BindingKind, type BindingRef } from './plan.js';

type Outcome = 'SubjectRestored' | 'AlreadyPresent' | 'NotRestored' | 'WentWithNamespace';
const CONFLICT_ATTEMPTS = 3;

interface Saved {
  artifact: string;
  kind: BindingKind;
  ref: BindingRef;
  object: V1RoleBinding;
}

/** The bindings casefile saved before changing them; what each is comes from the saved object, not its file name. */
async function savedBindings(ctx: ReleaseContext): Promise<Saved[]> {
  const all = [...(await savedOriginals<V1RoleBinding>(ctx, 'RoleBinding')), ...(await savedOriginals<V1RoleBinding>(ctx, 'ClusterRoleBinding'))];
  return all.map(({ artifact, object }: SavedObject<V1RoleBinding>) => {
    const kind = object.kind as BindingKind;
    const ref: BindingRef = kind === 'RoleBinding' ? { kind, namespace: object.metadata?.namespace, name: object.metadata!.name! } : { kind, name: object.metadata!.name! };
    return { artifact, kind, ref, object };
  });
}

export async function restore(ctx: ReleaseContext): Promise<ReleaseOutcome> {
  const namespace = ctx.investigation.metadata.namespace;
  const originals = await savedBindings(ctx);
  if (originals.length === 0) return { message: 'RBAC was not narrowed (no saved originals): nothing to restore' };
  const before = await readJSONArtifact<AccessSnapshot>(ctx, ACCESS_BEFORE);
  const sa = before?.serviceAccount ?? ctx.status.target?.serviceAccount;
  if (!sa) return { message: `cannot tell which ServiceAccount was narrowed: ${originals.length} saved binding(s) left as they are`, differences: originals.map((o) => `${bindingLabel(o.ref)} not restored; original is ${o.artifact}`) };

  const going = new Map<string, boolean>();
  const namespaceIsGoing = async (ns: string) => {
    if (!going.has(ns)) going.set(ns, await namespaceGoing(ctx, ns));
    return going.get(ns)!;
  };
  const counts: Record<Outcome, number> = { SubjectRestored: 0, AlreadyPresent: 0, NotRestored: 0, WentWithNamespace: 0 };
  const differences: string[] = [];
  for (const o of originals) {
    const { outcome, differences: diffs } = await restoreBinding(ctx, o, namespace, sa, namespaceIsGoing);
    counts[outcome]++;
    differences.push(...diffs);
    const detail = { kind: o.kind, ...(o.ref.namespace ? { namespace: o.ref.namespace } : {}), name: o.ref.name, outcome, original: o.artifact, ...(diffs.length ? { differences: diffs } : {}) };
    if (outcome === 'SubjectRestored') await ctx.caseFile.record('rbac-restored', detail, PHASE);
    else await recordOnce(ctx, PHASE, 'rbac-restored', detail);
  }
  const summary = `ServiceAccount ${sa}: ${originals.length} saved binding(s): ${counts.SubjectRestored} ServiceAccount re-added, ${counts.AlreadyPresent} already restored, ` +
    `${counts.WentWithNamespace} went with their namespace, ${counts.NotRestored} not restored`;
  // The ServiceAccount lives in the case's namespace: with that namespace going, its access is moot.
  if (await namespaceIsGoing(namespace)) return { message: `${summary}; access not re-checked: namespace ${namespace} is being deleted`, ...(differences.length ? { differences } : {}) };
  return { message: `${summary}; ${await accessAfterRelease(ctx, namespace, sa, before)}`, ...(differences.length ? { differences } : {}) };
}

/** The API server's answer after the restore: is the access the account had before narrowing back? */
async function accessAfterRelease(ctx: ReleaseContext, namespace: string, sa: string, before: AccessSnapshot | undefined): Promise<string> {
  const wanted = (before?.checks ?? []).filter((c) => c.allowed);
  let now: AccessSnapshot | undefined;
  let missing: AccessResult[] = [];
  for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(SETTLE_DELAY_MS);
    now = await accessSnapshot(ctx, namespace, sa);
    const allowedNow = new Set(now.checks.filter((c) => c.allowed).map((c) => `${checkLabel(c)}@${c.namespace ?? ''}`));
    missing = wanted.filter((c) => !allowedNow.has(`${checkLabel(c)}@${c.namespace ?? ''}`));
    if (missing.length === 0) break;
  }
  const back = wanted.filter((c) => !missing.includes(c)).map(checkLabel);
  // Custody only: the case may already be sealed, and an artifact written now would not be in the manifest.
  await ctx.caseFile.record('rbac-access-after-release', { serviceAccount: sa, allowedAgain: back, stillDenied: missing.map(checkLabel), checks: now?.checks ?? [] }, PHASE);
  if (!before) return 'no pre-narrowing SubjectAccessReview was saved to compare with';
  if (wanted.length === 0) return 'the account was allowed none of the checked actions before narrowing either';
  if (missing.length > 0) return `pre-narrowing access is NOT fully back: ${missing.map(checkLabel).join(', ')} still denied${back.length ? `; ${back.join(', ')} allowed again` : ''}`;
  // Checks a group grant kept allowed while narrowed were never revoked: only the others are "allowed again".
  const afterNarrowing = await readJSONArtifact<AccessSnapshot>(ctx, ACCESS_AFTER);
  const keptAllowed = new Set((afterNarrowing?.checks ?? []).filter((c) => c.allowed).map(checkLabel));
  const regained = back.filter((c) => !keptAllowed.has(c));
  const kept = back.filter((c) => keptAllowed.has(c));
  return `pre-narrowing access is back: ${regained.length ? `${regained.join(', ')} allowed again` : 'nothing had been revoked'}${kept.length ? ` (${kept.join(', ')} stayed allowed throughout)` : ''}`;
}

async function restoreBinding(
  ctx: ReleaseContext,
  o: Saved,
  namespace: string,
  sa: string,
  namespaceIsGoing: (ns: string) => Promise<boolean>,
): Promise<{ outcome: Outcome; differences: string[] }> {
  let current = await readBinding(ctx, o.ref);
  for (let attempt = 0; attempt < CONFLICT_ATTEMPTS; attempt++) {
    if (!current && o.ref.namespace && (await namespaceIsGoing(o.ref.namespace))) {
      return { outcome: 'WentWithNamespace', differences: [`${bindingLabel(o.ref)} went with its namespace ${o.ref.namespace} (deleted); nothing to restore; the original is ${o.artifact}`] };
    }
    const plan = planRestore(o.kind, o.object, current, namespace, sa, o.artifact);
    if (plan.action === 'None') return { outcome: plan.outcome, differences: plan.differences };
    try {
      const updated = await updateBinding(ctx, o.ref, { ...current!, subjects: plan.subjects });
      // Claimed only as read back: the answer to the update is the stored object.
      if (!(updated.subjects ?? []).some((s) => namesServiceAccount(s, o.ref.namespace, namespace, sa))) {
        throw new RetryableError(`${bindingLabel(o.ref)}: ServiceAccount ${sa} missing after the update`, 'ReleaseNotConfirmed');
      }
      return { outcome: 'SubjectRestored', differences: plan.differences };
    } catch (err) {
      // 409: changed meanwhile; 404: deleted meanwhile (or with its namespace). Read again and re-plan.
      if (!isConflict(err) && !isNotFound(err)) throw err;
      current = await readBinding(ctx, o.ref);
    }
  }
  throw new RetryableError(`${bindingLabel(o.ref)} kept changing while casefile restored it (409 Conflict ${CONFLICT_ATTEMPTS} times)`, 'Conflict');
}
