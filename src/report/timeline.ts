// One timeline of the case: the alert times, the custody log (what casefile did and refused, what it
// found missing), findings at the time their artifact was recorded, status conditions the custody log
// does not already tell, and the dated facts of the artifacts (src/report/facts.ts: pod and container
// starts, events, process starts, file times, audit records). Pure; every string that comes from the
// case is returned as is: the renderers escape it. timeline.jsonl is this list, one entry a line.
import type { Condition, Finding, InvestigationSpec, InvestigationStatus } from '../api/investigation.js';
import { factEntries, MAX_FACTS_PER_SOURCE, type CaseFacts } from './facts.js';

/** The fields of a custody.jsonl record the timeline reads. */
export interface TimelineCustodyRecord {
  seq: number;
  time: string;
  action: string;
  phase?: string;
  artifact?: string;
  detail?: Record<string, unknown>;
}

export interface TimelineSource {
  spec: InvestigationSpec;
  alerts?: InvestigationStatus['alerts'];
  custody?: readonly TimelineCustodyRecord[];
  findings: readonly Finding[];
  conditions: readonly Condition[];
  /** What the artifacts say (src/report/gather.ts). */
  facts?: CaseFacts;
}

export type TimelineSourceKind = 'pod' | 'container' | 'event' | 'process' | 'file' | 'alert' | 'audit' | 'custody' | 'finding' | 'condition';

export interface TimelineEntry {
  /** ISO 8601 (UTC) when parseable; otherwise the recorded text, sorted last. */
  time: string;
  source: TimelineSourceKind;
  /** The phase, container, process, file or user it is about, if any. */
  subject?: string;
  what: string;
  /** Where to read more: an artifact path, `custody.jsonl #<seq>`, `status.alerts` or `status.conditions[<type>]`. */
  artifact: string;
  /** A fact that points at the intrusion itself (an exec into the pod, a process from a deleted file). */
  suspicious?: boolean;
  /** Says how many entries of its source are not listed: never capped itself. */
  omission?: boolean;
}

/** Sources read from artifacts the suspect can fill: each is capped at MAX_FACTS_PER_SOURCE entries. */
const CAPPED: ReadonlySet<TimelineSourceKind> = new Set(['pod', 'container', 'event', 'process', 'file', 'audit']);

/**
 * Entries in time order; entries at the same instant (and all unparseable times, at the end) keep
 * the order they were gathered in: alerts, custody records by seq, findings, conditions, then the
 * artifacts' facts. A capped source past its cap keeps its most recent entries and says how many
 * earlier ones are not listed.
 */
export function buildTimeline(source: TimelineSource): TimelineEntry[] {
  const gathered = [...alertEntries(source), ...custodyEntries(source.custody ?? []), ...findingEntries(source), ...conditionEntries(source), ...(source.facts ? factEntries(source.facts) : [])];
  return sortByTime(capped(gathered));
}


function sortByTime(entries: TimelineEntry[]): TimelineEntry[] {
  return entries
    .map((entry, index) => ({ entry, index, at: Date.parse(entry.time) }))
    .sort((a, b) => order(a.at) - order(b.at) || a.index - b.index)
    .map(({ entry, at }) => (Number.isNaN(at) ? entry : { ...entry, time: new Date(at).toISOString() }));
}

const order = (at: number): number => (Number.isNaN(at) ? Number.POSITIVE_INFINITY : at);

/** An unparseable time counts as the oldest. */
const recency = (e: TimelineEntry): number => {
  const at = Date.parse(e.time);
  return Number.isNaN(at) ? Number.NEGATIVE_INFINITY : at;
};

function capped(entries: TimelineEntry[]): TimelineEntry[] {
  const bySource = new Map<TimelineSourceKind, TimelineEntry[]>();
  for (const e of entries) {
    if (!CAPPED.has(e.source) || e.omission) continue;
    const list = bySource.get(e.source) ?? [];
    list.push(e);
    bySource.set(e.source, list);
  }
  const dropped = new Set<TimelineEntry>();
  const notices: TimelineEntry[] = [];
  for (const [kind, list] of bySource) {
    if (list.length <= MAX_FACTS_PER_SOURCE) continue;
    const recentFirst = [...list].sort((a, b) => recency(b) - recency(a));
    const omitted = recentFirst.slice(MAX_FACTS_PER_SOURCE);
    for (const e of omitted) dropped.add(e);
    const newestOmitted = omitted[0]!;
    notices.push({ time: newestOmitted.time, source: kind, what: `${omitted.length} earlier ${kind} entries not listed here (the timeline keeps the ${MAX_FACTS_PER_SOURCE} most recent)`, artifact: newestOmitted.artifact, omission: true });
  }
  return [...entries.filter((e) => !dropped.has(e)), ...notices];
}

/** timeline.jsonl: one entry a line, in order, with exactly the documented fields. */
export function timelineJsonl(entries: readonly TimelineEntry[]): string {
  return entries.map(({ time, source, what, artifact, subject }) => `${JSON.stringify({ time, source, what, artifact, ...(subject === undefined ? {} : { subject }) })}\n`).join('');
}

/** Artifact writes are listed, with hashes, in the evidence table; only these say more than "written". */
const ARTIFACT_WRITES = new Set(['artifact', 'artifact-recovered']);

function alertEntries({ spec, alerts }: TimelineSource): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  const alert = spec.alert;
  if (alert?.time) {
    const rule = alert.rule ? `: ${alert.rule}` : '';
    out.push({ time: alert.time, source: 'alert', subject: alert.source, what: `alert raised${alert.priority ? ` (${alert.priority})` : ''}${rule}`, artifact: 'alert.json' });
  }
  if (alerts && alerts.count > 1) {
    if (alerts.first) out.push({ time: alerts.first, source: 'alert', subject: 'intake', what: `first of ${alerts.count} alerts about this pod received`, artifact: 'status.alerts' });
    if (alerts.last) out.push({ time: alerts.last, source: 'alert', subject: 'intake', what: `last of ${alerts.count} alerts about this pod received`, artifact: 'status.alerts' });
  }
  return out;
}

function custodyEntries(records: readonly TimelineCustodyRecord[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  for (const r of records) {
    const journaled = r.artifact?.startsWith('alerts/');
    if (ARTIFACT_WRITES.has(r.action) && !journaled) continue;
    const what = journaled ? `journaled alerts ${String(r.detail?.firstSeq ?? '?')}-${String(r.detail?.lastSeq ?? '?')} copied into the case file` : describeCustody(r);
    out.push({ time: r.time, source: 'custody', subject: r.phase, what, artifact: r.artifact ?? `custody.jsonl #${r.seq}` });
  }
  return out;
}

/** A sentence for a custody record: the detail fields that say what happened, then the rest compactly. */
function describeCustody(r: TimelineCustodyRecord): string {
  const d = r.detail ?? {};
  const text = (key: string): string | undefined => (typeof d[key] === 'string' ? (d[key] as string) : undefined);
  switch (r.action) {
    case 'case-opened':
      return `case opened for ${text('investigation') ?? 'the Investigation'}`;
    case 'phase-finished':
      return `${String(d.condition ?? r.phase ?? 'phase')} ${String(d.status ?? '')} (${String(d.reason ?? '')}): ${String(d.message ?? '')}`;
    case 'negative-finding':
      return `negative finding: ${text('finding') ?? compact(d)}`;
    case 'limitation':
      return `limitation: ${text('finding') ?? compact(d)}`;
    case 'refused':
      return `refused (${text('reason') ?? 'no reason recorded'})${detailRest(d, ['reason'])}`;
    case 'sealed':
      return 'case file sealed: MANIFEST.sha256 written';
    default:
      return `${r.action.replace(/-/g, ' ')}${detailRest(d, [])}`;
  }
}

function detailRest(d: Record<string, unknown>, skip: string[]): string {
  const rest = Object.fromEntries(Object.entries(d).filter(([k]) => !skip.includes(k)));
  return Object.keys(rest).length === 0 ? '' : `: ${compact(rest)}`;
}

/** `key=value` pairs; nested values as JSON. */
function compact(d: Record<string, unknown>): string {
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}

/** Findings carry no time of their own: they are placed when the artifact holding them was recorded. */
function findingEntries({ findings, custody = [] }: TimelineSource): TimelineEntry[] {
  const recorded = new Map<string, string>();
  for (const r of custody) if (r.artifact && ARTIFACT_WRITES.has(r.action) && !recorded.has(r.artifact)) recorded.set(r.artifact, r.time);
  return findings.map((f) => ({
    time: recorded.get(f.artifact) ?? 'time not recorded',
    source: 'finding',
    subject: f.severity,
    what: `${f.kind}: ${f.summary}`,
    artifact: f.artifact,
  }));
}

/**
 * Conditions whose transition a phase-finished record already tells are left out (the same event
 * twice), and so are phases the spec turned off (reason Disabled): nothing happened.
 */
function conditionEntries({ conditions, custody = [] }: TimelineSource): TimelineEntry[] {
  const told = new Set(custody.filter((r) => r.action === 'phase-finished').map((r) => `${String(r.detail?.condition)}=${String(r.detail?.status)}`));
  return conditions
    .filter((c) => c.reason !== 'Disabled' && !told.has(`${c.type}=${c.status}`))
    .map((c) => ({
      time: c.lastTransitionTime,
      source: 'condition',
      subject: c.type,
      what: `${c.type} turned ${c.status} (${c.reason}): ${c.message}`,
      artifact: `status.conditions[${c.type}]`,
    }));
}
