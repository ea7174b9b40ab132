// The ResponsePolicy resource (casefile.dev/v1alpha1): which alerts open which Investigations. The CRD's
// structural schema (crds/) is the first gate; this schema is the second, so a policy that slipped
// past an older CRD is skipped with a message naming the field instead of matching by accident.
import { z } from 'zod';
import { containmentSchema, dns1123Label, evidenceSchema, falcoPriorities, type ObjectMeta } from './investigation.js';

const RESPONSE_POLICY_KIND = 'ResponsePolicy';

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
  kind: typeof RESPONSE_POLICY_KIND;
  metadata: ObjectMeta;
  spec: unknown; // validated by parsePolicySpec before use
}

/** Parses a policy spec; the message names each bad field as `spec.<path>`. */
export function parsePolicySpec(raw: unknown): { ok: true; spec: ResponsePolicySpec; template: Record<string, unknown> } | { ok: false; message: string } {
  const result = responsePolicySpecSchema.safeParse(raw ?? {});
  if (!result.success) {
    return { ok: false, message: result.error.issues.map((i) => `spec.${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  }
  // The template goes into the Investigation as written: the CRD applies its own defaults there.
  const template = ((raw as { investigation?: Record<string, unknown> } | null)?.investigation ?? {}) as Record<string, unknown>;
  return { ok: true, spec: result.data, template };
}
