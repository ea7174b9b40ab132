// AuditCorrelated: the case's audit trail, copied from the operator's rolling audit store into audit/
// (write-once and hashed like every artifact): every request on the suspect pod, and every request
// made with its own token, from the pod's start (or spec.evidence.audit.lookbackSeconds) to the moment
// this phase closes the window, just before the seal. Findings are derived from the copied artifacts,
// not from the store, so a reviewer can re-derive them from the case file alone.
import { RequeueAfter } from '../../errors.js';
import { mergeFindings } from '../collector-run.js';
import type { Phase, PhaseOutcome } from '../phase.js';
import { copyRecords, deriveFindings, type CopyStats } from './copy.js';
import { closeWindow } from './window.js';

export const POD_REQUESTS = 'audit/pod-requests.jsonl';
export const TOKEN_REQUESTS = 'audit/token-requests.jsonl';
export const AUDIT_FINDINGS = 'audit/findings.json';
export const AUDIT_SUMMARY = 'audit/summary.json';

export const auditCorrelated: Phase = {
  condition: 'AuditCorrelated',
  needsTarget: true,
  enabled: (spec) => spec.evidence.audit.enabled,
  async run(ctx): Promise<PhaseOutcome> {
    const audit = ctx.audit;
    if (!audit) {
      await ctx.caseFile.record('negative-finding', { finding: 'no audit trail: this operator receives no audit events (--audit-port is not set); see docs/audit.md' }, 'AuditCorrelated');
      return { status: 'True', reason: 'NotConfigured', message: 'the operator receives no audit events (--audit-port unset): no audit trail in this case' };
    }
    const window = await closeWindow(ctx);
    const delivered = await audit.reader.newest();
    const waitedMs = Date.now() - Date.parse(window.until);
    if ((delivered === undefined || delivered < window.until) && waitedMs < audit.flushWaitMs) {
      throw new RequeueAfter(`waiting for the API server to deliver audit events up to ${window.until} (delivered up to ${delivered ?? 'nothing yet'})`, 1000, 'AwaitingAuditEvents');
    }
    const identity = { ...window.identity, operatorUsername: await audit.operatorUsername() };
    const pod = await copyRecords(ctx, audit.reader, identity, 'pod', POD_REQUESTS);
    const token = await copyRecords(ctx, audit.reader, identity, 'token', TOKEN_REQUESTS);
    const derived = await deriveFindings(ctx, identity, token.stats?.unattributed ?? 0);
    const late = delivered === undefined || delivered < window.until;
    const summary = {
      window: { from: window.from, until: window.until, fromSource: window.fromSource },
      deliveredUntil: delivered ?? null,
      incomplete: late ? `the API server had delivered audit events only up to ${delivered ?? 'nothing'} after ${Math.round(waitedMs / 1000)} s: later requests in the window are missing` : null,
      store: { maxBytes: audit.limits.maxBytes, maxAgeSeconds: Math.round(audit.limits.maxAgeMs / 1000), scans: { pod: pod.stats, token: token.stats } },
      podRequests: derived.podRequests,
      tokenRequests: derived.token.requests,
      tokenRequestsRefused: derived.token.refused,
      unattributedTokenRequests: derived.unattributed,
      tokenRequestsByVerb: derived.token.byVerb(),
    };
    await ctx.caseFile.writeJSON(AUDIT_FINDINGS, derived.findings, { phase: 'AuditCorrelated' });
    await ctx.caseFile.writeJSON(AUDIT_SUMMARY, summary, { phase: 'AuditCorrelated' });
    for (const note of negativeFindings(pod.stats, window.from, derived.podRequests, derived.token.requests)) await ctx.caseFile.record('negative-finding', { finding: note }, 'AuditCorrelated');
    if (late) await ctx.caseFile.record('negative-finding', { finding: summary.incomplete }, 'AuditCorrelated');
    ctx.status.findings = mergeFindings(ctx.status.findings ?? [], derived.findings);
    const message = `${derived.podRequests} request(s) on the pod, ${derived.token.requests} with its token, ${derived.findings.length} finding(s), window ${window.from} to ${window.until}`;
    return { status: 'True', reason: late ? 'CorrelatedIncomplete' : 'Correlated', message: late ? `${message}; ${summary.incomplete}` : message };
  },
};

/** Silence is written down: no request found, or a store that no longer reaches back to the window's start. */
function negativeFindings(stats: CopyStats | undefined, from: string, podRequests: number, tokenRequests: number): string[] {
  const notes: string[] = [];
  if (podRequests === 0) notes.push('no request on the pod (exec, attach, port-forward, ephemeral containers, changes) in the audit window');
  if (tokenRequests === 0) notes.push("no request made with the pod's own ServiceAccount token in the audit window");
  const oldest = stats?.oldest;
  if (oldest && oldest > from) notes.push(`the audit store reaches back only to ${oldest} (its size or age limit rotated older records out): requests between ${from} and then are not in this case`);
  return notes;
}
