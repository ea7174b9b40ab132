// The Investigation an alert opens: the policy's template as the spec, the target and the alert filled
// in from the journaled alert, labelled with the policy so `kubectl get inv -l casefile.dev/policy=...`
// finds every case a policy opened.
import { alertSchema, API_VERSION } from '../api/investigation.js';
import type { AlertEntry, InvestigationRef } from './journal-format.js';
import { policyLabelValue } from './naming.js';

const POLICY_LABEL = 'casefile.dev/policy';
export const POLICY_ANNOTATION = 'casefile.dev/response-policy';
const MANAGED_BY = 'app.kubernetes.io/managed-by';
const RAW_LIMIT = alertSchema.shape.raw.unwrap().maxLength ?? 262144;

export interface InvestigationBody {
  apiVersion: string;
  kind: 'Investigation';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string>; finalizers?: string[] };
  spec: Record<string, unknown>;
}

/** spec.alert.raw is capped by the schema; the whole payload stays in the journal and reaches the case file. */
function capRaw(raw: string): string {
  return raw.length <= RAW_LIMIT ? raw : raw.slice(0, RAW_LIMIT);
}

/** `as`: the Investigation's name and namespace, when the case moved off its derived name. */
export function buildInvestigation(entry: Omit<AlertEntry, 'seq'>, as: InvestigationRef = entry.investigation): InvestigationBody {
  const target: Record<string, string> = { pod: entry.pod.name, uid: entry.pod.uid };
  if (entry.pod.container) target.container = entry.pod.container;
  return {
    apiVersion: API_VERSION,
    kind: 'Investigation',
    metadata: {
      name: as.name,
      namespace: as.namespace,
      labels: { [POLICY_LABEL]: policyLabelValue(entry.policy.name), [MANAGED_BY]: 'casefile' },
      annotations: { [POLICY_ANNOTATION]: `${entry.policy.namespace}/${entry.policy.name}` },
    },
    spec: {
      ...entry.template,
      target,
      alert: { source: entry.source, rule: entry.alert.rule, priority: entry.alert.priority, time: entry.alert.time, raw: capRaw(entry.raw ?? '') },
    },
  };
}

/**
 * Whether an existing Investigation is the case an alert of `policy` ("namespace/name") about the pod
 * with `podUID` opens: casefile's label, the policy's annotation and the pod as target. A lookalike
 * created by someone else under the derived name fails one of them unless it copies all three; then
 * it targets the very pod the alerts are about.
 */
export function isCasefileCase(inv: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: unknown }, policy: string, podUID: string): boolean {
  const target = (inv.spec as { target?: { uid?: unknown } } | undefined)?.target;
  return inv.metadata.labels?.[MANAGED_BY] === 'casefile' && inv.metadata.annotations?.[POLICY_ANNOTATION] === policy && target?.uid === podUID;
}
