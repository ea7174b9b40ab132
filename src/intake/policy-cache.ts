// Every ResponsePolicy in the cluster, from an informer (list+watch), each parsed once per
// resourceVersion. A policy the schema rejects is skipped and logged once per version, never matched.
import type { ResponsePolicy, ResponsePolicySpec } from '../api/response-policy.js';
import { parsePolicySpec } from '../api/response-policy.js';
import type { Logger } from '../log.js';
import type { FalcoAlert } from './alert-schema.js';
import { matches } from './matcher.js';

export interface ActivePolicy {
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
    private readonly source: PolicySource,
    private readonly log: Logger,
  ) {}

  /** Policies whose match selects this alert about a pod in `namespace`, sorted by namespace/name. */
  matching(alert: FalcoAlert, namespace: string): ActivePolicy[] {
    const out: ActivePolicy[] = [];
    for (const obj of this.source.list()) {
      const policy = this.parse(obj);
      if (policy && matches(policy.spec.match, alert, namespace)) out.push(policy);
    }
    return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  }

  private parse(obj: ResponsePolicy): ActivePolicy | undefined {
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const rv = obj.metadata.resourceVersion;
    const cached = this.parsed.get(key);
    if (cached && cached.rv === rv && rv !== undefined) return cached.policy;
    const result = parsePolicySpec(obj.spec);
    let policy: ActivePolicy | undefined;
    if (result.ok) policy = { namespace: obj.metadata.namespace, name: obj.metadata.name, spec: result.spec, template: result.template };
    else this.log.warn({ policy: key, problem: result.message }, 'ResponsePolicy is invalid: ignored until fixed');
    if (this.parsed.size > 10_000) this.parsed.clear();
    this.parsed.set(key, { rv, policy });
    return policy;
  }
}
