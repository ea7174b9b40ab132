// The dated facts the case file's artifacts hold, as src/report/gather.ts reads them (bounded), and
// how each becomes a timeline entry. Pure: gather does the reading, this decides what a fact says.
// Strings are the suspect's (process names, file names, event messages): kept as they are, the
// renderers escape them.
import type { TimelineEntry } from './timeline.js';

/** One container instance's run, from a pod's containerStatuses, initContainerStatuses or ephemeralContainerStatuses. */
export interface ContainerRun {
  container: string;
  kind: 'container' | 'init container' | 'ephemeral container';
  /** `current` is state, `previous` is lastState. */
  instance: 'current' | 'previous';
  startedAt?: string;
  finishedAt?: string;
  reason?: string;
  exitCode?: number;
  restartCount?: number;
}

export interface PodFacts {
  name?: string;
  createdAt?: string;
  startTime?: string;
  deletedAt?: string;
  runs: ContainerRun[];
}

export interface EventFact {
  time: string;
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  object?: string;
}

export interface ProcessFact {
  pid: number;
  /** The process's start time. */
  time: string;
  role?: string;
  command: string;
  exe?: string;
  exeDeleted?: boolean;
  inEntrypointTree?: boolean;
  artifact: string;
}

export interface FileFact {
  path: string;
  /** Which timestamp this fact is: a change of content (mtime) or of the inode (ctime). */
  stamp: 'mtime' | 'ctime';
  time: string;
  type?: string;
  artifact: string;
}

/** The fields of an audit/*.jsonl record the report reads. */
export interface AuditRecord {
  time: string;
  auditID?: string;
  user?: { username?: string; groups?: string[] };
  verb?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  sourceIPs?: string[];
  userAgent?: string;
  code?: number;
  requestURI?: string;
}

/** Records of one audit artifact: the most recent ones kept, the rest counted. */
export interface AuditRecords {
  artifact: string;
  records: AuditRecord[];
  total: number;
  /** verb/resource/namespace -> count, over every record read (token-requests' summary). */
  byRequest: { verb: string; resource: string; namespace: string; count: number }[];
}

export interface Indicator {
  kind: string;
  value: string;
  seen: { artifact: string; offset?: number }[];
  /** Places it was seen beyond those listed. */
  seenOmitted?: number;
}

/** Everything gather read; what it could not read, or read only in part, is in `problems`. */
export interface CaseFacts {
  pod?: PodFacts;
  events: EventFact[];
  processes: ProcessFact[];
  files: FileFact[];
  /** Facts read beyond what `processes` and `files` keep (the oldest are dropped first). */
  omitted: { process: number; file: number };
  /** Undefined when the case has no audit/ directory: audit correlation is not configured. */
  audit?: { pod?: AuditRecords; token?: AuditRecords };
  indicators?: { list: Indicator[]; truncated: boolean; omitted: number };
  problems: string[];
}

/** Most facts of one source the timeline lists; the rest are counted, never silently dropped. */
export const MAX_FACTS_PER_SOURCE = 200;

export const emptyFacts = (): CaseFacts => ({ events: [], processes: [], files: [], omitted: { process: 0, file: 0 }, problems: [] });

/** Requests about a pod that act on what runs in it: the audit trail's first question. */
const POD_ACTIONS = new Set(['exec', 'attach', 'portforward', 'ephemeralcontainers', 'proxy']);

/** An audit record that changes or enters the pod (exec, attach, ...; patch, update, delete). */
export function isPodAction(r: AuditRecord): boolean {
  return POD_ACTIONS.has(r.subresource ?? '') || ['patch', 'update', 'delete', 'create'].includes(r.verb ?? '');
}

/**
 * Who casefile is in the audit log: whoever exec'd into a `casefile-debug-*` container. Its own
 * requests (the debug container, the collector's exec) are not the intruder's.
 */
export function casefileUsers(records: readonly AuditRecord[]): Set<string> {
  return new Set(records.filter((r) => r.subresource === 'exec' && /[?&]container=casefile-debug-/.test(r.requestURI ?? '') && r.user?.username).map((r) => r.user!.username!));
}

export function describeAudit(r: AuditRecord): string {
  const target = [r.resource, r.subresource].filter(Boolean).join('/');
  const object = [r.namespace, r.name].filter(Boolean).join('/');
  const code = r.code === undefined ? '' : ` -> ${r.code}`;
  const from = r.sourceIPs?.length ? ` from ${r.sourceIPs.join(', ')}` : '';
  return `${r.user?.username ?? 'unknown user'} ${r.verb ?? '?'} ${target}${object ? ` ${object}` : ''}${code}${from}`;
}

/** Timeline entries of everything gathered; `suspicious` marks what the SVG's first-suspicious mark may point at. */
export function factEntries(facts: CaseFacts): TimelineEntry[] {
  return [
    ...podEntries(facts.pod),
    ...facts.events.map(eventEntry),
    ...facts.processes.map(processEntry),
    ...omittedNotice('process', 'process start', facts.omitted.process, facts.processes, 'live/processes.json'),
    ...facts.files.map(fileEntry),
    ...omittedNotice('file', 'file change', facts.omitted.file, facts.files, 'live/files.json'),
    ...auditEntries(facts.audit),
  ];
}

function podEntries(pod: PodFacts | undefined): TimelineEntry[] {
  if (!pod) return [];
  const artifact = 'k8s/pod.yaml';
  const out: TimelineEntry[] = [];
  if (pod.createdAt) out.push({ time: pod.createdAt, source: 'pod', subject: pod.name, what: 'pod created', artifact });
  if (pod.startTime) out.push({ time: pod.startTime, source: 'pod', subject: pod.name, what: 'pod started (accepted by the kubelet)', artifact });
  if (pod.deletedAt) out.push({ time: pod.deletedAt, source: 'pod', subject: pod.name, what: 'pod marked for deletion', artifact });
  for (const run of pod.runs) {
    const which = run.instance === 'previous' ? `${run.kind} ${run.container} (previous instance)` : `${run.kind} ${run.container}`;
    const restarts = run.restartCount ? `; restarted ${run.restartCount} time(s)` : '';
    if (run.startedAt) out.push({ time: run.startedAt, source: 'container', subject: run.container, what: `${which} started${restarts}`, artifact });
    if (run.finishedAt) {
      const why = [run.reason, run.exitCode === undefined ? undefined : `exit code ${run.exitCode}`].filter(Boolean).join(', ');
      out.push({ time: run.finishedAt, source: 'container', subject: run.container, what: `${which} terminated${why ? ` (${why})` : ''}`, artifact });
    }
  }
  return out;
}

function eventEntry(e: EventFact): TimelineEntry {
  const count = e.count && e.count > 1 ? ` (x${e.count})` : '';
  return { time: e.time, source: 'event', subject: e.object, what: `${e.type ?? 'Event'} ${e.reason ?? ''}: ${e.message ?? ''}${count}`, artifact: 'k8s/events.json' };
}

function processEntry(p: ProcessFact): TimelineEntry {
  const marks = [p.role && p.role !== 'target' ? p.role : undefined, p.exeDeleted ? 'executable deleted' : undefined, p.inEntrypointTree === false && p.role === 'target' ? "outside the entrypoint's tree" : undefined].filter(Boolean);
  const suspicious = p.role === 'target' && (p.exeDeleted === true || p.inEntrypointTree === false);
  return {
    time: p.time,
    source: 'process',
    subject: `pid ${p.pid}`,
    what: `process started: ${p.command}${p.exe ? ` (exe ${p.exe})` : ''}${marks.length ? ` [${marks.join('; ')}]` : ''}`,
    artifact: p.artifact,
    ...(suspicious ? { suspicious } : {}),
  };
}

function fileEntry(f: FileFact): TimelineEntry {
  return { time: f.time, source: 'file', subject: f.path, what: `${f.type ?? 'file'} ${f.path} ${f.stamp === 'mtime' ? 'content last modified' : 'inode last changed'} (${f.stamp})`, artifact: f.artifact };
}

/** "N more ... not listed", placed at the oldest listed fact: everything omitted is older than that. */
function omittedNotice(source: 'process' | 'file', what: string, count: number, listed: readonly (ProcessFact | FileFact)[], fallback: string): TimelineEntry[] {
  if (count === 0) return [];
  const oldest = listed[0];
  return [{ time: oldest?.time ?? 'time not recorded', source, what: `${count} more ${what}(s), older than these, not listed here`, artifact: oldest?.artifact ?? fallback, omission: true }];
}

function auditEntries(audit: CaseFacts['audit']): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  const casefile = casefileUsers(audit?.pod?.records ?? []);
  for (const set of [audit?.pod, audit?.token]) {
    if (!set) continue;
    for (const r of set.records) {
      const entry: TimelineEntry = { time: r.time, source: 'audit', subject: r.user?.username, what: describeAudit(r), artifact: set.artifact };
      const intrusion = set === audit?.pod && POD_ACTIONS.has(r.subresource ?? '') && !casefile.has(r.user?.username ?? '');
      out.push(intrusion ? { ...entry, suspicious: true } : entry);
    }
    const omitted = set.total - set.records.length;
    if (omitted > 0) {
      const oldest = set.records[0]?.time ?? 'time not recorded';
      out.push({ time: oldest, source: 'audit', what: `${omitted} earlier audit record(s) of ${set.artifact} not listed here`, artifact: set.artifact, omission: true });
    }
  }
  return out;
}
