// Does a ResponsePolicy's `match` select an alert about a pod in `namespace`? Every listed criterion
// must hold; an empty list means "any". The first failing criterion is returned so logs and tests can
// say why a policy did not match.
import type { PolicyMatch } from '../api/response-policy.js';
import { priorityRank, type FalcoAlert } from './alert-schema.js';

type MatchCriterion = 'rules' | 'minPriority' | 'tags' | 'sources' | 'namespaces' | 'excludeNamespaces' | 'outputFields';

/** undefined: the policy matches; else the criterion that failed. */
export function mismatch(match: PolicyMatch, alert: FalcoAlert, namespace: string): MatchCriterion | undefined {
  if (match.rules.length > 0 && !match.rules.includes(alert.rule)) return 'rules';
  if (match.minPriority && priorityRank(alert.priority) < priorityRank(match.minPriority)) return 'minPriority';
  if (match.tags.some((t) => !alert.tags.includes(t))) return 'tags';
  if (match.sources.length > 0 && (alert.source === undefined || !match.sources.includes(alert.source))) return 'sources';
  if (match.namespaces.length > 0 && !match.namespaces.includes(namespace)) return 'namespaces';
  if (match.excludeNamespaces.includes(namespace)) return 'excludeNamespaces';
  for (const [key, want] of Object.entries(match.outputFields)) {
    const have = alert.output_fields[key];
    // A missing field never matches; null compares as the string "null", as Falco prints it.
    if (have === undefined || String(have) !== want) return 'outputFields';
  }
  return undefined;
}

export function matches(match: PolicyMatch, alert: FalcoAlert, namespace: string): boolean {
  return mismatch(match, alert, namespace) === undefined;
}
