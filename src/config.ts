// Operator configuration, from CLI flags (with environment fallbacks for the Deployment),
// validated once at start so a bad value stops the operator with a message naming the flag.
import os from 'node:os';
import { z } from 'zod';
import { conditionTypes, isCIDR } from './api/investigation.js';

/**
 * The alert intake endpoint. Never open by default: it runs only with a port AND at least one way to
 * authenticate; a port without one is refused with a message naming the flags.
 */
export const intakeConfigSchema = z
  .object({
    port: z.number().int().min(0).max(65535).optional(),
    tokenFile: z.string().min(1).optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    clientCA: z.string().min(1).optional(),
    maxBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** The alert journal's bound: past it, alerts get 503 journal_full instead of filling the evidence volume. */
    journalMaxBytes: z.number().int().min(1024 * 1024).default(1024 ** 3),
    maxConnections: z.number().int().min(1).max(65_536).default(256),
    namespaceRate: z.number().positive().max(1000).default(1),
    namespaceBurst: z.number().int().min(1).max(10_000).default(20),
    policyRate: z.number().positive().max(1000).default(2),
    policyBurst: z.number().int().min(1).max(10_000).default(50),
  })
  .superRefine((c, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.port !== undefined && !c.tokenFile && !c.clientCA) {
      issue('port', '--intake-port (CASEFILE_INTAKE_PORT) needs --intake-token-file and/or --intake-client-ca: the intake endpoint is never open without authentication');
    }
    if (Boolean(c.tlsCert) !== Boolean(c.tlsKey)) issue('tlsCert', '--intake-tls-cert and --intake-tls-key go together');
    if (c.clientCA && !c.tlsCert) issue('clientCA', '--intake-client-ca (mutual TLS) needs --intake-tls-cert and --intake-tls-key');
  });

export type IntakeConfig = z.infer<typeof intakeConfigSchema>;

/** The case-file API (an aggregated API behind the Kubernetes API server): off without a port. */
export const caseApiConfigSchema = z
  .object({
    port: z.number().int().min(0).max(65535).optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.port !== undefined && (!c.tlsCert || !c.tlsKey)) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: '--case-api-port (CASEFILE_CASE_API_PORT) needs --case-api-tls-cert and --case-api-tls-key: the API server reaches it only over TLS' });
    }
  });

/**
 * The audit webhook receiver: off without a port. On, it needs its serving certificate and the CA of
 * the API server's client certificate (mutual TLS: nobody else may write the audit trail).
 */
export const auditConfigSchema = z
  .object({
    port: z.number().int().min(0).max(65535).optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    clientCA: z.string().min(1).optional(),
    allowedNames: z.array(z.string().min(1)).min(1).default(['kube-apiserver-audit']),
    maxBodyBytes: z.number().int().min(64 * 1024).max(64 * 1024 * 1024).default(16 * 1024 * 1024),
    storeMaxBytes: z.number().int().min(1024 * 1024).default(512 * 1024 * 1024),
    storeMaxAgeSeconds: z.number().int().min(60).default(7 * 86400),
    /** The API server's --audit-webhook-batch-max-wait (30 s by default) and a margin. */
    flushWaitSeconds: z.number().int().min(0).max(600).default(40),
  })
  .superRefine((c, ctx) => {
    if (c.port !== undefined && (!c.tlsCert || !c.tlsKey || !c.clientCA)) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: '--audit-port (CASEFILE_AUDIT_PORT) needs --audit-tls-cert, --audit-tls-key and --audit-client-ca: only the API server, by its client certificate, may post audit events' });
    }
  });

export type AuditConfig = z.infer<typeof auditConfigSchema>;

export const operatorConfigSchema = z.object({
  evidenceDir: z.string().min(1),
  kubeconfig: z.string().optional(),
  workers: z.number().int().min(1).max(64),
  httpPort: z.number().int().min(0).max(65535),
  leaderElection: z.boolean(),
  leaseNamespace: z.string().min(1),
  leaseName: z.string().min(1),
  /** Namespace of Secret casefile-signing-key and ConfigMap casefile-signing-keys: the operator's own. */
  signingNamespace: z.string().min(1).default('casefile-system'),
  identity: z.string().min(1),
  /** The one image of casefile's own containers (ConfigMap casefile-system/casefile-containers). */
  debugImage: z.string().min(1).optional(),
  /**
   * Node-level actions (node collector, cordon, RBAC narrowing) run only while the admission policy
   * that checks their requester's grant is installed; false for clusters without ValidatingAdmissionPolicy.
   */
  requireNodeActionsAdmission: z.boolean().default(true),
  /** Pod and service ranges the API cannot tell (pod CIDRs without node IPAM): peers outside them are external. */
  clusterCIDRs: z.array(z.string().refine(isCIDR, 'must be a CIDR such as 10.244.0.0/16')),
  /** Where node collector pods run: a namespace that admits hostPID and read-only hostPath mounts. */
  collectorNamespace: z.string().min(1),
  /** containerd's root (snapshots: the overlay upper layers) and state (task bundles) on the nodes. */
  runtimeRoot: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path'),
  runtimeState: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path'),
  /** Label selector of the Investigations this instance serves (sharding, e.g. a separate evidence volume). */
  selector: z.string(),
  /** Fault injection for the restart tests: exit right after this phase's condition is written. */
  /** Fault injection for the e2e tests: exit after this phase, or after ContainFirst's first writes (`ContainNow`). */
  exitAfterPhase: z.enum([...conditionTypes, 'ContainNow']).optional(),
  intake: intakeConfigSchema.default(() => intakeConfigSchema.parse({})),
  caseApi: caseApiConfigSchema.default(() => caseApiConfigSchema.parse({})),
  audit: auditConfigSchema.default(() => auditConfigSchema.parse({})),
});

export type OperatorConfig = z.infer<typeof operatorConfigSchema>;

export function defaultIdentity(): string {
  return process.env.POD_NAME ?? `${os.hostname()}-${process.pid}`;
}
