// What isolation looks like, as pure functions: the incident label, the deny-all policy selecting it,
// and which other policies would still let traffic through (policies are additive).
import type { V1NetworkPolicy, V1NetworkPolicyPeer } from '@kubernetes/client-node';
import type { Investigation, InvestigationSpec } from '../../api/investigation.js';
import { selectorMatches } from '../../kube/selectors.js';
import { uidPrefix } from '../../evidence/paths.js';

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'casefile' };
export const PHASE = 'NetworkIsolated';

/** `casefile.dev/incident-<uid8>`: one key per Investigation, so two cases on one pod never fight. */
export function incidentLabel(inv: Investigation): { key: string; value: string } {
  return { key: `casefile.dev/incident-${uidPrefix(inv.metadata.uid)}`, value: 'isolated' };
}

export const policyName = (inv: Investigation): string => `casefile-${uidPrefix(inv.metadata.uid)}`;

export function isolationPolicy(inv: Investigation, spec: InvestigationSpec): V1NetworkPolicy {
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
      annotations: { 'casefile.dev/investigation-uid': inv.metadata.uid },
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
