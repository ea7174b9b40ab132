// NetworkIsolated: contain without destroying. The deny-all NetworkPolicy is created first and selects
// only a label unique to this Investigation, so it matches nothing until that label lands on the
// suspect pod, and then matches the suspect alone (never its sibling replicas, never the owner's
// selector). Policies are additive, so every other policy that selects the pod and allows traffic is
// patched to exclude the label; originals are saved before anything changes, and release takes out
// exactly casefile's own changes again.
import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Investigation, InvestigationSpec } from '../api/investigation.js';
import { errorMessage, isConflict, isNotFound } from '../engine/kube.js';
import { selectorMatches } from '../engine/selectors.js';
import { sanitizeSegment } from '../evidence/paths.js';
import { podGone } from './manifest-captured.js';
import { RetryableError, type Phase, type PhaseContext, type PhaseOutcome, type ReleaseOutcome } from './phase.js';
import { detachFromWorkload, reattachToWorkload } from './detach.js';
import { verifyIsolation } from './isolation-probe.js';

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'casefile' };
const ORIGINALS = 'containment/originals/networkpolicies/';

export function shortId(inv: Investigation): string {
  return inv.metadata.uid.replace(/-/g, '').slice(0, 8);
}

/** `casefile.dev/incident-<uid8>`: one key per Investigation, so two cases on one pod never fight. */
export function incidentLabel(inv: Investigation): { key: string; value: string } {
  return { key: `casefile.dev/incident-${shortId(inv)}`, value: 'isolated' };
}

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
      name: `casefile-${shortId(inv)}`,
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

const jsonPointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

export const networkIsolated: Phase = {
  condition: 'NetworkIsolated',
  containment: true,
  needsTarget: true,
  enabled: (spec) => spec.containment.network.isolate,
  async run(ctx): Promise<PhaseOutcome> {
    const pod = await ctx.livePod();
    if (!pod) return podGone(ctx.spec.target.pod);
    const inv = ctx.investigation;
    const { namespace } = inv.metadata;
    const { key, value } = incidentLabel(inv);
    const phase = 'NetworkIsolated';
    await ctx.caseFile.writeJSON('containment/pod-labels-before.json', pod.metadata?.labels ?? {}, { phase });

    // 1. The policy, selecting a label no pod carries yet.
    const desired = isolationPolicy(inv, ctx.spec);
    const policyPath = `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`;
    try {
      await ctx.kube.networking.createNamespacedNetworkPolicy({ namespace, body: desired });
      await ctx.caseFile.record('networkpolicy-created', { name: desired.metadata!.name }, phase);
    } catch (err) {
      if (!isConflict(err)) throw new RetryableError(`creating NetworkPolicy ${desired.metadata!.name}: ${errorMessage(err)}`);
      const existing = await ctx.kube.networking.readNamespacedNetworkPolicy({ name: desired.metadata!.name!, namespace });
      if (existing.metadata?.annotations?.['casefile.dev/investigation-uid'] !== inv.metadata.uid) {
        return { status: 'False', reason: 'PolicyNameTaken', message: `NetworkPolicy ${desired.metadata!.name} exists and is not this Investigation's; nothing was changed` };
      }
    }
    await ctx.caseFile.captureOnce('containment/networkpolicy.yaml', async () => stringify(await ctx.kube.getJSON(`${policyPath}/${desired.metadata!.name}`)), { phase });

    // 2. Other policies that would let traffic through (policies are additive).
    const labelled = { ...(pod.metadata?.labels ?? {}), [key]: value };
    const policies = await ctx.kube.networking.listNamespacedNetworkPolicy({ namespace });
    const patched: { name: string; original: string }[] = [];
    for (const p of policies.items) {
      const name = p.metadata!.name!;
      const original = `${ORIGINALS}${sanitizeSegment(name)}.yaml`;
      const ours = p.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'casefile';
      const alreadyExcludes = (p.spec?.podSelector?.matchExpressions ?? []).some((e) => e.key === key);
      if (alreadyExcludes && ctx.caseFile.has(original)) {
        patched.push({ name, original });
        continue;
      }
      if (ours || !allowsTraffic(p) || !selectorMatches(p.spec?.podSelector, labelled)) continue;
      // The original as served (wire field names), and the patch guarded by that same resourceVersion.
      const served = (await ctx.kube.getJSON(`${policyPath}/${encodeURIComponent(name)}`)) as { metadata: { resourceVersion: string } };
      await ctx.caseFile.writeText(original, stringify(served), { phase });
      const expressions = [...(p.spec?.podSelector?.matchExpressions ?? []), { key, operator: 'DoesNotExist' }];
      try {
        await ctx.kube.networking.patchNamespacedNetworkPolicy(
          { name, namespace, body: { metadata: { resourceVersion: served.metadata.resourceVersion }, spec: { podSelector: { matchExpressions: expressions } } } },
          ctx.kube.mergePatch,
        );
      } catch (err) {
        throw new RetryableError(`excluding the incident label from NetworkPolicy ${name}: ${errorMessage(err)}`);
      }
      await ctx.caseFile.record('networkpolicy-patched', { name, added: { key, operator: 'DoesNotExist' }, original }, phase);
      patched.push({ name, original });
    }

    // 3. The label: from here on the deny-all selects the suspect, and only the suspect.
    await labelPod(ctx, pod, key, value);
    const detached = ctx.spec.containment.network.detachFromWorkload ? await detachFromWorkload(ctx, pod) : undefined;
    ctx.status.containment = {
      ...ctx.status.containment,
      label: `${key}=${value}`,
      networkPolicy: desired.metadata!.name,
      patchedPolicies: patched,
    };
    const opened = describeAllowances(ctx.spec);
    const base = `pod labelled ${key}=${value}; NetworkPolicy ${desired.metadata!.name} denies all ingress and egress${opened}; ${patched.length} other polic${patched.length === 1 ? 'y' : 'ies'} patched to exclude it` +
      (detached ? `; ${detached}` : '');
    await ctx.caseFile.record('limitation', {
      finding: 'NetworkPolicy governs new connections: connections established before isolation may survive on some CNIs (conntrack), and traffic from the node itself is not policed',
    }, phase);
    if (!ctx.spec.containment.network.verify) return { status: 'True', reason: 'Isolated', message: `${base}; enforcement not verified (spec.containment.network.verify is false)` };

    const verification = await verifyIsolation(ctx, incidentLabel(inv));
    ctx.status.containment.verification = verification.record;
    await ctx.caseFile.captureOnce('containment/verification.json', () => JSON.stringify(verification.record, null, 2) + '\n', { phase });
    if (verification.outcome === 'blocked') return { status: 'True', reason: 'Isolated', message: `${base}; enforcement verified: ${verification.summary}` };
    if (verification.outcome === 'leaking') {
      return { status: 'False', reason: 'NotEnforced', message: `${base}, but the probe still connected (${verification.summary}): the cluster's CNI may not enforce NetworkPolicy` };
    }
    return { status: 'False', reason: 'VerificationInconclusive', message: `${base}; the probe could not tell (${verification.summary})` };
  },

  async release(ctx): Promise<ReleaseOutcome> {
    const inv = ctx.investigation;
    const { namespace } = inv.metadata;
    const { key } = incidentLabel(inv);
    const differences: string[] = [];
    const name = isolationPolicy(inv, ctx.spec).metadata!.name!;
    // Workload labels first (the pod rejoins its owner while still isolated), then the incident label.
    if (ctx.spec.containment.network.detachFromWorkload) differences.push(...(await reattachToWorkload(ctx)));
    await unlabelPod(ctx, key);
    try {
      await ctx.kube.networking.deleteNamespacedNetworkPolicy({ name, namespace });
      await ctx.caseFile.record('networkpolicy-deleted', { name }, 'Released');
    } catch (err) {
      if (!isNotFound(err)) throw new RetryableError(`deleting NetworkPolicy ${name}: ${errorMessage(err)}`);
    }
    for (const artifact of ctx.caseFile.artifacts().filter((a) => a.artifact.startsWith(ORIGINALS))) {
      const policyName = decodeURIComponent(artifact.artifact.slice(ORIGINALS.length, -'.yaml'.length));
      let current: V1NetworkPolicy;
      try {
        current = await ctx.kube.networking.readNamespacedNetworkPolicy({ name: policyName, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw new RetryableError(`reading NetworkPolicy ${policyName}: ${errorMessage(err)}`);
        differences.push(`NetworkPolicy ${policyName} was deleted by someone else meanwhile; not recreated`);
        continue;
      }
      const expressions = current.spec?.podSelector?.matchExpressions ?? [];
      const kept = expressions.filter((e) => e.key !== key);
      if (kept.length !== expressions.length) {
        await ctx.kube.networking.patchNamespacedNetworkPolicy(
          {
            name: policyName,
            namespace,
            body: { metadata: { resourceVersion: current.metadata!.resourceVersion }, spec: { podSelector: { matchExpressions: kept.length ? kept : null } } },
          },
          ctx.kube.mergePatch,
        ).catch((err: unknown) => {
          throw new RetryableError(`restoring NetworkPolicy ${policyName}: ${errorMessage(err)}`);
        });
        await ctx.caseFile.record('networkpolicy-restored', { name: policyName, removed: { key, operator: 'DoesNotExist' } }, 'Released');
      }
      if (current.metadata?.generation !== undefined && current.metadata.generation > 2) {
        differences.push(`NetworkPolicy ${policyName} was also changed by someone else while the case was open (generation ${current.metadata.generation}); their change was kept`);
      }
    }
    return { message: `incident label removed, NetworkPolicy ${name} deleted, patched policies restored`, differences };
  },
};

function describeAllowances(spec: InvestigationSpec): string {
  const net = spec.containment.network;
  const open = [
    net.allowDNS && 'DNS to kube-dns',
    net.allowCIDRs.length && `CIDRs ${net.allowCIDRs.join(', ')}`,
    net.allowNamespaces.length && `namespaces ${net.allowNamespaces.join(', ')}`,
  ].filter(Boolean);
  return open.length ? ` except ${open.join('; ')}` : '';
}

/** A JSON patch on one label key: it cannot overwrite anyone else's concurrent label change. */
async function labelPod(ctx: PhaseContext, pod: V1Pod, key: string, value: string): Promise<void> {
  if (pod.metadata?.labels?.[key] === value) return;
  const body = pod.metadata?.labels
    ? [{ op: 'add', path: `/metadata/labels/${jsonPointer(key)}`, value }]
    : [{ op: 'add', path: '/metadata/labels', value: { [key]: value } }];
  try {
    await ctx.kube.core.patchNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body });
  } catch (err) {
    throw new RetryableError(`labelling pod ${pod.metadata!.name}: ${errorMessage(err)}`);
  }
  await ctx.caseFile.record('pod-labelled', { pod: pod.metadata!.name, uid: pod.metadata!.uid, label: `${key}=${value}` }, 'NetworkIsolated');
}

async function unlabelPod(ctx: PhaseContext, key: string): Promise<void> {
  const pod = await ctx.livePod();
  if (!pod?.metadata?.labels?.[key]) return;
  try {
    await ctx.kube.core.patchNamespacedPod({
      name: pod.metadata.name!,
      namespace: pod.metadata.namespace!,
      body: [{ op: 'test', path: `/metadata/labels/${jsonPointer(key)}`, value: pod.metadata.labels[key] }, { op: 'remove', path: `/metadata/labels/${jsonPointer(key)}` }],
    });
  } catch (err) {
    if (isNotFound(err)) return;
    throw new RetryableError(`removing the incident label from pod ${pod.metadata.name}: ${errorMessage(err)}`);
  }
  await ctx.caseFile.record('pod-unlabelled', { pod: pod.metadata.name, label: key }, 'Released');
}
