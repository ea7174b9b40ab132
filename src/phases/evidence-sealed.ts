// EvidenceSealed: write report.md and report.html, then MANIFEST.sha256 over every artifact (re-hashed from disk and
// compared with the custody log), then the custody 'sealed' record. A case with a failed write is
// never sealed: a manifest would make an incomplete record look complete.

import type { Condition, Finding } from '../api/investigation.js';
import { renderReportHtml } from '../report/html.js';
import { renderReport, type ReportInput } from '../report/render.js';
import { collectorBases } from './collector-output.js';
import { collectorFindings, mergeFindings } from './collector-run.js';
import type { Phase, PhaseContext, PhaseOutcome } from './phase.js';

const STORE_FAILURES = new Set(['EvidenceStoreFull', 'EvidenceWriteFailed']);
const NOTE_ACTIONS = new Set(['negative-finding', 'limitation', 'refused']);

export const evidenceSealed: Phase = {
  condition: 'EvidenceSealed',
  async run(ctx): Promise<PhaseOutcome> {
    const conditions = ctx.status.conditions ?? [];
    const storeFailure = conditions.find((c) => c.status === 'False' && STORE_FAILURES.has(c.reason));
    if (storeFailure) {
      return {
        status: 'False',
        reason: 'EvidenceIncomplete',
        message: `not sealed: ${storeFailure.type} could not write its evidence (${storeFailure.reason}: ${storeFailure.message}); free or fix the evidence volume and open a new Investigation`,
      };
    }
    await ctx.importJournaledAlerts();
    if (!ctx.caseFile.has('report.md') || !ctx.caseFile.has('report.html')) {
      const input = reportInput(ctx, conditions, await collectedFindings(ctx));
      if (!ctx.caseFile.has('report.md')) await ctx.caseFile.writeText('report.md', renderReport(input), { phase: 'EvidenceSealed' });
      if (!ctx.caseFile.has('report.html')) await ctx.caseFile.writeText('report.html', renderReportHtml(input), { phase: 'EvidenceSealed' });
    }
    const sealed = await ctx.caseFile.seal();
    ctx.status.evidence = {
      path: ctx.caseFile.relativeDir,
      artifacts: sealed.artifacts,
      bytes: sealed.bytes,
      manifestSHA256: sealed.manifestSHA256,
      sealedAt: sealed.sealedAt,
    };
    return {
      status: 'True',
      reason: 'Sealed',
      message: `${sealed.artifacts} artifact(s), ${sealed.bytes} bytes; MANIFEST.sha256 ${sealed.manifestSHA256}`,
    };
  },
};

function reportInput(ctx: PhaseContext, conditions: Condition[], findings: Finding[]): ReportInput {
  const meta = ctx.investigation.metadata;
  return {
    namespace: meta.namespace,
    name: meta.name,
    uid: meta.uid,
    caseDir: ctx.caseFile.relativeDir,
    spec: ctx.spec,
    target: ctx.status.target,
    containment: ctx.status.containment,
    // The report describes the case as sealed; this phase's own condition is not final yet.
    conditions: conditions.filter((c) => !['EvidenceSealed', 'Ready', 'Reconciling', 'Stalled'].includes(c.type)),
    findings,
    live: ctx.status.live,
    alerts: ctx.status.alerts,
    artifacts: ctx.caseFile.artifacts(),
    custody: [...ctx.caseFile.custodyRecords()],
    notes: ctx.caseFile
      .custodyRecords()
      .filter((r) => NOTE_ACTIONS.has(r.action))
      .map((r) => ({
        phase: r.phase,
        kind: r.action as ReportInput['notes'][number]['kind'],
        text: String(r.detail?.finding ?? r.detail?.reason ?? JSON.stringify(r.detail ?? {})),
      })),
    generatedAt: new Date().toISOString(),
  };
}


/** Every collector finding for the report (status keeps only the most severe few). */
async function collectedFindings(ctx: PhaseContext): Promise<Finding[]> {
  let all: Finding[] = ctx.status.findings ?? [];
  for (const base of collectorBases(ctx.caseFile)) all = mergeFindings(all, await collectorFindings(ctx, base), Infinity);
  return all;
}
