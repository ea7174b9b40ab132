// What the sections both reports share say, as plain text rows and sentences: report.md and
// report.html format the same data, so they cannot tell different stories. Pure; case strings are
// returned as they are (each renderer escapes for its own format).
import type { Finding } from '../api/investigation.js';
import { casefileUsers, describeAudit, isPodAction, type AuditRecord } from './facts.js';
import type { ReportInput } from './render.js';
import type { TimelineEntry } from './timeline.js';

export const SEVERITIES: readonly Finding['severity'][] = ['critical', 'high', 'medium', 'low', 'info'];

/** Findings grouped by severity, most severe first; severities with none are left out. */
export function findingsBySeverity(findings: readonly Finding[]): { severity: Finding['severity']; findings: Finding[] }[] {
  return SEVERITIES.map((severity) => ({ severity, findings: findings.filter((f) => f.severity === severity) })).filter((g) => g.findings.length > 0);
}

export interface KeyMoment {
  label: 'alert' | 'first suspicious activity' | 'containment applied' | 'sealed';
  time: string;
  what: string;
}

/** Custody actions that change the scene to contain it. */
const CONTAINMENT_ACTIONS = new Set(['pod-labelled', 'networkpolicy-created', 'rbac-narrowed', 'node-cordoned']);

/** The moments a responder looks for first; each only when the case records it. */
export function keyMoments(input: ReportInput, timeline: readonly TimelineEntry[]): KeyMoment[] {
  const out: KeyMoment[] = [];
  const alert = timeline.find((e) => e.source === 'alert');
  if (alert) out.push({ label: 'alert', time: alert.time, what: alert.what });
  const suspicious = timeline.find((e) => e.suspicious && !Number.isNaN(Date.parse(e.time)));
  if (suspicious) out.push({ label: 'first suspicious activity', time: suspicious.time, what: suspicious.what });
  const contained = (input.custody ?? []).find((r) => CONTAINMENT_ACTIONS.has(r.action));
  if (contained) out.push({ label: 'containment applied', time: new Date(Date.parse(contained.time)).toISOString(), what: contained.action.replace(/-/g, ' ') });
  out.push({ label: 'sealed', time: input.generatedAt, what: 'report written and case sealed' });
  return out.filter((m) => !Number.isNaN(Date.parse(m.time)));
}

/** "What happened": a few sentences, each from a recorded fact. */
export function whatHappened(input: ReportInput, timeline: readonly TimelineEntry[]): string[] {
  const { spec, target } = input;
  const pod = `${input.namespace}/${spec.target.pod}`;
  const where = [target?.container ? `container ${target.container}` : undefined, target?.node ? `node ${target.node}` : undefined].filter(Boolean).join(' on ');
  const out: string[] = [];
  const alert = spec.alert;
  out.push(alert
    ? `${alert.source} raised ${alert.priority ? `a ${alert.priority} alert` : 'an alert'}${alert.rule ? ` "${alert.rule}"` : ''}${alert.time ? ` at ${alert.time}` : ''} about pod ${pod}${where ? ` (${where})` : ''}.`
    : `The case about pod ${pod}${where ? ` (${where})` : ''} was opened by hand or by GitOps, without an alert.`);
  const moments = keyMoments(input, timeline);
  const first = moments.find((m) => m.label === 'first suspicious activity');
  if (first) out.push(`The first suspicious activity on record: ${first.what} (${first.time}).`);
  const opened = (input.custody ?? []).find((r) => r.action === 'case-opened');
  if (opened) out.push(`casefile opened the case at ${opened.time}.`);
  const contained = moments.find((m) => m.label === 'containment applied');
  out.push(contained ? `Containment was applied at ${contained.time} (${contained.what}).` : 'Nothing was contained.');
  const groups = findingsBySeverity(input.findings);
  out.push(groups.length ? `Findings: ${groups.map((g) => `${g.findings.length} ${g.severity}`).join(', ')}; the most severe: ${input.findings.find((f) => f.severity === groups[0]!.severity)!.summary}` : 'No findings.');
  const failed = input.conditions.filter((c) => c.status === 'False');
  out.push(`${input.artifacts.length} artifact(s) recorded${failed.length ? `; ${failed.length} step(s) failed: ${failed.map((c) => `${c.type} (${c.reason})`).join(', ')}` : ''}; sealed after this report was written (${input.generatedAt}).`);
  return out;
}

export interface AuditTrail {
  /** Why there is nothing to show, when there is not. */
  absent?: string;
  /** Requests that enter or change the pod: time, user, request, source, user agent. */
  podActions: { time: string; user: string; request: string; userAgent: string }[];
  podTotal: number;
  /** Requests made with the pod's token, counted by verb/resource/namespace. */
  tokenSummary: { verb: string; resource: string; namespace: string; count: number }[];
  tokenTotal: number;
  artifacts: string[];
}

export function auditTrail(input: ReportInput): AuditTrail {
  const audit = input.facts?.audit;
  const empty: AuditTrail = { podActions: [], podTotal: 0, tokenSummary: [], tokenTotal: 0, artifacts: [] };
  if (!audit) return { ...empty, absent: 'Audit correlation not configured / no records: the case has no audit/ directory, so who acted on the pod through the API server is not part of this record.' };
  const casefile = casefileUsers(audit.pod?.records ?? []);
  const user = (r: AuditRecord) => `${r.user?.username ?? 'unknown user'}${casefile.has(r.user?.username ?? '') ? " (casefile's own)" : ''}`;
  const row = (r: AuditRecord) => ({ time: r.time, user: user(r), request: describeAudit(r), userAgent: r.userAgent ?? '' });
  const trail: AuditTrail = {
    podActions: (audit.pod?.records ?? []).filter(isPodAction).map(row),
    podTotal: audit.pod?.total ?? 0,
    tokenSummary: audit.token?.byRequest ?? [],
    tokenTotal: audit.token?.total ?? 0,
    artifacts: [audit.pod?.artifact, audit.token?.artifact].filter((a): a is string => !!a),
  };
  if (trail.podTotal === 0 && trail.tokenTotal === 0) trail.absent = 'Audit correlation is configured, but no records about the pod or made with its token were found.';
  return trail;
}

/** Artifacts listed one by one, at most; the rest are summed up by directory (MANIFEST.sha256 lists them all). */
export const MAX_EVIDENCE_ROWS = 1000;

export function evidenceListing(artifacts: ReportInput['artifacts']): { listed: ReportInput['artifacts']; rest: { directory: string; files: number; bytes: number }[] } {
  const listed = artifacts.slice(0, MAX_EVIDENCE_ROWS);
  const rest = new Map<string, { directory: string; files: number; bytes: number }>();
  for (const a of artifacts.slice(MAX_EVIDENCE_ROWS)) {
    const directory = a.artifact.includes('/') ? `${a.artifact.split('/').slice(0, 2).join('/')}` : '.';
    const d = rest.get(directory) ?? { directory, files: 0, bytes: 0 };
    d.files++;
    d.bytes += a.bytes;
    rest.set(directory, d);
  }
  return { listed, rest: [...rest.values()] };
}

/** Problems reading artifacts for the report, as notes: a report never silently leaves something out. */
export function readingNotes(input: ReportInput): string[] {
  const out = [...(input.facts?.problems ?? [])];
  const indicators = input.facts?.indicators;
  if (indicators?.truncated) out.push('live/indicators.json says the collector stopped listing indicators at its cap: more were present.');
  if (indicators?.omitted) out.push(`${indicators.omitted} indicator(s) beyond the report's cap are in the indicators artifacts only.`);
  return out;
}

/** Rows of the timeline table at most; timeline.jsonl holds every entry. */
export const MAX_TIMELINE_ROWS = 2000;

export function timelineRows(entries: readonly TimelineEntry[]): { listed: readonly TimelineEntry[]; omitted: number } {
  return { listed: entries.slice(0, MAX_TIMELINE_ROWS), omitted: Math.max(0, entries.length - MAX_TIMELINE_ROWS) };
}
