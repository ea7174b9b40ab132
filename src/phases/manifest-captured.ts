// ManifestCaptured: the pod as the API server serves it, its owners up to the top controller, its
// ServiceAccount, the node, and every NetworkPolicy that selects it (what governs its traffic now).
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { isNotFound } from '../kube/errors.js';
import { errorMessage, RetryableError } from '../errors.js';
import { selectorMatches } from '../kube/selectors.js';
import { sanitizeSegment } from '../evidence/paths.js';
import { type Phase, type PhaseOutcome } from './phase.js';

const ownerResources: Record<string, string> = {
  ReplicaSet: 'apis/apps/v1/namespaces/%s/replicasets',
  Deployment: 'apis/apps/v1/namespaces/%s/deployments',
  StatefulSet: 'apis/apps/v1/namespaces/%s/statefulsets',
  DaemonSet: 'apis/apps/v1/namespaces/%s/daemonsets',
  Job: 'apis/batch/v1/namespaces/%s/jobs',
  CronJob: 'apis/batch/v1/namespaces/%s/cronjobs',
};

function ownerPath(kind: string, namespace: string, name: string): string | undefined {
  const collection = ownerResources[kind];
  return collection && `/${collection.replace('%s', namespace)}/${encodeURIComponent(name)}`;
}

const yamlOf = (value: unknown) => stringify(value, { aliasDuplicateObjects: false });

export const manifestCaptured: Phase = {
  condition: 'ManifestCaptured',
  needsTarget: true,
  async run(ctx): Promise<PhaseOutcome> {
    const { namespace } = ctx.investigation.metadata;
    const phase = 'ManifestCaptured';
    const pod = await ctx.livePod();
    if (!pod) return podGone(ctx.spec.target.pod);
    const podPath = `/api/v1/namespaces/${namespace}/pods/${encodeURIComponent(pod.metadata!.name!)}`;
    await ctx.caseFile.captureOnce('k8s/pod.yaml', async () => yamlOf(await ctx.kube.getJSON(podPath)), { phase });

    const missing: string[] = [];
    for (const owner of ctx.status.target?.owners ?? []) {
      const artifact = `k8s/owners/${sanitizeSegment(`${owner.kind}-${owner.name}`)}.yaml`;
      const path = ownerPath(owner.kind, namespace, owner.name);
      if (!path) {
        missing.push(`${owner.kind}/${owner.name} (a kind casefile does not read)`);
        continue;
      }
      await ctx.caseFile.captureOnce(artifact, async () => {
        try {
          return yamlOf(await ctx.kube.getJSON(path));
        } catch (err) {
          if (isNotFound(err)) return `# ${owner.kind}/${owner.name} (uid ${owner.uid}) no longer exists\n`;
          throw new RetryableError(`reading ${owner.kind}/${owner.name}: ${errorMessage(err)}`);
        }
      }, { phase });
    }

    const saName = pod.spec?.serviceAccountName ?? 'default';
    await ctx.caseFile.captureOnce('k8s/serviceaccount.yaml', async () => {
      try {
        return yamlOf(await ctx.kube.getJSON(`/api/v1/namespaces/${namespace}/serviceaccounts/${encodeURIComponent(saName)}`));
      } catch (err) {
        if (isNotFound(err)) {
          missing.push(`ServiceAccount ${saName}`);
          return `# ServiceAccount ${namespace}/${saName} does not exist\n`;
        }
        throw new RetryableError(`reading ServiceAccount ${saName}: ${errorMessage(err)}`);
      }
    }, { phase });

    if (pod.spec?.nodeName) {
      const nodeName = pod.spec.nodeName;
      await ctx.caseFile.captureOnce('k8s/node.yaml', async () => {
        try {
          return yamlOf(await ctx.kube.getJSON(`/api/v1/nodes/${encodeURIComponent(nodeName)}`));
        } catch (err) {
          if (isNotFound(err)) {
            missing.push(`Node ${nodeName}`);
            return `# Node ${nodeName} no longer exists\n`;
          }
          throw new RetryableError(`reading node ${nodeName}: ${errorMessage(err)}`);
        }
      }, { phase });
    }

    let selecting = 0;
    const policiesRecord = await ctx.caseFile.captureOnce('k8s/networkpolicies.yaml', async () => {
      const policies = (await ctx.kube.getJSON(`/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`)) as { items: V1NetworkPolicy[] };
      const items = policies.items.filter((p) => selectorMatches(p.spec?.podSelector, pod.metadata?.labels));
      selecting = items.length;
      const header = items.length === 0 ? `# no NetworkPolicy in ${namespace} selects this pod: its traffic was unrestricted when captured\n` : '';
      return header + yamlOf({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicyList', items });
    }, { phase });
    if (selecting === 0 && !policiesRecord.reused) {
      await ctx.caseFile.record('negative-finding', { finding: 'no NetworkPolicy selected the pod when captured: its traffic was unrestricted' }, phase);
    }
    for (const what of missing) {
      await ctx.caseFile.record('negative-finding', { finding: `${what} could not be captured: it no longer exists` }, phase);
    }

    const owners = ctx.status.target?.owners?.length ?? 0;
    return {
      status: 'True',
      reason: 'Captured',
      message: `pod, ${owners} owner(s), ServiceAccount ${saName}, node and NetworkPolicies captured${missing.length ? `; missing: ${missing.join(', ')}` : ''}`,
    };
  },
};

export function podGone(name: string): PhaseOutcome {
  return {
    status: 'False',
    reason: 'TargetGone',
    message: `pod ${name} disappeared (or was replaced) after it was resolved; what was captured before is kept`,
  };
}
