// What a phase is: one step of the runbook that owns one condition. The engine runs phases in the
// order of src/phases/index.ts; each is idempotent and resumable (artifacts are captured once, so a
// phase interrupted by a restart simply runs again and reuses what it already wrote).
import type { V1Pod } from '@kubernetes/client-node';
import type { ConditionType, Investigation, InvestigationSpec, InvestigationStatus } from '../api/investigation.js';
import type { OperatorConfig } from '../config.js';
import type { Kube } from '../kube/client.js';
import type { AuditStoreReader } from '../audit/store-reader.js';
import type { AuditStoreLimits } from '../audit/store.js';
import type { SigningKey } from '../evidence/signing.js';
import type { CaseFile } from '../evidence/store.js';
import type { Logger } from '../log.js';

export interface PhaseOutcome {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export interface PhaseContext {
  readonly investigation: Investigation;
  readonly spec: InvestigationSpec;
  readonly kube: Kube;
  readonly caseFile: CaseFile;
  readonly config: OperatorConfig;
  readonly log: Logger;
  /** Working copy of the status; phases record what they resolved (target, evidence) here. */
  readonly status: InvestigationStatus;
  /**
   * The live target pod if it exists and is still the pod TargetResolved resolved (same UID).
   * Read once per reconcile unless `fresh` (a phase waiting on the pod's status).
   */
  livePod(opts?: { fresh?: boolean }): Promise<V1Pod | undefined>;
  /**
   * Copies the alerts journaled for this case since it opened into its case file (the operator wires
   * intake's journal in here, so phases never depend on intake).
   */
  importJournaledAlerts(): Promise<void>;
  /** The operator's key for signing sealed cases; rejects with why there is none (the case is then sealed unsigned). */
  signingKey(): Promise<SigningKey>;
  /** The rolling audit store, when this operator receives the API server's audit events; undefined otherwise. */
  readonly audit?: AuditTrailSource;
}

/** What AuditCorrelated reads (the operator wires it in when --audit-port is set). */
export interface AuditTrailSource {
  reader: AuditStoreReader;
  limits: AuditStoreLimits;
  /** How long to wait for the API server to deliver events up to the window's end: its batch wait, and a margin. */
  flushWaitMs: number;
  /** The operator's own username, so its debug container is told from a stranger's. */
  operatorUsername(): Promise<string | undefined>;
}

/** How the operator brings journaled alerts into a case file (intake/case-file-import.ts). */
export type AlertImporter = (caseFile: CaseFile, investigation: Investigation) => Promise<unknown>;

/** Gives back what first writes made, each pinned to what they made; resolves whether or not it could. */
export type TakeBack = () => Promise<unknown>;

/** What a containment phase's first writes may use: the latest Investigation read, and the cluster. */
export type ContainNowContext = Pick<PhaseContext, 'investigation' | 'spec' | 'kube' | 'log' | 'config'>;

/** What release may use: the record, never the current spec. */
export type ReleaseContext = Omit<PhaseContext, 'spec' | 'importJournaledAlerts' | 'signingKey' | 'audit'>;

export interface Phase {
  readonly condition: ConditionType;
  /** Containment phases move to right after TargetResolved when spec.containment.order is ContainFirst. */
  readonly containment?: boolean;
  /** Needs TargetResolved=True; otherwise the engine records it False with reason TargetUnavailable. */
  readonly needsTarget?: boolean;
  /** When false for a spec, the engine reports the condition True with reason Disabled. */
  enabled?(spec: InvestigationSpec): boolean;
  run(ctx: PhaseContext): Promise<PhaseOutcome>;
  /**
   * ContainFirst: the cluster writes this phase makes before any bookkeeping (no finalizer, case file or
   * status write ahead of them), on the operator's containment lane. Idempotent, and leaves nothing that
   * run() cannot find again in the cluster and record, or release() cannot find and undo. Resolves with
   * how to take back what it made, for a case deleted before the lane's finalizer landed (nothing would
   * release it then).
   */
  containNow?(ctx: ContainNowContext): Promise<TakeBack | undefined>;
  /**
   * Containment phases undo what they applied when the case is released (spec.release or deletion).
   * Must be idempotent and restart-safe: what to undo is read back from the cluster, from
   * status.containment and from the case file's saved originals, never from memory and never from the
   * spec (which may have been edited since, or no longer parse): hence no `spec` in its context.
   * Reports done only what it re-read and found undone; throws (see src/errors.ts) otherwise. Restores merge into the current object (only casefile's
   * own change is taken out) and report in `differences` what else changed meanwhile.
   */
  release?(ctx: ReleaseContext): Promise<ReleaseOutcome>;
}

export interface ReleaseOutcome {
  message: string;
  differences?: string[];
}
