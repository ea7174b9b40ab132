// Every ResponsePolicy and ClusterResponsePolicy in the cluster, from informers (list+watch), each parsed
// once per resourceVersion. A policy the schema rejects is skipped and logged once per version, never
// matched. Scope follows the kind: a ResponsePolicy selects only pods in its own namespace (whatever its
// match.namespaces says); a ClusterResponsePolicy selects pods in every namespace its match allows.
import { CLUSTER_RESPONSE_POLICY_KIND, parsePolicySpec, RESPONSE_POLICY_KIND, type PolicyKind, type ResponsePolicy, type ResponsePolicySpec } from '../api/response-policy.js';
import type { Logger } from '../log.js';
import type { FalcoAlert } from './alert-schema.js';
import { matches } from './matcher.js';

export interface ActivePolicy {
  kind: PolicyKind;
  /** '' for a ClusterResponsePolicy. */
  namespace: string;
  name: string;
  spec: ResponsePolicySpec;
  /** spec.investigation as written. */
  template: Record<string, unknown>;
}

interface PolicySource {
  list(): ResponsePolicy[];
}

export class PolicyCache {
  private readonly parsed = new Map<string, { rv: string | undefined; policy: ActivePolicy | undefined }>();

  constructor(
    private readonly sources: { namespaced: PolicySource; cluster?: PolicySource },
    private readonly log: Logger,
  ) {}

  /** Policies whose scope and match select this alert about a pod in `namespace`, sorted by namespace/name. */
  matching(alert: FalcoAlert, namespace: string): ActivePolicy[] {
    const out: ActivePolicy[] = [];
    const candidates = [
      ...this.sources.namespaced.list().map((obj) => this.parse(obj, RESPONSE_POLICY_KIND)),
      ...(this.sources.cluster?.list() ?? []).map((obj) => this.parse(obj, CLUSTER_RESPONSE_POLICY_KIND)),
    ];
    for (const policy of candidates) {
      if (!policy || !inScope(policy, namespace)) continue;
      if (matches(policy.spec.match, alert, namespace)) out.push(policy);
    }
    return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  }

  private parse(obj: ResponsePolicy, kind: PolicyKind): ActivePolicy | undefined {
    const namespace = kind === RESPONSE_POLICY_KIND ? (obj.metadata.namespace ?? '') : '';
    const key = `${kind}/${namespace}/${obj.metadata.name}`;
    const rv = obj.metadata.resourceVersion;
    const cached = this.parsed.get(key);
    if (cached && cached.rv === rv && rv !== undefined) return cached.policy;
    const result = parsePolicySpec(obj.spec, kind);
    let policy: ActivePolicy | undefined;
    if (result.ok) policy = { kind, namespace, name: obj.metadata.name, spec: result.spec, template: result.template };
    else this.log.warn({ policy: key, problem: result.message }, `${kind} is invalid: ignored until fixed`);
    if (this.parsed.size > 10_000) this.parsed.clear();
    this.parsed.set(key, { rv, policy });
    return policy;
  }
}

/** A namespaced policy acts only where it lives: its author may not reach into other namespaces. */
export function inScope(policy: Pick<ActivePolicy, 'kind' | 'namespace'>, podNamespace: string): boolean {
  return policy.kind === CLUSTER_RESPONSE_POLICY_KIND || policy.namespace === podNamespace;
}
