// Reads the dated facts of a case file's artifacts for the timeline and the reports: the pod's and
// its containers' starts, events, process start times, file times in writable paths, audit records,
// indicators. Every read is bounded (bytes, line length, facts kept), every artifact may be absent,
// and a malformed one (the suspect chose the names inside it) only adds a problem: sealing goes on.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { resolveInside } from '../evidence/paths.js';
import { errorMessage } from '../errors.js';
import type { AuditRecord, AuditRecords, CaseFacts, ContainerRun, EventFact, FileFact, Indicator, PodFacts, ProcessFact } from './facts.js';
import { emptyFacts, MAX_FACTS_PER_SOURCE } from './facts.js';

/** Bytes read of one artifact (files.json of a walk the suspect filled can be large). */
const MAX_ARTIFACT_BYTES = 64 * 1024 * 1024;
/** A whole-JSON artifact (events, indicators, pod.yaml) is parsed only below this. */
const MAX_PARSED_BYTES = 16 * 1024 * 1024;
/** One JSON line longer than this is skipped (the collector caps command lines at 64 KiB each). */
const MAX_LINE_BYTES = 1024 * 1024;
const MAX_INDICATORS = 500;
const MAX_SEEN = 10;
const MAX_REQUEST_KINDS = 200;

/** What gather needs of a case file. */
export interface CaseFileReader {
  readonly dir: string;
  has(artifact: string): boolean;
  artifacts(): { artifact: string }[];
}

/** `liveBases`: where the live collector wrote (`live`, `live/retry-2`, ...). */
export async function gatherCaseFacts(caseFile: CaseFileReader, liveBases: readonly string[]): Promise<CaseFacts> {
  const facts = emptyFacts();
  const attempt = async (artifact: string, read: () => Promise<void>) => {
    if (!caseFile.has(artifact)) return;
    try {
      await read();
    } catch (err) {
      facts.problems.push(`${artifact} could not be read for the timeline: ${errorMessage(err)}`);
    }
  };
  const at = (artifact: string) => resolveInside(caseFile.dir, artifact);
  await attempt('k8s/pod.yaml', async () => {
    facts.pod = podFacts(parseYaml(await readBounded(at('k8s/pod.yaml'))));
  });
  await attempt('k8s/events.json', async () => {
    facts.events = eventFacts(JSON.parse(await readBounded(at('k8s/events.json'))));
  });
  const processes = new Recent<ProcessFact>();
  const files = new Recent<FileFact>();
  const indicators: Indicator[] = [];
  let indicatorsOmitted = 0;
  let indicatorsTruncated = false;
  for (const base of new Set(['live', ...liveBases])) {
    await attempt(`${base}/processes.json`, async () => {
      for await (const line of jsonLines(at(`${base}/processes.json`), facts.problems, `${base}/processes.json`)) processes.add(processFact(line, `${base}/processes.json`));
    });
    await attempt(`${base}/files.json`, async () => {
      for await (const line of jsonLines(at(`${base}/files.json`), facts.problems, `${base}/files.json`)) for (const f of fileFacts(line, `${base}/files.json`)) files.add(f);
    });
    await attempt(`${base}/indicators.json`, async () => {
      const read = indicatorList(JSON.parse(await readBounded(at(`${base}/indicators.json`))));
      for (const i of read.list) if (indicators.length < MAX_INDICATORS) indicators.push(i); else indicatorsOmitted++;
      indicatorsTruncated ||= read.truncated;
    });
  }
  facts.processes = processes.kept();
  facts.files = files.kept();
  facts.omitted = { file: files.omitted, process: processes.omitted };
  if (caseFile.has('live/indicators.json') || indicators.length) facts.indicators = { list: indicators, truncated: indicatorsTruncated, omitted: indicatorsOmitted };
  if (caseFile.artifacts().some((a) => a.artifact.startsWith('audit/'))) {
    facts.audit = {};
    await attempt('audit/pod-requests.jsonl', async () => {
      facts.audit!.pod = await auditRecords(at('audit/pod-requests.jsonl'), 'audit/pod-requests.jsonl', facts.problems);
    });
    await attempt('audit/token-requests.jsonl', async () => {
      facts.audit!.token = await auditRecords(at('audit/token-requests.jsonl'), 'audit/token-requests.jsonl', facts.problems);
    });
  }
  return facts;
}

/** The most recent MAX_FACTS_PER_SOURCE facts, in time order, in bounded memory; the rest counted. */
class Recent<T extends { time: string }> {
  private items: T[] = [];
  omitted = 0;
  add(item: T | undefined): void {
    if (!item) return;
    this.items.push(item);
    if (this.items.length >= 2 * MAX_FACTS_PER_SOURCE) this.trim();
  }
  kept(): T[] {
    this.trim();
    return [...this.items].reverse();
  }
  private trim(): void {
    this.items.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
    this.omitted += Math.max(0, this.items.length - MAX_FACTS_PER_SOURCE);
    this.items.length = Math.min(this.items.length, MAX_FACTS_PER_SOURCE);
  }
}

async function readBounded(file: string): Promise<string> {
  const { size } = await stat(file);
  if (size > MAX_PARSED_BYTES) throw new Error(`${size} bytes, more than the ${MAX_PARSED_BYTES} the report parses whole`);
  return readFile(file, 'utf8');
}

/**
 * The JSON objects of an artifact written one per line (the collectors' JSON arrays, JSON Lines),
 * skipping the array's brackets and its head; a line over MAX_LINE_BYTES, or past MAX_ARTIFACT_BYTES,
 * is not read, and the problems say so.
 */
async function* jsonLines(file: string, problems: string[], artifact: string): AsyncGenerator<unknown> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let skipping = false;
  let malformed = 0;
  let read = 0;
  const parse = (line: string): unknown => {
    const text = line.trim().replace(/^,|,$/g, '');
    // The array's brackets, and the head line of an object whose last key is the streamed array.
    if (['', '[', ']', ']}', '[]'].includes(text) || (text.startsWith('{') && text.endsWith('['))) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      malformed++;
      return undefined;
    }
  };
  for await (const chunk of createReadStream(file, { end: MAX_ARTIFACT_BYTES - 1 }) as AsyncIterable<Buffer>) {
    read += chunk.length;
    let from = 0;
    for (let nl = chunk.indexOf(10, from); nl !== -1; nl = chunk.indexOf(10, from)) {
      if (!skipping) {
        pending.push(chunk.subarray(from, nl));
        const value = parse(Buffer.concat(pending).toString('utf8'));
        if (value !== undefined) yield value;
      }
      pending = [];
      pendingBytes = 0;
      skipping = false;
      from = nl + 1;
    }
    if (!skipping && from < chunk.length) {
      pending.push(chunk.subarray(from));
      pendingBytes += chunk.length - from;
      if (pendingBytes > MAX_LINE_BYTES) {
        malformed++;
        skipping = true;
        pending = [];
      }
    }
  }
  if (!skipping && pending.length) {
    const value = parse(Buffer.concat(pending).toString('utf8'));
    if (value !== undefined) yield value;
  }
  if (malformed) problems.push(`${artifact}: ${malformed} line(s) unreadable or longer than ${MAX_LINE_BYTES} bytes, skipped`);
  if (read >= MAX_ARTIFACT_BYTES) problems.push(`${artifact}: only its first ${MAX_ARTIFACT_BYTES} bytes were read for the timeline`);
}

type Loose = Record<string, unknown>;
const obj = (v: unknown): Loose => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** A time the timeline can place; anything else is not a fact. */
const time = (v: unknown): string | undefined => (typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function podFacts(doc: unknown): PodFacts {
  const meta = obj(obj(doc).metadata);
  const status = obj(obj(doc).status);
  const runs: ContainerRun[] = [];
  const kinds = [['containerStatuses', 'container'], ['initContainerStatuses', 'init container'], ['ephemeralContainerStatuses', 'ephemeral container']] as const;
  for (const [field, kind] of kinds) {
    for (const raw of list(status[field])) {
      const s = obj(raw);
      const container = str(s.name) ?? '?';
      for (const [instance, state] of [['current', obj(s.state)], ['previous', obj(s.lastState)]] as const) {
        const st = obj(state.running ?? state.terminated);
        const terminated = state.terminated !== undefined;
        const startedAt = time(st.startedAt);
        const finishedAt = terminated ? time(st.finishedAt) : undefined;
        if (!startedAt && !finishedAt) continue;
        runs.push({
          container, kind, instance, startedAt, finishedAt,
          reason: terminated ? str(st.reason) : undefined,
          exitCode: terminated ? num(st.exitCode) : undefined,
          restartCount: instance === 'current' ? num(s.restartCount) : undefined,
        });
      }
    }
  }
  return { name: str(meta.name), createdAt: time(meta.creationTimestamp), startTime: time(status.startTime), deletedAt: time(meta.deletionTimestamp), runs };
}

export function eventFacts(doc: unknown): EventFact[] {
  return list(obj(doc).events).flatMap((raw): EventFact[] => {
    const e = obj(raw);
    const at = time(e.lastTimestamp) ?? time(e.eventTime) ?? time(e.firstTimestamp) ?? time(obj(e.metadata).creationTimestamp);
    if (!at) return [];
    const involved = obj(e.involvedObject);
    return [{ time: at, type: str(e.type), reason: str(e.reason), message: str(e.message), count: num(e.count), object: [str(involved.kind), str(involved.name)].filter(Boolean).join('/') || undefined }];
  }).slice(-MAX_FACTS_PER_SOURCE);
}

function processFact(raw: unknown, artifact: string): ProcessFact | undefined {
  const p = obj(raw);
  const pid = num(p.pid);
  const startTime = time(p.startTime);
  if (pid === undefined || !startTime) return undefined;
  const cmdline = list(p.cmdline).filter((a): a is string => typeof a === 'string');
  const command = cmdline.length ? cmdline.join(' ') : (str(p.name) ?? '?');
  return {
    pid, time: startTime, artifact, command: command.length > 200 ? `${command.slice(0, 197)}...` : command,
    role: str(p.role), exe: str(p.exe), exeDeleted: p.exeDeleted === true, inEntrypointTree: typeof p.inEntrypointTree === 'boolean' ? p.inEntrypointTree : undefined,
  };
}

function fileFacts(raw: unknown, artifact: string): FileFact[] {
  const f = obj(raw);
  const path = str(f.path);
  if (!path) return [];
  const mtime = time(f.mtime);
  const ctime = time(f.ctime);
  const out: FileFact[] = [];
  if (mtime) out.push({ path, stamp: 'mtime', time: mtime, type: str(f.type), artifact });
  // A ctime equal to the mtime says nothing more; a later one is a chmod, a rename or a reset mtime.
  if (ctime && ctime !== mtime) out.push({ path, stamp: 'ctime', time: ctime, type: str(f.type), artifact });
  return out;
}

async function auditRecords(file: string, artifact: string, problems: string[]): Promise<AuditRecords> {
  const kept = new Recent<AuditRecord>();
  const counts = new Map<string, { verb: string; resource: string; namespace: string; count: number }>();
  let total = 0;
  for await (const raw of jsonLines(file, problems, artifact)) {
    const r = auditRecord(raw);
    if (!r) continue;
    total++;
    kept.add(r);
    const resource = [r.resource, r.subresource].filter(Boolean).join('/') || '?';
    let key = `${r.verb ?? '?'} ${resource} ${r.namespace ?? ''}`;
    if (!counts.has(key) && counts.size >= MAX_REQUEST_KINDS) key = '(other)';
    const bucket = counts.get(key) ?? (key === '(other)' ? { verb: '(other requests)', resource: '', namespace: '', count: 0 } : { verb: r.verb ?? '?', resource, namespace: r.namespace ?? '', count: 0 });
    bucket.count++;
    counts.set(key, bucket);
  }
  return { artifact, records: kept.kept(), total, byRequest: [...counts.values()].sort((a, b) => b.count - a.count) };
}

function auditRecord(raw: unknown): AuditRecord | undefined {
  const r = obj(raw);
  const at = time(r.time);
  if (!at) return undefined;
  const user = obj(r.user);
  return {
    time: at, auditID: str(r.auditID), verb: str(r.verb), resource: str(r.resource), subresource: str(r.subresource), namespace: str(r.namespace), name: str(r.name),
    user: { username: str(user.username), groups: list(user.groups).filter((g): g is string => typeof g === 'string') },
    sourceIPs: list(r.sourceIPs).filter((ip): ip is string => typeof ip === 'string'), userAgent: str(r.userAgent), code: num(r.code), requestURI: str(r.requestURI),
  };
}

function indicatorList(doc: unknown): { list: Indicator[]; truncated: boolean } {
  const out: Indicator[] = [];
  for (const raw of list(obj(doc).indicators)) {
    const i = obj(raw);
    const kind = str(i.kind);
    const value = str(i.value);
    if (!kind || value === undefined) continue;
    const seen = list(i.seen).flatMap((raw) => {
      const s = obj(raw);
      const artifact = str(s.artifact);
      const offset = num(s.offset);
      return artifact === undefined ? [] : [{ artifact, ...(offset === undefined ? {} : { offset }) }];
    });
    out.push({ kind, value, seen: seen.slice(0, MAX_SEEN), ...(seen.length > MAX_SEEN ? { seenOmitted: seen.length - MAX_SEEN } : {}) });
  }
  return { list: out, truncated: obj(doc).truncated === true };
}
