// One timeline of the case, built from what the case file already holds: the alert times, the custody
// log (what casefile did and refused, what it found missing), findings at the time their artifact
// was recorded, and status conditions the custody log does not already tell. Pure; every string
// that comes from the case is returned as is: the renderers escape it.
import type { Condition, Finding, InvestigationSpec, InvestigationStatus } from '../api/investigation.js';

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
}

export type TimelineOrigin = 'alert' | 'custody' | 'finding' | 'condition';

export interface TimelineEntry {
  /** ISO 8601 (UTC) when parseable; otherwise the recorded text, sorted last. */
  time: string;
  origin: TimelineOrigin;
  /** The phase or actor it belongs to, if any. */
  subject?: string;
  what: string;
  /** Where to read more: an artifact path, `custody.jsonl #<seq>`, or `status.conditions[<type>]`. */
  ref: string;
}

/** Artifact writes are listed, with hashes, in the evidence table; only these say more than "written". */
const ARTIFACT_WRITES = new Set(['artifact', 'artifact-recovered']);

/**
 * Entries in time order; entries at the same instant (and all unparseable times, at the end) keep
 * the order they were gathered in: alerts, custody records by seq, findings, conditions.
 */
export function buildTimeline(source: TimelineSource): TimelineEntry[] {
  const entries: TimelineEntry[] = [...alertEntries(source), ...custodyEntries(source.custody ?? []), ...findingEntries(source), ...conditionEntries(source)];
  return entries
    .map((entry, index) => ({ entry, index, at: Date.parse(entry.time) }))
    .sort((a, b) => order(a.at) - order(b.at) || a.index - b.index)
    .map(({ entry, at }) => (Number.isNaN(at) ? entry : { ...entry, time: new Date(at).toISOString() }));
}

const order = (at: number): number => (Number.isNaN(at) ? Number.POSITIVE_INFINITY : at);

function alertEntries({ spec, alerts }: TimelineSource): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  const alert = spec.alert;
  if (alert?.time) {
    const rule = alert.rule ? `: ${alert.rule}` : '';
    out.push({ time: alert.time, origin: 'alert', subject: alert.source, what: `alert raised${alert.priority ? ` (${alert.priority})` : ''}${rule}`, ref: 'alert.json' });
  }
  if (alerts && alerts.count > 1) {
    if (alerts.first) out.push({ time: alerts.first, origin: 'alert', subject: 'intake', what: `first of ${alerts.count} alerts about this pod received`, ref: 'status.alerts' });
    if (alerts.last) out.push({ time: alerts.last, origin: 'alert', subject: 'intake', what: `last of ${alerts.count} alerts about this pod received`, ref: 'status.alerts' });
  }
  return out;
}

function custodyEntries(records: readonly TimelineCustodyRecord[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  for (const r of records) {
    const journaled = r.artifact?.startsWith('alerts/');
    if (ARTIFACT_WRITES.has(r.action) && !journaled) continue;
    const what = journaled ? `journaled alerts ${String(r.detail?.firstSeq ?? '?')}-${String(r.detail?.lastSeq ?? '?')} copied into the case file` : describeCustody(r);
    out.push({ time: r.time, origin: 'custody', subject: r.phase, what, ref: r.artifact ?? `custody.jsonl #${r.seq}` });
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
    origin: 'finding',
    subject: f.severity,
    what: `${f.kind}: ${f.summary}`,
    ref: f.artifact,
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
      origin: 'condition',
      subject: c.type,
      what: `${c.type} turned ${c.status} (${c.reason}): ${c.message}`,
      ref: `status.conditions[${c.type}]`,
    }));
}
