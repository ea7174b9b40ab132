// ScopeMapped: how far the incident may reach. Sibling pods that share the image digest (anywhere),
// the ServiceAccount or the controller; every binding that grants the ServiceAccount something, with
// its resolved rules; and the API server's own answer (SubjectAccessReview) for the verbs that matter.
import type { RbacV1Subject, V1PolicyRule, V1Pod } from '@kubernetes/client-node';
import { isNotFound } from '../kube/errors.js';
import { errorMessage, RetryableError } from '../errors.js';
import { evidenceErrorReason } from '../evidence/store.js';
import { podGone } from './manifest-captured.js';
import type { Phase, PhaseContext, PhaseOutcome, ReleaseContext } from './phase.js';

/** The checks a responder asks first: can this identity read secrets, start pods, exec, escalate? */
export const accessChecks = [
  { verb: 'get', resource: 'secrets', group: '' },
  { verb: 'list', resource: 'secrets', group: '' },
  { verb: 'create', resource: 'pods', group: '' },
  { verb: 'create', resource: 'pods', subresource: 'exec', group: '' },
  { verb: 'delete', resource: 'pods', group: '' },
  { verb: 'create', resource: 'deployments', group: 'apps' },
  { verb: 'patch', resource: 'deployments', group: 'apps' },
  { verb: 'create', resource: 'daemonsets', group: 'apps' },
  { verb: 'create', resource: 'jobs', group: 'batch' },
  { verb: 'create', resource: 'rolebindings', group: 'rbac.authorization.k8s.io' },
  { verb: 'create', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' },
  { verb: 'get', resource: 'nodes', group: '', cluster: true },
] as const;

export interface BindingGrant {
  kind: 'RoleBinding' | 'ClusterRoleBinding';
  namespace?: string;
  name: string;
  roleRef: { kind: string; name: string };
  matchedSubject: RbacV1Subject;
  rules: V1PolicyRule[];
  roleMissing?: boolean;
}

export const scopeMapped: Phase = {
  condition: 'ScopeMapped',
  needsTarget: true,
  async run(ctx): Promise<PhaseOutcome> {
    const pod = await ctx.livePod();
    if (!pod) return podGone(ctx.spec.target.pod);
    const { namespace } = ctx.investigation.metadata;
    const sa = pod.spec?.serviceAccountName ?? 'default';
    try {
      const siblings = await findSiblings(ctx, pod);
      await ctx.caseFile.writeJSON('scope/siblings.json', siblings, { phase: 'ScopeMapped' });
      const grants = await bindingsFor(ctx, namespace, sa);
      const access = await reviewAccess(ctx, namespace, sa);
      const can = (verb: string, resource: string, sub?: string) =>
        access.some((a) => a.verb === verb && a.resource === resource && a.subresource === sub && a.allowed);
      const summary = {
        canReadSecrets: can('get', 'secrets') || can('list', 'secrets'),
        canCreatePods: can('create', 'pods'),
        canExec: can('create', 'pods', 'exec'),
      };
      await ctx.caseFile.writeJSON('scope/permissions.json', {
        serviceAccount: `system:serviceaccount:${namespace}:${sa}`,
        summary,
        bindings: grants,
        access,
      }, { phase: 'ScopeMapped' });
      const yesNo = (b: boolean) => (b ? 'yes' : 'no');
      return {
        status: 'True',
        reason: 'Mapped',
        message:
          `${siblings.byImageDigest.length} pod(s) share the image digest, ${siblings.byServiceAccount.length} the ServiceAccount, ` +
          `${siblings.byOwner.length} the controller; ServiceAccount ${sa} is granted by ${grants.length} binding(s) and can read secrets: ` +
          `${yesNo(summary.canReadSecrets)}, create pods: ${yesNo(summary.canCreatePods)}, exec: ${yesNo(summary.canExec)}`,
      };
    } catch (err) {
      if (err instanceof RetryableError || evidenceErrorReason(err)) throw err;
      throw new RetryableError(`mapping scope: ${errorMessage(err)}`);
    }
  },
};

interface SiblingRef {
  namespace: string;
  name: string;
  uid: string;
  node?: string;
  phase?: string;
}

async function findSiblings(ctx: PhaseContext, pod: V1Pod) {
  const target = ctx.status.target!;
  const all = await ctx.kube.core.listPodForAllNamespaces({});
  const others = all.items.filter((p) => p.metadata?.uid !== pod.metadata?.uid);
  const ref = (p: V1Pod): SiblingRef => ({
    namespace: p.metadata!.namespace!,
    name: p.metadata!.name!,
    uid: p.metadata!.uid!,
    node: p.spec?.nodeName,
    phase: p.status?.phase,
  });
  const digests = new Set(
    [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].map((s) => s.imageID).filter(Boolean),
  );
  const controller = pod.metadata?.ownerReferences?.find((o) => o.controller)?.uid;
  const sa = pod.spec?.serviceAccountName ?? 'default';
  const ns = pod.metadata?.namespace;
  return {
    imageDigests: [...digests],
    serviceAccount: sa,
    controller: target.owners?.[0] ?? null,
    byImageDigest: others
      .filter((p) => [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])].some((s) => digests.has(s.imageID)))
      .map(ref),
    byServiceAccount: others.filter((p) => p.metadata?.namespace === ns && (p.spec?.serviceAccountName ?? 'default') === sa).map(ref),
    byOwner: controller ? others.filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === controller)).map(ref) : [],
  };
}

/** Subjects that reach a pod's ServiceAccount: the account itself and the groups it belongs to. */
export function subjectReachesServiceAccount(subject: RbacV1Subject, namespace: string, sa: string): boolean {
  if (subject.kind === 'ServiceAccount') return subject.name === sa && (subject.namespace ?? namespace) === namespace;
  if (subject.kind === 'Group') {
    return ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'].includes(subject.name);
  }
  if (subject.kind === 'User') return subject.name === `system:serviceaccount:${namespace}:${sa}`;
  return false;
}

async function bindingsFor(ctx: PhaseContext, namespace: string, sa: string): Promise<BindingGrant[]> {
  const grants: BindingGrant[] = [];
  const [roleBindings, clusterRoleBindings] = await Promise.all([
    ctx.kube.rbac.listNamespacedRoleBinding({ namespace }),
    ctx.kube.rbac.listClusterRoleBinding({}),
  ]);
  const bindings = [
    ...roleBindings.items.map((b) => ({ kind: 'RoleBinding' as const, b })),
    ...clusterRoleBindings.items.map((b) => ({ kind: 'ClusterRoleBinding' as const, b })),
  ];
  for (const { kind, b } of bindings) {
    const matched = (b.subjects ?? []).find((s) => subjectReachesServiceAccount(s, namespace, sa));
    if (!matched) continue;
    const { rules, missing } = await roleRules(ctx, namespace, b.roleRef.kind, b.roleRef.name);
    grants.push({
      kind,
      namespace: kind === 'RoleBinding' ? namespace : undefined,
      name: b.metadata!.name!,
      roleRef: { kind: b.roleRef.kind, name: b.roleRef.name },
      matchedSubject: matched,
      rules,
      ...(missing ? { roleMissing: true } : {}),
    });
  }
  return grants;
}

async function roleRules(ctx: PhaseContext, namespace: string, kind: string, name: string) {
  try {
    const role = kind === 'ClusterRole'
      ? await ctx.kube.rbac.readClusterRole({ name })
      : await ctx.kube.rbac.readNamespacedRole({ name, namespace });
    return { rules: role.rules ?? [], missing: false };
  } catch (err) {
    if (isNotFound(err)) return { rules: [], missing: true };
    throw err;
  }
}

/** The API server's own answer, per check in accessChecks, for the ServiceAccount and its groups. */
export async function reviewAccess(ctx: ReleaseContext, namespace: string, sa: string) {
  const user = `system:serviceaccount:${namespace}:${sa}`;
  const groups = ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'];
  return Promise.all(
    accessChecks.map(async (check) => {
      const review = await ctx.kube.authz.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user,
            groups,
            resourceAttributes: {
              verb: check.verb,
              group: check.group,
              resource: check.resource,
              subresource: 'subresource' in check ? check.subresource : undefined,
              namespace: 'cluster' in check ? undefined : namespace,
            },
          },
        },
      });
      return {
        verb: check.verb,
        group: check.group,
        resource: check.resource,
        subresource: 'subresource' in check ? check.subresource : undefined,
        namespace: 'cluster' in check ? undefined : namespace,
        allowed: review.status?.allowed ?? false,
        reason: review.status?.reason ?? '',
      };
    }),
  );
}
