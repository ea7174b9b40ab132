// Operator configuration, from CLI flags (with environment fallbacks for the Deployment),
// validated once at start so a bad value stops the operator with a message naming the flag.
import os from 'node:os';
import { z } from 'zod';
import { conditionTypes, isCIDR } from './api/investigation.js';

export const operatorConfigSchema = z.object({
  evidenceDir: z.string().min(1),
  kubeconfig: z.string().optional(),
  workers: z.number().int().min(1).max(64),
  httpPort: z.number().int().min(0).max(65535),
  leaderElection: z.boolean(),
  leaseNamespace: z.string().min(1),
  leaseName: z.string().min(1),
  identity: z.string().min(1),
  debugImage: z.string().min(1).optional(),
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
  exitAfterPhase: z.enum(conditionTypes).optional(),
});

export type OperatorConfig = z.infer<typeof operatorConfigSchema>;

export function defaultIdentity(): string {
  return process.env.POD_NAME ?? `${os.hostname()}-${process.pid}`;
}
