// What isolation looks like, as pure functions: the incident label, the deny-all policy selecting it,
// and which other policies would still let traffic through (policies are additive).
import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1Pod } from '@kubernetes/client-node';
import type { Investigation, InvestigationSpec } from '../../api/investigation.js';
import { selectorMatches } from '../../kube/selectors.js';
import { uidPrefix } from '../../evidence/paths.js';
import { jsonPointer } from '../shared/json-pointer.js';

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'casefile' };
export const PHASE = 'NetworkIsolated';

/** `casefile.dev/incident-<uid8>`: one key per Investigation, so two cases on one pod never fight. */
export function incidentLabel(inv: Investigation): { key: string; value: string } {
  return { key: `casefile.dev/incident-${uidPrefix(inv.metadata.uid)}`, value: 'isolated' };
}

export const policyName = (inv: Investigation): string => `casefile-${uidPrefix(inv.metadata.uid)}`;

/** Annotations on casefile's policy: whose it is, and when it was applied (to the millisecond, for custody). */
export const INVESTIGATION_UID = 'casefile.dev/investigation-uid';
export const APPLIED_AT = 'casefile.dev/applied-at';

export function isolationPolicy(inv: Investigation, spec: InvestigationSpec, appliedAt: Date): V1NetworkPolicy {
  const { key, value } = incidentLabel(inv);
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
      name: policyName(inv),
      namespace: inv.metadata.namespace,
      labels: { ...MANAGED_BY, 'casefile.dev/investigation': inv.metadata.name.slice(0, 63) },
      annotations: { [INVESTIGATION_UID]: inv.metadata.uid, [APPLIED_AT]: appliedAt.toISOString() },
      // Garbage-collected with the Investigation should the finalizer ever be removed by hand.
      ownerReferences: [{ apiVersion: inv.apiVersion, kind: 'Investigation', name: inv.metadata.name, uid: inv.metadata.uid }],
    },
    spec: {
      podSelector: { matchLabels: { [key]: value } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: peers.length ? [{ _from: peers }] : [],
      egress,
    },
  };
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
