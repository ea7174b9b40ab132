// What isolation looks like, as pure functions: the incident label, the deny-all policy selecting it,
// and which other policies would still let traffic through (policies are additive).
import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import type { Investigation, InvestigationSpec } from '../../api/investigation.js';
import { selectorMatches } from '../../kube/selectors.js';
import { uidPrefix } from '../../evidence/paths.js';
import { jsonPointer } from '../shared/json-pointer.js';

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'casefile' };
export const PHASE = 'NetworkIsolated';

/**
 * The 8 hex digits that name a case's deny-all policy and incident label: its UID's prefix, or the id
 * intake drew when it isolated the pod ahead of the Investigation's create (isolation-id.ts says which).
 */
export const caseIsolationId = (inv: Investigation): string => uidPrefix(inv.metadata.uid);

/** `casefile.dev/incident-<id>`: one key per case, so two cases on one pod never fight. */
export function incidentLabel(id: string): { key: string; value: string } {
  return { key: `casefile.dev/incident-${id}`, value: 'isolated' };
}

export const policyName = (id: string): string => `casefile-${id}`;

/** Annotations on casefile's policy: whose it is, and when it was applied (to the millisecond, for custody). */
export const INVESTIGATION_UID = 'casefile.dev/investigation-uid';
export const APPLIED_AT = 'casefile.dev/applied-at';
/**
 * The id intake drew for isolating ahead of the create: a label on the policy it made (so the sweep
 * finds one never claimed) and an annotation on the Investigation (so its reconcile waits for the claim).
 */
export const ISOLATED_AHEAD = 'casefile.dev/isolated-ahead';

/** Whose policy it is: the Investigation, or (uid unknown yet) the one intake is creating under that name. */
export interface PolicyOwner {
  apiVersion: string;
  name: string;
  namespace: string;
  uid?: string;
}

/**
 * The deny-all policy. With the owner's UID it carries the UID annotation and an ownerReference; without
 * (made ahead of the create) it carries ISOLATED_AHEAD, and intake stamps both once the create returns.
 */
export function isolationPolicy(owner: PolicyOwner, id: string, spec: InvestigationSpec, appliedAt: Date): V1NetworkPolicy {
  const { key, value } = incidentLabel(id);
  const net = spec.containment.network;
  const peers: V1NetworkPolicyPeer[] = [
    ...net.allowCIDRs.map((cidr) => ({ ipBlock: { cidr } })),
    ...(net.allowNamespaces.length
      ? [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: net.allowNamespaces }] } }]
      : []),
  ];
  const egress = peers.length ? [{ to: peers }] : [];
  if (net.allowDNS) {
    egress.push({
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
      ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
    } as never);
  }
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: policyName(id),
      namespace: owner.namespace,
      labels: { ...MANAGED_BY, 'casefile.dev/investigation': owner.name.slice(0, 63), ...(owner.uid ? {} : { [ISOLATED_AHEAD]: id }) },
      annotations: { ...(owner.uid ? { [INVESTIGATION_UID]: owner.uid } : {}), [APPLIED_AT]: appliedAt.toISOString() },
      // Garbage-collected with the Investigation should the finalizer ever be removed by hand.
      ...(owner.uid ? { ownerReferences: [investigationOwnerRef(owner as Required<PolicyOwner>)] } : {}),
    },
    spec: {
      podSelector: { matchLabels: { [key]: value } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: peers.length ? [{ _from: peers }] : [],
      egress,
    },
  };
}

/** An Investigation as the owner of its policy. */
export function ownerOf(inv: Investigation): Required<PolicyOwner> {
  const { name, namespace, uid } = inv.metadata;
  return { apiVersion: inv.apiVersion, name, namespace, uid };
}

export function investigationOwnerRef(owner: Required<PolicyOwner>): V1OwnerReference {
  return { apiVersion: owner.apiVersion, kind: 'Investigation', name: owner.name, uid: owner.uid };
}

/**
 * The JSON patch that adds the incident label to exactly this pod: the `test` on the UID makes it fail
 * on a replacement pod of the same name, and `add` on one key cannot overwrite anyone else's label change.
 */
export function incidentLabelPatch(pod: V1Pod, key: string, value: string): object[] {
  const uid = { op: 'test', path: '/metadata/uid', value: pod.metadata!.uid };
  return pod.metadata?.labels
    ? [uid, { op: 'add', path: `/metadata/labels/${jsonPointer(key)}`, value }]
    : [uid, { op: 'add', path: '/metadata/labels', value: { [key]: value } }];
}

/** A policy "allows" something if it has any rule; a policy without rules only denies. */
function allowsTraffic(p: V1NetworkPolicy): boolean {
  return (p.spec?.ingress?.length ?? 0) > 0 || (p.spec?.egress?.length ?? 0) > 0;
}

/** Someone else's policy that selects the pod once labelled and allows traffic: it must exclude the label. */
export function needsExclusion(p: V1NetworkPolicy, labelled: Record<string, string>): boolean {
  const ours = p.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'casefile';
  return !ours && allowsTraffic(p) && selectorMatches(p.spec?.podSelector, labelled);
}

export function excludesLabel(p: V1NetworkPolicy, key: string): boolean {
  return (p.spec?.podSelector?.matchExpressions ?? []).some((e) => e.key === key);
}

export function describeAllowances(spec: InvestigationSpec): string {
  const net = spec.containment.network;
  const open = [
    net.allowDNS && 'DNS to kube-dns',
    net.allowCIDRs.length && `CIDRs ${net.allowCIDRs.join(', ')}`,
    net.allowNamespaces.length && `namespaces ${net.allowNamespaces.join(', ')}`,
  ].filter(Boolean);
  return open.length ? ` except ${open.join('; ')}` : '';
}
