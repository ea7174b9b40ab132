// What `kubectl casefile` prints, as pure functions of Investigations: the request `open` writes, the
// list and the summary of `get`/`status`, and the phase-by-phase progress lines of `--wait`.
import { getCondition } from '../../api/conditions.js';
import type { Condition, Investigation } from '../../api/investigation.js';
import { API_VERSION } from '../../api/investigation.js';
import { CASE_API_GROUP, CASE_API_RESOURCE, CASE_API_VERSION, type CaseSubresource } from '../../caseapi/routes.js';

export interface OpenOptions {
  contain: boolean;
  live: boolean;
  node: boolean;
  name?: string;
}

/** The Investigation `open` creates: a plain capture, plus what the flags ask for. */
export function investigationRequest(pod: string, opts: OpenOptions): Record<string, unknown> {
  const spec: Record<string, unknown> = { target: { pod }, alert: { source: 'manual' } };
  // ContainFirst: a responder who asks for containment from the command line wants it before capture.
  if (opts.contain) spec.containment = { order: 'ContainFirst', network: { isolate: true } };
  const evidence: Record<string, unknown> = {};
  if (opts.live) evidence.live = { enabled: true };
  if (opts.node) evidence.node = { enabled: true };
  if (Object.keys(evidence).length > 0) spec.evidence = evidence;
  // generateName: the API server adds 5 characters; names stay within 63 for labels that carry them.
  const metadata = opts.name ? { name: opts.name } : { generateName: `${pod.slice(0, 52).replace(/[.-]+$/, '')}-` };
  return { apiVersion: API_VERSION, kind: 'Investigation', metadata, spec };
}

const KSTATUS = new Set(['Ready', 'Reconciling', 'Stalled']);

/** The phase conditions in the order the operator wrote them (kstatus's pair and Ready left out). */
export function phaseConditions(inv: Investigation): Condition[] {
  return (inv.status?.conditions ?? []).filter((c) => !KSTATUS.has(c.type));
}

/** Done (Ready=True), failed (Ready=False), or still going. */
export function outcome(inv: Investigation): 'done' | 'failed' | 'running' {
  const ready = getCondition(inv.status?.conditions, 'Ready');
  if (ready?.status === 'True' && inv.status?.observedGeneration === inv.metadata.generation) return 'done';
  if (ready?.status === 'False') return 'failed';
  return 'running';
}

function age(from: string | undefined, now: Date): string {
  if (!from) return '-';
  const s = Math.max(0, Math.round((now.getTime() - new Date(from).getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `kubectl casefile get`: one line per case, columns padded. */
export function listTable(items: Investigation[], now = new Date(), withNamespace = false): string {
  const rows = items.map((inv) => {
    const ready = getCondition(inv.status?.conditions, 'Ready');
    const pod = (inv.spec as { target?: { pod?: string } } | undefined)?.target?.pod ?? '-';
    return [
      ...(withNamespace ? [inv.metadata.namespace] : []),
      inv.metadata.name,
      inv.status?.phase ?? 'Pending',
      pod,
      ready ? `${ready.status}` : '-',
      ready?.reason ?? '-',
      age(inv.metadata.creationTimestamp, now),
    ];
  });
  const header = [...(withNamespace ? ['NAMESPACE'] : []), 'NAME', 'PHASE', 'POD', 'READY', 'REASON', 'AGE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const MARK: Record<Condition['status'], string> = { True: 'done', False: 'FAILED', Unknown: 'running' };

/** `kubectl casefile status <case>`: what a responder needs first, then every phase. */
export function summary(inv: Investigation): string {
  const s = inv.status ?? {};
  const pod = (inv.spec as { target?: { pod?: string } } | undefined)?.target?.pod ?? '-';
  const ready = getCondition(inv.status?.conditions, 'Ready');
  const lines = [
    `Investigation ${inv.metadata.namespace}/${inv.metadata.name}: ${s.phase ?? 'Pending'}`,
    `  pod        ${pod}${s.target?.node ? ` on ${s.target.node}` : ''}${s.target?.podUID ? ` (uid ${s.target.podUID})` : ''}`,
    `  ready      ${ready ? `${ready.status} (${ready.reason}): ${ready.message}` : 'not yet'}`,
  ];
  if (s.containment?.networkPolicy) lines.push(`  isolated   NetworkPolicy ${s.containment.networkPolicy}, label ${s.containment.label ?? '-'}`);
  if (s.containment?.released?.at) lines.push(`  released   ${s.containment.released.at}`);
  if (s.evidence?.path) {
    lines.push(`  case file  ${s.evidence.path}: ${s.evidence.artifacts ?? 0} artifacts, ${s.evidence.bytes ?? 0} bytes${s.evidence.manifestSHA256 ? `, MANIFEST sha256 ${s.evidence.manifestSHA256}` : ''}`);
    const signature = s.evidence.signature;
    if (s.evidence.manifestSHA256) lines.push(`  signed     ${signature ? `by ${signature.keyFingerprint} at ${signature.signedAt}` : 'no (see EvidenceSealed)'}`);
  }
  if (s.alerts?.count) lines.push(`  alerts     ${s.alerts.count}`);
  const findings = s.findings ?? [];
  if (findings.length > 0) {
    lines.push('  findings');
    for (const f of findings) lines.push(`    [${f.severity}] ${f.kind}: ${f.summary}`);
  }
  lines.push('  phases');
  for (const c of phaseConditions(inv)) lines.push(`    ${c.type.padEnd(22)} ${MARK[c.status].padEnd(7)} ${c.reason}: ${c.message}`);
  return lines.join('\n');
}

/**
 * The progress lines `--wait` prints between two reads of the case: a phase that started, and a
 * phase that ended with its outcome. Key: type and status, so a phase is announced once per state.
 */
export function progress(before: Investigation | undefined, after: Investigation): string[] {
  const seen = new Map((before ? phaseConditions(before) : []).map((c) => [c.type, c.status]));
  const out: string[] = [];
  for (const c of phaseConditions(after)) {
    if (seen.get(c.type) === c.status) continue;
    if (c.status === 'Unknown') out.push(`  ${c.type}: started${c.reason !== 'InProgress' ? ` (${c.reason}: ${c.message})` : ''}`);
    else out.push(`  ${c.type}: ${c.status === 'True' ? (c.reason === 'Disabled' ? 'skipped (turned off)' : 'done') : 'FAILED'} (${c.reason}) ${c.message}`);
  }
  return out;
}

/** The case-file API path of a case (served through the API server: `kubectl get --raw`). */
export function caseFilePath(namespace: string, name: string, subresource: CaseSubresource, uid?: string, format?: 'html'): string {
  const query = new URLSearchParams({ ...(uid ? { uid } : {}), ...(format ? { format } : {}) }).toString();
  const base = `/apis/${CASE_API_GROUP}/${CASE_API_VERSION}/namespaces/${encodeURIComponent(namespace)}/${CASE_API_RESOURCE}/${encodeURIComponent(name)}/${subresource}`;
  return query ? `${base}?${query}` : base;
}
