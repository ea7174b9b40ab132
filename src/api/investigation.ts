// The Investigation resource (casefile.dev/v1alpha1): its spec as zod schemas, its status as types.
// The API server's structural schema (crds/) is the first gate; these schemas are the second,
// so a spec that slipped past an older CRD still gets a precise error instead of undefined behaviour.
import { z } from 'zod';
import { DEFAULT_MEMORY_MAX_BYTES, MEMORY_SCOPES } from '../live/memory.js';

export const GROUP = 'casefile.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const INVESTIGATION_PLURAL = 'investigations';
export const RESPONSE_POLICY_PLURAL = 'responsepolicies';
export const FINALIZER = 'casefile.dev/release';
export const FIELD_MANAGER = 'casefile';

// Kubernetes names: DNS-1123 labels for containers, subdomains for pods.
const dns1123Subdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS-1123 name (a-z, 0-9, "-", ".")');
export const dns1123Label = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase DNS-1123 label (a-z, 0-9, "-")');

const cidr = z.string().refine(isCIDR, 'must be a CIDR such as 10.0.0.0/8 or fd00::/8');

export const alertSources = ['falco', 'falcosidekick', 'audit', 'manual', 'other'] as const;
export const falcoPriorities = [
  'Emergency',
  'Alert',
  'Critical',
  'Error',
  'Warning',
  'Notice',
  'Informational',
  'Debug',
] as const;

export const targetSchema = z.object({
  pod: dns1123Subdomain,
  container: dns1123Label.optional(),
  uid: z.string().min(1).optional(),
});

export const alertSchema = z.object({
  source: z.enum(alertSources).default('manual'),
  rule: z.string().max(1024).optional(),
  priority: z.enum(falcoPriorities).optional(),
  time: z.string().optional(),
  raw: z.string().max(262144).optional(),
});

export const networkContainmentSchema = z.object({
  isolate: z.boolean().default(false),
  allowDNS: z.boolean().default(false),
  allowCIDRs: z.array(cidr).max(64).default([]),
  allowNamespaces: z.array(dns1123Label).max(64).default([]),
  detachFromWorkload: z.boolean().default(false),
  verify: z.boolean().default(true),
});

export const containmentSchema = z.object({
  order: z.enum(['EvidenceFirst', 'ContainFirst']).default('EvidenceFirst'),
  network: networkContainmentSchema.default(() => networkContainmentSchema.parse({})),
  rbac: z.object({ narrow: z.boolean().default(false) }).default({ narrow: false }),
  cordonNode: z.boolean().default(false),
});

export const DEFAULT_LOG_LIMIT_BYTES = 50 * 1024 * 1024;

export const logsEvidenceSchema = z.object({
  previous: z.boolean().default(true),
  sinceSeconds: z.number().int().positive().nullable().default(null),
  limitBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(DEFAULT_LOG_LIMIT_BYTES),
});

const absolutePath = z
  .string()
  .regex(/^\/[^\0]*$/, 'must be an absolute path')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');

/**
 * casefile's own containers run only images its installation names: a spec that could choose one would
 * let anyone who may open an Investigation run any image as root beside any of their pods, or on the node.
 */
export const IMAGE_SETTING = 'ConfigMap casefile-system/casefile-containers (key debug-image), read by the operator as --debug-image';
export const IMAGE_REFUSAL = `casefile's containers run only the image its installation configures (${IMAGE_SETTING}); a spec cannot choose one`;

/** Which regions of the target's processes are read from /proc/<pid>/mem, and how many bytes per case. */
export const memoryEvidenceSchema = z.object({
  scope: z
    .enum(MEMORY_SCOPES, { error: `must be one of ${MEMORY_SCOPES.join(', ')} (Suspicious: rwx, anonymous executable and deleted-file regions; Anonymous: also heap, stack and private anonymous; None: no memory is read)` })
    .default('Suspicious'),
  maxBytes: z.number().int().min(0).max(16 * 1024 * 1024 * 1024).default(DEFAULT_MEMORY_MAX_BYTES),
});

export const liveEvidenceSchema = z.object({
  enabled: z.boolean().default(false),
  /** Refused (kept in the schema only to say why): the image comes from the operator's configuration. */
  image: z.unknown().refine((v) => v === undefined || v === null, IMAGE_REFUSAL).optional(),
  timeoutSeconds: z.number().int().min(5).max(3600).default(120),
  paths: z.array(absolutePath).max(32).default(['/tmp', '/var/tmp', '/dev/shm']),
  maxFileBytes: z.number().int().min(0).max(1024 * 1024 * 1024).default(10 * 1024 * 1024),
  redactEnvironment: z.boolean().default(false),
  memory: memoryEvidenceSchema.default(() => memoryEvidenceSchema.parse({})),
});

/** The audit trail copied into the case (AuditCorrelated): from the pod's start unless a lookback is set. */
export const auditEvidenceSchema = z.object({
  enabled: z.boolean().default(true),
  lookbackSeconds: z.number().int().min(60).max(30 * 86400).optional(),
});

export const evidenceSchema = z.object({
  logs: logsEvidenceSchema.default(() => logsEvidenceSchema.parse({})),
  live: liveEvidenceSchema.default(() => liveEvidenceSchema.parse({})),
  node: z.object({ enabled: z.boolean().default(false) }).default({ enabled: false }),
  audit: auditEvidenceSchema.default(() => auditEvidenceSchema.parse({})),
});

export const investigationSpecSchema = z.object({
  target: targetSchema,
  alert: alertSchema.optional(),
  containment: containmentSchema.default(() => containmentSchema.parse({})),
  evidence: evidenceSchema.default(() => evidenceSchema.parse({})),
  release: z.boolean().default(false),
});

export type InvestigationSpec = z.infer<typeof investigationSpecSchema>;

/** Parses a spec, returning a one-line, field-addressed message a user can act on. */
export function parseSpec(raw: unknown): { ok: true; spec: InvestigationSpec } | { ok: false; message: string } {
  const result = investigationSpecSchema.safeParse(raw ?? {});
  if (result.success) return { ok: true, spec: result.data };
  const message = result.error.issues
    .map((issue) => `spec.${issue.path.join('.') || '(root)'}: ${issue.message}`)
    .join('; ');
  return { ok: false, message };
}

export function isCIDR(value: string): boolean {
  const [addr, bits, ...rest] = value.split('/');
  if (rest.length > 0 || addr === undefined || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
  const prefix = Number(bits);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) {
    return addr.split('.').every((o) => Number(o) <= 255) && prefix <= 32;
  }
  if (addr.includes(':') && /^[0-9a-fA-F:.]+$/.test(addr) && (addr.match(/::/g) ?? []).length <= 1) {
    return prefix <= 128;
  }
  return false;
}

// ---- status ----

export const conditionTypes = [
  'TargetResolved',
  'ManifestCaptured',
  'EventsCaptured',
  'LogsCaptured',
  'ScopeMapped',
  'NetworkIsolated',
  'RBACNarrowed',
  'NodeCordoned',
  'DebugContainerLaunched',
  'LiveStateCaptured',
  'NodeStateCaptured',
  'AuditCorrelated',
  'EvidenceSealed',
  'Released',
  'Ready',
  // kstatus's abnormal-true pair, derived from Ready (src/api/conditions.ts withKstatusConditions).
  'Reconciling',
  'Stalled',
] as const;
export type ConditionType = (typeof conditionTypes)[number];
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration: number;
}

export type InvestigationPhase =
  | 'Pending'
  | 'Capturing'
  | 'Containing'
  | 'Contained'
  | 'Completed'
  | 'Released'
  | 'Failed';

export interface OwnerRef {
  kind: string;
  name: string;
  uid: string;
}

export interface TargetStatus {
  podUID?: string;
  node?: string;
  container?: string;
  containerID?: string;
  image?: string;
  imageID?: string;
  serviceAccount?: string;
  owners?: OwnerRef[];
  podIP?: string;
  hostPID?: number;
  /** How each identity field was derived, so the chain is auditable. */
  derivation?: string[];
}

export interface EvidenceSignature {
  /** `sha256:` + hex SHA-256 of the signing key's SPKI DER public key (ConfigMap casefile-signing-keys). */
  keyFingerprint: string;
  /** The signature file in the case directory. */
  file: string;
  signedAt: string;
}

export interface EvidenceStatus {
  path?: string;
  artifacts?: number;
  bytes?: number;
  manifestSHA256?: string;
  sealedAt?: string;
  /** Absent when the case was sealed unsigned (EvidenceSealed reason SealedUnsigned says why). */
  signature?: EvidenceSignature;
}

export interface Finding {
  severity: 'critical' | 'high' | 'medium' | 'low' | 'info';
  kind: string;
  summary: string;
  artifact: string;
}

export interface ContainmentStatus {
  /** The incident label on the suspect pod, `key=value`; unique to this Investigation. */
  label?: string;
  networkPolicy?: string;
  /** Other policies that also selected the pod, patched to exclude the incident label. */
  patchedPolicies?: { name: string; original: string; generation?: number }[];
  /** Bindings casefile took the ServiceAccount out of (updated, never deleted); emptied: no subject left. */
  rbac?: { kind: 'RoleBinding' | 'ClusterRoleBinding'; namespace?: string; name: string; action: 'SubjectRemoved'; original: string; emptied?: boolean }[];
  /** Grants casefile cannot narrow to one account (group subjects): still in force. */
  remainingExposure?: string[];
  /** Other pods running as the same ServiceAccount: narrowing RBAC affects them too. */
  sharedServiceAccountPods?: string[];
  cordoned?: boolean;
  nodeWasUnschedulable?: boolean;
  verification?: { blocked: boolean; at: string; method: string; details?: string[] };
  released?: { at: string; differences?: string[] };
}

/** What casefile added to the scene to observe it, and what its collectors brought back. */
export interface LiveStatus {
  /** The ephemeral container's name: it stays in the pod's spec for the pod's life. */
  debugContainer?: string;
  image?: string;
  imageID?: string;
  launchedAt?: string;
  /** Where the live collector's run wrote (live/, or live/retry-<n> after an interrupted run). */
  artifacts?: string;
  capturedAt?: string;
  /** The node collector pod, removed after its run. */
  nodeCollector?: { namespace: string; pod: string; removed?: boolean };
}

export interface InvestigationStatus {
  phase?: InvestigationPhase;
  observedGeneration?: number;
  target?: TargetStatus;
  conditions?: Condition[];
  containment?: ContainmentStatus;
  evidence?: EvidenceStatus;
  findings?: Finding[];
  live?: LiveStatus;
  alerts?: { count: number; first?: string; last?: string };
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Investigation {
  apiVersion: typeof API_VERSION;
  kind: 'Investigation';
  metadata: ObjectMeta;
  spec: unknown; // validated by parseSpec before use
  status?: InvestigationStatus;
}
