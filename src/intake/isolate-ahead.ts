// ContainFirst from an alert, isolated ahead of the Investigation's create. Its UID, which names the
// policy and label of every other case, does not exist until the create returns, and waiting for it
// (then for the watch, then for the containment lane) is most of the time between an alert and its
// pod isolated. So intake draws an 8-hex id, makes the deny-all policy and the incident label under it
// (../phases/network-isolated/first-writes.ts, the lane's own writes) at once with the create, and
// creates the Investigation annotated with the id and already carrying the finalizer: a case deleted
// at once is still released. Once the create returns it claims the policy for the Investigation's UID
// (the UID annotation and an ownerReference, guarded by the policy's resourceVersion); the case adopts
// containment only from a policy claimed for its own UID, which only the operator writes
// (../phases/network-isolated/isolation-id.ts).
//
// Whatever goes wrong is given back, never left half-applied:
// - the create failed (the case exists already, or process() will open it): both writes are taken back;
// - the writes failed, or the claim did, or came too late (AHEAD_CLAIM_MS): they are taken back, the
//   case's own writes (under its UID) are made here instead, and the annotation is removed so its
//   reconcile need not wait for a claim;
// - the pod is not one the case would act on: taken back, and TargetResolved says why;
// - the process died in between: the sweep lifts a policy nobody claimed (and its label) after a grace.
import { randomBytes } from 'node:crypto';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { FINALIZER, GROUP, INVESTIGATION_PLURAL, parseSpec, VERSION, type Investigation, type InvestigationSpec } from '../api/investigation.js';
import { errorMessage } from '../errors.js';
import type { RestClient } from '../kube/rest.js';
import type { Logger } from '../log.js';
import { restIsolationApi, takeBackIsolation, writeIsolation, type IsolationApi, type Written } from '../phases/network-isolated/first-writes.js';
import { AHEAD_CLAIM_MS } from '../phases/network-isolated/isolation-id.js';
import { caseIsolationId, incidentLabel, investigationOwnerRef, INVESTIGATION_UID, ISOLATED_AHEAD, isolationPolicy, ownerOf, policyName } from '../phases/network-isolated/policy.js';
import type { InvestigationBody } from './investigation-factory.js';

/** A policy made ahead and not claimed this long after its creation is an orphan (no live intake can claim it any more). */
export const SWEEP_GRACE_MS = 6 * AHEAD_CLAIM_MS;

/** The calls beyond the first writes: the claim, the annotation's removal, and the sweep's reads. */
export interface AheadApi extends IsolationApi {
  /** Merge patch of the policy's metadata, guarded by `resourceVersion`. */
  claimPolicy(namespace: string, name: string, resourceVersion: string, owner: Investigation): Promise<unknown>;
  /** Removes ISOLATED_AHEAD from the Investigation with this UID. */
  unannotate(inv: Investigation): Promise<unknown>;
  /** Every policy carrying ISOLATED_AHEAD, in all namespaces. */
  aheadPolicies(): Promise<V1NetworkPolicy[]>;
  labelledPods(namespace: string, key: string): Promise<V1Pod[]>;
  /** The UID prefixes of the Investigations in the namespace. */
  caseIds(namespace: string): Promise<Set<string>>;
}

const investigations = (namespace: string) => `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${INVESTIGATION_PLURAL}`;

export function restAheadApi(rest: RestClient): AheadApi {
  const merge = 'application/merge-patch+json';
  return {
    ...restIsolationApi(rest),
    claimPolicy: (namespace, name, resourceVersion, owner) =>
      rest.json('PATCH', `/apis/networking.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/networkpolicies/${encodeURIComponent(name)}`, {
        body: { metadata: { resourceVersion, annotations: { [INVESTIGATION_UID]: owner.metadata.uid }, ownerReferences: [investigationOwnerRef(ownerOf(owner))] } },
        contentType: merge,
      }),
    // metadata.uid in a patch is a precondition: a namesake created since is left alone.
    unannotate: (inv) =>
      rest.json('PATCH', `${investigations(inv.metadata.namespace)}/${encodeURIComponent(inv.metadata.name)}`, {
        body: { metadata: { uid: inv.metadata.uid, annotations: { [ISOLATED_AHEAD]: null } } },
        contentType: merge,
      }),
    aheadPolicies: async () => (await rest.getJSON<{ items: V1NetworkPolicy[] }>('/apis/networking.k8s.io/v1/networkpolicies', { labelSelector: ISOLATED_AHEAD })).items,
    labelledPods: async (namespace, key) => (await rest.getJSON<{ items: V1Pod[] }>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, { labelSelector: key })).items,
    caseIds: async (namespace) => {
      const list = await rest.getJSON<{ items: Investigation[] }>(investigations(namespace));
      return new Set(list.items.map(caseIsolationId));
    },
  };
}

/** A case being isolated ahead: the body to create, and what to do once the create has settled. */
export interface Ahead {
  body: InvestigationBody;
  settle(created: Investigation | undefined): Promise<void>;
}

export class AheadIsolation {
  /** `namespace/id` of the writes in flight: the sweep leaves them alone. */
  private readonly inFlight = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly deps: { api: AheadApi; log: Logger; now?: () => number }) {
    this.now = deps.now ?? (() => Date.now());
  }

  /** For a ContainFirst case that isolates its pod: starts the writes now and returns the body to create. */
  begin(body: InvestigationBody): Ahead | undefined {
    const parsed = parseSpec(body.spec);
    if (!parsed.ok) return undefined; // the reconcile refuses it, with what to fix
    const spec = parsed.spec;
    if (spec.containment.order !== 'ContainFirst' || !spec.containment.network.isolate || spec.release) return undefined;
    const { namespace, name } = body.metadata;
    const id = randomBytes(4).toString('hex');
    const { key, value } = incidentLabel(id);
    const started = this.now();
    const policy = isolationPolicy({ apiVersion: body.apiVersion, name, namespace }, id, spec, new Date(started));
    const flight = `${namespace}/${id}`;
    this.inFlight.add(flight);
    const written = writeIsolation(this.deps.api, { namespace, spec, policy, key, value }, this.deps.log);
    return {
      body: { ...body, metadata: { ...body.metadata, annotations: { ...body.metadata.annotations, [ISOLATED_AHEAD]: id }, finalizers: [FINALIZER] } },
      settle: async (created) => {
        try {
          await this.settle({ namespace, id, key, value, spec, started }, await written, created);
        } catch (err) {
          // Anything left is the sweep's (a policy nobody claimed) or the reconcile's (after the wait).
          this.deps.log.warn({ investigation: `${namespace}/${name}`, err: errorMessage(err) }, 'isolating ahead of the create did not settle');
        } finally {
          this.inFlight.delete(flight);
        }
      },
    };
  }

  private async settle(
    w: { namespace: string; id: string; key: string; value: string; spec: InvestigationSpec; started: number },
    written: Written,
    created: Investigation | undefined,
  ): Promise<void> {
    const { api, log } = this.deps;
    const made = { policy: written.policy, pod: written.pod, key: w.key, value: w.value };
    if (!created) {
      await takeBackIsolation(api, w.namespace, made, log);
      return;
    }
    const caseLog = log.child({ investigation: `${w.namespace}/${created.metadata.name}` });
    if (written.target && written.policy && !written.error && this.now() - w.started < AHEAD_CLAIM_MS) {
      try {
        await api.claimPolicy(w.namespace, written.policy.metadata!.name!, written.policy.metadata!.resourceVersion!, created);
        caseLog.info({ pod: written.pod!.metadata!.name, policy: written.policy.metadata!.name }, 'isolated ahead of the Investigation (ContainFirst from an alert)');
        return;
      } catch (err) {
        caseLog.warn({ err: errorMessage(err) }, 'could not claim the policy made ahead for the Investigation; taking it back');
      }
    } else if (written.error) {
      caseLog.warn({ err: errorMessage(written.error) }, 'isolating ahead of the create failed; making the case\'s own writes');
    }
    await takeBackIsolation(api, w.namespace, made, caseLog);
    // A pod the case would not act on was left alone (TargetResolved says why); otherwise its own writes, under its UID.
    if (written.target || !written.pod) await this.ownWrites(created, w.spec, caseLog);
    await api.unannotate(created);
  }

  /** The containment lane's writes, made here: what they leave the reconcile finds under the case's UID. */
  private async ownWrites(inv: Investigation, spec: InvestigationSpec, log: Logger): Promise<void> {
    const id = caseIsolationId(inv);
    const { key, value } = incidentLabel(id);
    const policy = isolationPolicy(ownerOf(inv), id, spec, new Date());
    const written = await writeIsolation(this.deps.api, { namespace: inv.metadata.namespace, spec, policy, key, value }, log);
    if (written.error) log.warn({ err: errorMessage(written.error) }, "the case's own first writes failed too; its reconcile makes them");
  }

  /**
   * Lifts containment made ahead that nobody claimed past the grace (the process died between the writes
   * and the claim). Only what intake makes: a policy named for its id, carrying it, and no claim; a label
   * is lifted only if no Investigation in the namespace has that id as its own. Resolves with how many.
   */
  async sweep(graceMs = SWEEP_GRACE_MS): Promise<number> {
    const { api, log } = this.deps;
    let lifted = 0;
    for (const p of await api.aheadPolicies()) {
      const { namespace, name, uid, labels, annotations, creationTimestamp } = p.metadata ?? {};
      const id = labels?.[ISOLATED_AHEAD];
      if (!namespace || !uid || !id || annotations?.[INVESTIGATION_UID] || name !== policyName(id)) continue;
      if (this.inFlight.has(`${namespace}/${id}`) || this.now() - new Date(creationTimestamp ?? 0).getTime() < graceMs) continue;
      const { key, value } = incidentLabel(id);
      const pods = (await api.caseIds(namespace)).has(id) ? [] : await api.labelledPods(namespace, key);
      let all = true;
      for (const pod of pods) all = (await takeBackIsolation(api, namespace, { pod, key, value }, log)) && all;
      if (all) all = await takeBackIsolation(api, namespace, { policy: p, key, value }, log);
      if (!all) continue;
      lifted++;
      log.warn({ namespace, policy: name, pods: pods.map((x) => x.metadata?.name) }, 'lifted containment made ahead of an Investigation that never claimed it (the process stopped in between)');
    }
    return lifted;
  }
}
