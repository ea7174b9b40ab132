// The Investigation an alert opens: the policy's template as the spec, the target and the alert filled
// in from the journaled alert, labelled with the policy so `kubectl get inv -l casefile.dev/policy=...`
// finds every case a policy opened.
import { alertSchema, API_VERSION } from '../api/investigation.js';
import type { AlertEntry } from './journal.js';
import { policyLabelValue } from './naming.js';

const POLICY_LABEL = 'casefile.dev/policy';
const POLICY_ANNOTATION = 'casefile.dev/response-policy';
const RAW_LIMIT = alertSchema.shape.raw.unwrap().maxLength ?? 262144;

export interface InvestigationBody {
  apiVersion: string;
  kind: 'Investigation';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: Record<string, unknown>;
}

/** spec.alert.raw is capped by the schema; the whole payload stays in the journal and reaches the case file. */
function capRaw(raw: string): string {
  return raw.length <= RAW_LIMIT ? raw : raw.slice(0, RAW_LIMIT);
}

export function buildInvestigation(entry: AlertEntry): InvestigationBody {
  const target: Record<string, string> = { pod: entry.pod.name, uid: entry.pod.uid };
  if (entry.pod.container) target.container = entry.pod.container;
  return {
    apiVersion: API_VERSION,
    kind: 'Investigation',
    metadata: {
      name: entry.investigation.name,
      namespace: entry.investigation.namespace,
      labels: { [POLICY_LABEL]: policyLabelValue(entry.policy.name), 'app.kubernetes.io/managed-by': 'casefile' },
      annotations: { [POLICY_ANNOTATION]: `${entry.policy.namespace}/${entry.policy.name}` },
    },
    spec: {
      ...entry.template,
      target,
      alert: { source: entry.source, rule: entry.alert.rule, priority: entry.alert.priority, time: entry.alert.time, raw: capRaw(entry.raw) },
    },
  };
}
