// The first containment writes (ContainFirst): the deny-all policy and the incident label, both at once
// and before any read. Shared by the containment lane (contain-now.ts, over client-node) and by intake,
// which isolates ahead of the Investigation's create (src/intake/isolate-ahead.ts, over ../kube/rest.ts
// in a thread that loads no client-node), so both make, check and take back exactly the same writes.
// The label patch is tested against the pod UID the spec names; the labelled pod comes back in the
// patch's answer and is checked as TargetResolved will check it. A pod the case would not accept
// (terminating, or no container the target can name) has both writes taken back at once.
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import type { InvestigationSpec } from '../../api/investigation.js';
import { during, errorMessage } from '../../errors.js';
import type { Kube } from '../../kube/client.js';
import { errorCode, isConflict, isNotFound } from '../../kube/errors.js';
import type { RestClient } from '../../kube/rest.js';
import type { Logger } from '../../log.js';
import { alertContainerHints, chooseContainer } from '../shared/container-choice.js';
import { jsonPointer } from '../shared/json-pointer.js';
import { incidentLabelPatch } from './policy.js';

/** The four calls the first writes make, over either client. */
export interface IsolationApi {
  createPolicy(namespace: string, body: V1NetworkPolicy): Promise<V1NetworkPolicy>;
  /** Deletes the policy only if it is still the object with `uid`. */
  deletePolicy(namespace: string, name: string, uid: string): Promise<unknown>;
  readPod(namespace: string, name: string): Promise<V1Pod>;
  /** A JSON patch (RFC 6902): all or nothing, 422 when a test fails or a parent is missing. */
  patchPod(namespace: string, name: string, ops: object[]): Promise<V1Pod>;
}

export function kubeIsolationApi(kube: Kube): IsolationApi {
  return {
    createPolicy: (namespace, body) => kube.networking.createNamespacedNetworkPolicy({ namespace, body }),
    deletePolicy: (namespace, name, uid) => kube.networking.deleteNamespacedNetworkPolicy({ name, namespace, body: { preconditions: { uid } } }),
    readPod: (namespace, name) => kube.core.readNamespacedPod({ name, namespace }),
    patchPod: (namespace, name, ops) => kube.core.patchNamespacedPod({ name, namespace, body: ops }),
  };
}

const policies = (namespace: string) => `/apis/networking.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/networkpolicies`;
const pod = (namespace: string, name: string) => `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;

/** client-node's model names an ingress rule's `from` `_from` (a reserved word); the wire does not. */
function wirePolicy(policy: V1NetworkPolicy): object {
  const ingress = policy.spec?.ingress?.map(({ _from, ...rule }) => (_from ? { ...rule, from: _from } : rule));
  return { ...policy, spec: { ...policy.spec, ...(ingress ? { ingress } : {}) } };
}

export function restIsolationApi(rest: RestClient): IsolationApi {
  return {
    createPolicy: (namespace, body) => rest.json<V1NetworkPolicy>('POST', policies(namespace), { body: wirePolicy(body) }),
    deletePolicy: (namespace, name, uid) => rest.json('DELETE', `${policies(namespace)}/${encodeURIComponent(name)}`, { body: { preconditions: { uid } } }),
    readPod: (namespace, name) => rest.getJSON<V1Pod>(pod(namespace, name)),
    patchPod: (namespace, name, ops) => rest.json<V1Pod>('PATCH', pod(namespace, name), { body: ops, contentType: 'application/json-patch+json' }),
  };
}

/**
 * The target container if the first writes may act on this pod: the one the spec names, and one
 * TargetResolved will accept (undefined: leave it to TargetResolved and the phase's run()).
 */
export function containNowTarget(pod: V1Pod, spec: InvestigationSpec): string | undefined {
  if (spec.target.uid && pod.metadata?.uid !== spec.target.uid) return undefined;
  if (pod.metadata?.deletionTimestamp) return undefined;
  const choice = chooseContainer(pod, spec.target.container, alertContainerHints(spec.alert?.raw));
  return 'error' in choice ? undefined : choice.name;
}

export interface FirstWrites {
  namespace: string;
  spec: InvestigationSpec;
  policy: V1NetworkPolicy;
  key: string;
  value: string;
}

/**
 * What the writes left in place. `target`: the pod is one the case acts on (else both writes were taken
 * back). `policy`: created by these writes (a name already taken is not). `error`: the first write that
 * failed (a policy name already there is not a failure here: the caller judges it).
 */
export interface Written {
  policy?: V1NetworkPolicy;
  pod?: V1Pod;
  target?: string;
  error?: unknown;
}

export async function writeIsolation(api: IsolationApi, w: FirstWrites, log: Logger): Promise<Written> {
  const [created, labelled] = await Promise.allSettled([api.createPolicy(w.namespace, w.policy), labelPod(api, w)]);
  const policy = created.status === 'fulfilled' ? created.value : undefined;
  const pod = labelled.status === 'fulfilled' ? labelled.value : undefined;
  const target = pod && containNowTarget(pod, w.spec);
  // Not a pod this case acts on (or none): give back what went out.
  if (!target) await takeBackIsolation(api, w.namespace, { policy, pod, key: w.key, value: w.value }, log);
  const error =
    labelled.status === 'rejected' ? labelled.reason
    : created.status === 'rejected' && !isConflict(created.reason) ? during(`creating NetworkPolicy ${w.policy.metadata!.name}`, created.reason)
    : undefined;
  return { policy, pod, target, error };
}

/**
 * Adds the incident label to the pod the spec names, without reading it first: a JSON patch, tested
 * against the spec's pod UID when it names one. Resolves with the labelled pod, or undefined when
 * there is no such pod (or only one with another UID). A pod without any label needs the labels
 * object made: that alone costs a read.
 */
async function labelPod(api: IsolationApi, w: FirstWrites): Promise<V1Pod | undefined> {
  const { namespace, key, value } = w;
  const { pod: name, uid } = w.spec.target;
  try {
    return await api.patchPod(namespace, name, [...(uid ? [{ op: 'test', path: '/metadata/uid', value: uid }] : []), { op: 'add', path: `/metadata/labels/${jsonPointer(key)}`, value }]);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    // 422: the UID test failed (a replaced pod), or the pod has no labels object to add to.
    if (errorCode(err) !== 422) throw during(`labelling pod ${name}`, err);
  }
  let pod: V1Pod;
  try {
    pod = await api.readPod(namespace, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw during(`reading pod ${name}`, err);
  }
  if ((uid && pod.metadata?.uid !== uid) || pod.metadata?.labels) return undefined;
  try {
    return await api.patchPod(namespace, name, incidentLabelPatch(pod, key, value));
  } catch (err) {
    throw during(`labelling pod ${name}`, err);
  }
}

/**
 * Removes what first writes made, each pinned to what they made (the policy's UID, the pod's UID and the
 * label's value). Resolves whether or not it could; what is left is release's (or intake's sweep's) to find.
 */
export async function takeBackIsolation(
  api: IsolationApi,
  namespace: string,
  made: { policy?: V1NetworkPolicy; pod?: V1Pod; key: string; value: string },
  log: Logger,
): Promise<boolean> {
  const { policy, pod, key, value } = made;
  const undone = await Promise.allSettled([
    policy && api.deletePolicy(namespace, policy.metadata!.name!, policy.metadata!.uid!),
    pod?.metadata?.labels?.[key] === value &&
      api.patchPod(namespace, pod.metadata!.name!, [
        { op: 'test', path: '/metadata/uid', value: pod.metadata!.uid },
        { op: 'test', path: `/metadata/labels/${jsonPointer(key)}`, value },
        { op: 'remove', path: `/metadata/labels/${jsonPointer(key)}` },
      ]),
  ]);
  let all = true;
  for (const u of undone) {
    if (u.status === 'rejected' && !isNotFound(u.reason)) {
      all = false;
      log.warn({ err: errorMessage(u.reason) }, 'could not take back a first containment write; it is left for release to find');
    }
  }
  return all;
}
