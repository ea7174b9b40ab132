// EvidenceSealed: write timeline.jsonl (every dated fact of the case, read from its artifacts by
// src/report/gather.ts), report.md and report.html from the same input, then MANIFEST.sha256 over every artifact (re-hashed
// from disk and compared with the custody log), then the custody 'sealed' record, then the signature of
// that seal (MANIFEST.sha256.sig, recorded as 'signed'). A case with a failed write is never sealed: a
// manifest would make an incomplete record look complete. A case that cannot be signed is still sealed:
// True with reason SealedUnsigned, the message saying why, and no status.evidence.signature.

import type { Condition, EvidenceSignature, Finding } from '../api/investigation.js';
import { errorMessage } from '../errors.js';
import { SIGNATURE_FILE } from '../evidence/layout.js';
import { signCase, type SigningKey } from '../evidence/signing.js';
import { renderReportHtml } from '../report/html.js';
import { emptyFacts } from '../report/facts.js';
import { gatherCaseFacts } from '../report/gather.js';
import { renderReport, type ReportInput } from '../report/render.js';
import { buildTimeline, timelineJsonl } from '../report/timeline.js';
import { collectorBases } from './collector-output.js';
import { collectorFindings, mergeFindings, readFindings } from './collector-run.js';
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
    // Asked before the reports are written, so they can name the key that will sign (or say why none will).
    const signer = await ctx.signingKey().then(
      (key) => ({ key }),
      (err: unknown) => ({ unsigned: `no signing key: ${errorMessage(err)}` }),
    );
    if (!['timeline.jsonl', 'report.md', 'report.html'].every((a) => ctx.caseFile.has(a))) {
      const signing = 'key' in signer ? { keyFingerprint: signer.key.fingerprint } : signer;
      const facts = await gatherCaseFacts(ctx.caseFile, collectorBases(ctx.caseFile).filter((b) => b === 'live' || b.startsWith('live/'))).catch(
        (err: unknown) => ({ ...emptyFacts(), problems: [`the artifacts could not be read for the timeline: ${errorMessage(err)}`] }),
      );
      const input = { ...reportInput(ctx, conditions, await collectedFindings(ctx)), facts, signing };
      // The timeline is an artifact of its own, written before the reports that show it (and hashed with the rest).
      if (!ctx.caseFile.has('timeline.jsonl')) await ctx.caseFile.writeText('timeline.jsonl', timelineJsonl(buildTimeline(input)), { phase: 'EvidenceSealed' });
      if (!ctx.caseFile.has('report.md')) await ctx.caseFile.writeText('report.md', renderReport(input), { phase: 'EvidenceSealed' });
      if (!ctx.caseFile.has('report.html')) await ctx.caseFile.writeText('report.html', renderReportHtml(input), { phase: 'EvidenceSealed' });
    }
    const sealed = await ctx.caseFile.seal();
    const signed = 'key' in signer ? await sign(ctx, signer.key) : signer;
    ctx.status.evidence = {
      path: ctx.caseFile.relativeDir,
      artifacts: sealed.artifacts,
      bytes: sealed.bytes,
      manifestSHA256: sealed.manifestSHA256,
      sealedAt: sealed.sealedAt,
      ...('signature' in signed ? { signature: signed.signature } : {}),
    };
    const summary = `${sealed.artifacts} artifact(s), ${sealed.bytes} bytes; MANIFEST.sha256 ${sealed.manifestSHA256}`;
    if ('signature' in signed) return { status: 'True', reason: 'Sealed', message: `${summary}; signed by ${signed.signature.keyFingerprint}` };
    // The seal stands (the manifest and custody chain verify), so True; the reason says what is missing.
    return { status: 'True', reason: 'SealedUnsigned', message: `${summary}; NOT signed (${signed.unsigned}): casefile verify --require-signature will fail this case` };
  },
};

/** Signs the sealed case and records it in custody; a failure leaves the case sealed but unsigned, and says why. */
async function sign(ctx: PhaseContext, key: SigningKey): Promise<{ signature: EvidenceSignature } | { unsigned: string }> {
  try {
    const { signature, sha256, bytes } = await signCase(ctx.caseFile.dir, key);
    await ctx.caseFile.recordSignature(sha256, bytes, { keyFingerprint: signature.keyFingerprint, custodyHead: signature.custodyHead });
    return { signature: { keyFingerprint: signature.keyFingerprint, file: SIGNATURE_FILE, signedAt: signature.signedAt } };
  } catch (err) {
    ctx.log.error({ err: errorMessage(err) }, 'sealed case not signed');
    return { unsigned: `signing failed: ${errorMessage(err)}` };
  }
}

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

/** Every collector and audit finding for the report (status keeps only the most severe few). */
async function collectedFindings(ctx: PhaseContext): Promise<Finding[]> {
  let all: Finding[] = ctx.status.findings ?? [];
  for (const base of collectorBases(ctx.caseFile)) all = mergeFindings(all, await collectorFindings(ctx, base), Infinity);
  return mergeFindings(all, await readFindings(ctx, 'audit/findings.json'), Infinity);
}
