// The cluster's own address ranges, so the live collector can tell an in-cluster peer from an
// external one: the operator's configured ranges (pod CIDRs the API cannot tell), plus whatever
// the API does tell (ServiceCIDR objects, nodes' spec.podCIDRs). What was used goes into custody.
import { errorMessage } from '../errors.js';
import type { PhaseContext } from './phase.js';

export interface ClusterRanges {
  cidrs: string[];
  /** Where each range came from, and what could not be read. */
  sources: string[];
}

export async function clusterRanges(ctx: Pick<PhaseContext, 'kube' | 'config'>): Promise<ClusterRanges> {
  const cidrs = new Set<string>();
  const sources: string[] = [];
  for (const c of ctx.config.clusterCIDRs) cidrs.add(c);
  if (ctx.config.clusterCIDRs.length) sources.push(`configured: ${ctx.config.clusterCIDRs.join(', ')}`);
  try {
    const list = await ctx.kube.networking.listServiceCIDR();
    const found = list.items.flatMap((s) => s.spec?.cidrs ?? []);
    found.forEach((c) => cidrs.add(c));
    sources.push(`ServiceCIDRs: ${found.join(', ') || 'none'}`);
  } catch (err) {
    sources.push(`ServiceCIDRs unreadable: ${errorMessage(err)}`);
  }
  try {
    const nodes = await ctx.kube.core.listNode();
    const found = nodes.items.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
    found.forEach((c) => cidrs.add(c));
    sources.push(`node podCIDRs: ${found.join(', ') || 'none allocated'}`);
  } catch (err) {
    sources.push(`node podCIDRs unreadable: ${errorMessage(err)}`);
  }
  return { cidrs: [...cidrs].sort(), sources };
}
