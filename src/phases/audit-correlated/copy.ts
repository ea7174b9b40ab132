// Copying a case's records out of the rolling store (streamed: a token's flood can be hundreds of
// megabytes), then deriving findings from what was copied.
import { createReadStream } from 'node:fs';
import { inWindow, isPodRequest, podRequestFindings, prefilterTerms, tokenMatch, TokenActivity, type SuspectIdentity } from '../../audit/correlate.js';
import type { AuditRecord } from '../../audit/record.js';
import { emptyScanStats, type AuditStoreReader, type ScanStats } from '../../audit/store-reader.js';
import type { Finding } from '../../api/investigation.js';
import { bufferLines } from '../../evidence/lines.js';
import { resolveInside } from '../../evidence/paths.js';
import type { PhaseContext } from '../phase.js';

const COPIED_ACTION = 'audit-records-copied';
/** A retried webhook batch repeats records: duplicates are dropped by auditID within this many recent ones. */
const DEDUP_WINDOW = 10_000;

export interface CopyStats extends ScanStats {
  copied: number;
  duplicates: number;
  /** The ServiceAccount's requests with a token that names no pod (legacy Secret tokens): counted, not copied. */
  unattributed: number;
}

class RecentIds {
  private readonly ids = new Set<string>();
  private readonly order: string[] = [];
  seen(id: string): boolean {
    if (this.ids.has(id)) return true;
    this.ids.add(id);
    this.order.push(id);
    if (this.order.length > DEDUP_WINDOW) this.ids.delete(this.order.shift()!);
    return false;
  }
}

/** Writes `artifact` once from the store; the scan's statistics go to custody (a rerun reuses the artifact and reads them there). */
export async function copyRecords(ctx: PhaseContext, reader: AuditStoreReader, id: SuspectIdentity, kind: 'pod' | 'token', artifact: string): Promise<{ stats?: CopyStats }> {
  const stats: CopyStats = { ...emptyScanStats(), copied: 0, duplicates: 0, unattributed: 0 };
  const terms = prefilterTerms(id);
  async function* lines(): AsyncGenerator<string> {
    const recent = new RecentIds();
    const partitions = kind === 'pod' ? (['pods'] as const) : (['pods', 'requests'] as const);
    for await (const record of reader.scan(partitions, terms, stats, id.from)) {
      if (!inWindow(record, id)) continue;
      if (kind === 'pod' && !isPodRequest(record, id)) continue;
      if (kind === 'token') {
        const match = tokenMatch(record, id);
        if (match === 'unattributed') stats.unattributed++;
        if (match !== 'pod') continue;
      }
      if (recent.seen(record.auditID)) {
        stats.duplicates++;
        continue;
      }
      stats.copied++;
      yield `${JSON.stringify(record)}\n`;
    }
  }
  const written = await ctx.caseFile.captureOnce(artifact, () => lines(), { phase: 'AuditCorrelated' });
  if (written.reused) {
    const earlier = ctx.caseFile.custodyRecords().find((r) => r.action === COPIED_ACTION && r.detail?.artifact === artifact);
    return { stats: earlier?.detail?.stats as CopyStats | undefined };
  }
  await ctx.caseFile.record(COPIED_ACTION, { artifact, stats }, 'AuditCorrelated');
  return { stats };
}

async function* caseRecords(ctx: PhaseContext, artifact: string): AsyncGenerator<AuditRecord> {
  for await (const line of bufferLines(createReadStream(resolveInside(ctx.caseFile.dir, artifact)))) if (line?.length) yield JSON.parse(line.toString('utf8')) as AuditRecord;
}

export interface DerivedAudit {
  findings: Finding[];
  podRequests: number;
  token: TokenActivity;
  unattributed: number;
}

/** Findings from the two copied artifacts: what a reviewer re-derives from the case file alone. */
export async function deriveFindings(ctx: PhaseContext, id: SuspectIdentity, unattributed = 0): Promise<DerivedAudit> {
  const findings: Finding[] = [];
  let podRequests = 0;
  for await (const record of caseRecords(ctx, 'audit/pod-requests.jsonl')) {
    podRequests++;
    const finding = podRequestFindings(record, id, 'audit/pod-requests.jsonl');
    if (finding && findings.length < 200) findings.push(finding);
  }
  const token = new TokenActivity();
  for await (const record of caseRecords(ctx, 'audit/token-requests.jsonl')) token.add(record);
  findings.push(...token.findings('audit/token-requests.jsonl'));
  return { findings, podRequests, token, unattributed };
}
