// The Investigation an alert opens is named from (policy, pod UID) alone, so every replica and every
// restart derives the same name: a second alert for the pod finds the first one's Investigation (or
// AlreadyExists on create) instead of opening another case.
import { createHash } from 'node:crypto';

const MAX_LABEL = 63;
const POLICY_PART = 20;

/** Lowercase a-z0-9 and single dashes, no dash at either end, at most `max` characters. */
function labelPart(value: string, max: number): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, max)
    .replace(/^-+|-+$/g, '');
}

/** `<policy>-<pod>-<hash8>`: a DNS-1123 label (<= 63 chars) unique per policy (namespace/name) and pod UID. */
export function investigationName(policyNamespace: string, policyName: string, podName: string, podUID: string): string {
  const hash = createHash('sha256').update(`${policyNamespace}/${policyName}\n${podUID}`).digest('hex').slice(0, 8);
  const policy = labelPart(policyName, POLICY_PART);
  const pod = labelPart(podName, MAX_LABEL - hash.length - policy.length - 2);
  return [policy, pod, hash].filter(Boolean).join('-');
}

/** A label value (<= 63 chars, alphanumeric at both ends) for casefile.dev/policy. */
export function policyLabelValue(policyName: string): string {
  return policyName.slice(0, MAX_LABEL).replace(/[^A-Za-z0-9]+$/, '');
}
