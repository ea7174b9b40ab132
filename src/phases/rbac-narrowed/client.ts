// RBACNarrowed, the API calls: bindings are listed, read and updated, never created or deleted.
import type { V1RoleBinding } from '@kubernetes/client-node';
import { isForbidden, isNotFound } from '../../kube/errors.js';
import type { ReleaseContext } from '../phase.js';
import { RBAC_API_VERSION, type BindingItem, type BindingRef } from './plan.js';

export async function listBindings(ctx: ReleaseContext): Promise<BindingItem[]> {
  const [roleBindings, clusterRoleBindings] = await Promise.all([
    // Every namespace: a RoleBinding elsewhere may name this ServiceAccount and grant it access there.
    ctx.kube.rbac.listRoleBindingForAllNamespaces({}),
    ctx.kube.rbac.listClusterRoleBinding({}),
  ]);
  return [
    ...roleBindings.items.map((binding) => ({ kind: 'RoleBinding' as const, binding })),
    ...clusterRoleBindings.items.map((binding) => ({ kind: 'ClusterRoleBinding' as const, binding })),
  ];
}

export async function readBinding(ctx: ReleaseContext, ref: BindingRef): Promise<V1RoleBinding | undefined> {
  try {
    return ref.kind === 'RoleBinding'
      ? await ctx.kube.rbac.readNamespacedRoleBinding({ name: ref.name, namespace: ref.namespace! })
      : await ctx.kube.rbac.readClusterRoleBinding({ name: ref.name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** body carries the resourceVersion it was read with: a concurrent change answers 409 instead of being lost. */
export function updateBinding(ctx: ReleaseContext, ref: BindingRef, body: V1RoleBinding): Promise<V1RoleBinding> {
  const withKind = { ...body, apiVersion: RBAC_API_VERSION, kind: ref.kind };
  return ref.kind === 'RoleBinding'
    ? ctx.kube.rbac.replaceNamespacedRoleBinding({ name: ref.name, namespace: ref.namespace!, body: withKind })
    : ctx.kube.rbac.replaceClusterRoleBinding({ name: ref.name, body: withKind });
}

/** A namespace that is gone or terminating takes its RoleBindings with it: nothing there can be restored. */
export async function namespaceGoing(ctx: ReleaseContext, namespace: string): Promise<boolean> {
  try {
    const ns = await ctx.kube.core.readNamespace({ name: namespace });
    return Boolean(ns.metadata?.deletionTimestamp) || ns.status?.phase === 'Terminating';
  } catch (err) {
    if (isNotFound(err)) return true;
    // Without `get namespaces` the question cannot be answered: treat the namespace as staying (a
    // missing binding is then reported as deleted by someone else), rather than block release.
    if (isForbidden(err)) return false;
    throw err;
  }
}
