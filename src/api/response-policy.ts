// The ResponsePolicy and ClusterResponsePolicy resources (casefile.dev/v1alpha1): which alerts open which
// Investigations. Scoped like cert-manager's Issuer/ClusterIssuer: a ResponsePolicy acts only on pods in
// its own namespace and cannot ask for node-level actions; a ClusterResponsePolicy spans namespaces and may
// ask for them when its author holds the grant (config/admission/node-actions.yaml). The CRDs' schemas
// (crds/) are the first gate; this schema is the second, so a policy that slipped past an older CRD is
// skipped with a message naming the field instead of matching by accident.
import { z } from 'zod';
import { containmentSchema, dns1123Label, evidenceSchema, falcoPriorities, type ObjectMeta } from './investigation.js';
import { nodeActionFields, requestedNodeActions } from './node-actions.js';

export const RESPONSE_POLICY_KIND = 'ResponsePolicy';
export const CLUSTER_RESPONSE_POLICY_KIND = 'ClusterResponsePolicy';
export const CLUSTER_RESPONSE_POLICY_PLURAL = 'clusterresponsepolicies';
export type PolicyKind = typeof RESPONSE_POLICY_KIND | typeof CLUSTER_RESPONSE_POLICY_KIND;

export const policyMatchSchema = z.object({
  /** Falco rule names, exact; empty: any rule. */
  rules: z.array(z.string().min(1).max(1024)).max(256).default([]),
  minPriority: z.enum(falcoPriorities).optional(),
  /** Every listed tag must be on the alert. */
  tags: z.array(z.string().min(1).max(256)).max(64).default([]),
  /** Falco event sources (syscall, k8s_audit, ...); empty: any. */
  sources: z.array(z.string().min(1).max(64)).max(32).default([]),
  /** Namespaces of the pod; empty: all but the excluded. */
  namespaces: z.array(dns1123Label).max(256).default([]),
  excludeNamespaces: z.array(dns1123Label).max(256).default([]),
  /** Exact matches on output_fields, compared as strings. */
  outputFields: z.record(z.string().min(1).max(256), z.string().max(1024)).default({}),
});

/** A partial Investigation spec: target and alert are filled from the alert, release is never templated. */
const investigationTemplateSchema = z.strictObject({
  containment: containmentSchema.optional(),
  evidence: evidenceSchema.optional(),
});

const responsePolicySpecSchema = z.object({
  match: policyMatchSchema.default(() => policyMatchSchema.parse({})),
  investigation: investigationTemplateSchema.default({}),
  dryRun: z.boolean().default(false),
});

export type PolicyMatch = z.infer<typeof policyMatchSchema>;
export type ResponsePolicySpec = z.infer<typeof responsePolicySpecSchema>;

export interface ResponsePolicy {
  apiVersion: string;
  kind: PolicyKind;
  /** A ClusterResponsePolicy has no namespace. */
  metadata: Omit<ObjectMeta, 'namespace'> & { namespace?: string };
  spec: unknown; // validated by parsePolicySpec before use
}

/** Parses a policy spec; the message names each bad field as `spec.<path>`. */
export function parsePolicySpec(
  raw: unknown,
  kind: PolicyKind = RESPONSE_POLICY_KIND,
): { ok: true; spec: ResponsePolicySpec; template: Record<string, unknown> } | { ok: false; message: string } {
  const result = responsePolicySpecSchema.safeParse(raw ?? {});
  if (!result.success) {
    return { ok: false, message: result.error.issues.map((i) => `spec.${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  }
  // A namespace's policy author is not trusted with the node or other namespaces' bindings.
  const nodeActions = kind === RESPONSE_POLICY_KIND ? requestedNodeActions(result.data.investigation) : [];
  if (nodeActions.length > 0) {
    return { ok: false, message: nodeActions.map((a) => `${nodeActionFields[a].replace(/^spec\./, 'spec.investigation.')}: ${NAMESPACED_NODE_ACTION_REFUSAL}`).join('; ') };
  }
  // The template goes into the Investigation as written: the CRD applies its own defaults there.
  const template = ((raw as { investigation?: Record<string, unknown> } | null)?.investigation ?? {}) as Record<string, unknown>;
  return { ok: true, spec: result.data, template };
}

export const NAMESPACED_NODE_ACTION_REFUSAL =
  'a namespaced ResponsePolicy cannot ask for node-level actions; use a ClusterResponsePolicy, whose author needs the nodeactions grant (ClusterRole casefile-node-responder)';
