// The alert journal on disk, and how it is read: what a line holds, which files are live, and the
// readers (the whole journal in order, one entry by position). Written only by ./journal.ts; read by
// it on open and compaction, and by ./journal-index.ts for each case's import.
//
// Files: segments `<first seq, 16 digits>-<stamp>.jsonl` and checkpoints `<through seq>-checkpoint.jsonl`.
// A reader takes the newest checkpoint and only the segments begun after it.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../evidence/io.js';
import { bufferLines, needles, SCAN_CHUNK } from '../evidence/lines.js';
import type { Logger } from '../log.js';
import type { ParsedAlert } from './alert-schema.js';

/**
 * `_intake` cannot be a namespace's case directory: namespaces are DNS labels, which have no '_'.
 * (`intake` could: a namespace of that name would share the directory.)
 */
const JOURNAL_SUBDIR = '_intake';
const SEGMENT = /^(\d{16})-[0-9TZ]+\.jsonl$/;
const CHECKPOINT = /^(\d{16})-checkpoint\.jsonl$/;
const seqPart = (seq: number) => String(seq).padStart(16, '0');
export const segmentName = (firstSeq: number, stamp: string): string => `${seqPart(firstSeq)}-${stamp}.jsonl`;
export const checkpointName = (through: number): string => `${seqPart(through)}-checkpoint.jsonl`;

export function journalDir(evidenceDir: string): string {
  return path.join(evidenceDir, JOURNAL_SUBDIR);
}

export interface InvestigationRef {
  namespace: string;
  name: string;
}

export interface AlertEntry {
  type: 'alert';
  seq: number;
  receivedAt: string;
  source: ParsedAlert['sender'];
  policy: { namespace: string; name: string };
  investigation: InvestigationRef;
  pod: { name: string; uid: string; container?: string };
  alert: { rule: string; priority: string; time: string };
  /** The policy's investigation template as it was when the alert matched. */
  template: Record<string, unknown>;
  /**
   * The request body, verbatim. An alert matching several policies is stored once: the first entry
   * of the append carries `raw`, the others `rawSeq`, the sequence number of that first entry (which
   * always comes right before them). readJournal fills `raw` back in.
   */
  raw?: string;
  rawSeq?: number;
}

/** Fills in `raw` for entries that refer to it, reading entries in journal order. */
export class RawResolver {
  private last: { seq: number; raw: string } | undefined;

  has(seq: number): boolean {
    return this.last?.seq === seq;
  }

  resolve<T extends JournalEntry>(e: T): T {
    if (e.type !== 'alert') return e;
    if (e.raw !== undefined) {
      this.last = { seq: e.seq, raw: e.raw };
      return e;
    }
    if (e.rawSeq === undefined || this.last?.seq !== e.rawSeq) return e;
    const { rawSeq: _, ...rest } = e;
    return { ...rest, raw: this.last.raw } as T;
  }
}

/** The Investigation's status.alerts includes every alert of it up to throughSeq. */
export interface AckEntry {
  type: 'ack';
  seq: number;
  at: string;
  investigation: InvestigationRef;
  throughSeq: number;
  count: number;
}

/** The case journaled under `investigation` is opened as `to`: an Investigation casefile did not create held the name. */
export interface MovedEntry {
  type: 'moved';
  seq: number;
  at: string;
  investigation: InvestigationRef;
  to: string;
}

/** In a checkpoint: the alerts of one case it no longer holds line by line (seq: the checkpoint's). */
export interface CaseEntry {
  type: 'case';
  seq: number;
  investigation: InvestigationRef;
  policy: { namespace: string; name: string };
  podUID: string;
  count: number;
  first: string;
  last: string;
  lastSeq: number;
  ackedThrough: number;
}

export type ImportedCheck = (entry: AlertEntry, name: string) => Promise<boolean>;

export type JournalEntry = AlertEntry | AckEntry | MovedEntry | CaseEntry;
export type NewJournalEntry = Omit<AlertEntry, 'seq'> | Omit<AckEntry, 'seq'> | Omit<MovedEntry, 'seq'>;

/** What to read: the newest checkpoint, then the segments begun after it, in sequence order; and what they replace. */
export async function journalFiles(dir: string): Promise<{ live: string[]; replaced: string[] }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { live: [], replaced: [] };
    throw err;
  }
  const checkpoints = names.filter((n) => CHECKPOINT.test(n)).sort();
  const newest = checkpoints.at(-1);
  const through = newest ? Number(CHECKPOINT.exec(newest)![1]) : 0;
  const segments = names.filter((n) => SEGMENT.test(n)).sort();
  const after = segments.filter((n) => Number(SEGMENT.exec(n)![1]) > through);
  return {
    live: [...(newest ? [newest] : []), ...after].map((n) => path.join(dir, n)),
    // Also the temporary file of a compaction that crashed.
    replaced: [...checkpoints.slice(0, -1), ...segments.filter((n) => !after.includes(n)), ...names.filter((n) => n.endsWith('.tmp'))].map((n) => path.join(dir, n)),
  };
}

/** The files a reader reads, in order: the newest checkpoint and the segments begun after it. */
export async function journalSegments(dir: string): Promise<string[]> {
  return (await journalFiles(dir)).live;
}

/**
 * Every committed entry, in sequence order, streamed, each alert with its `raw`. A line that does not
 * parse (the torn tail of a segment whose writer crashed mid-write, never acknowledged) is skipped
 * with a warning.
 */
export async function* readJournal(dir: string, log?: Logger): AsyncGenerator<JournalEntry> {
  const raws = new RawResolver();
  for (const file of await journalSegments(dir)) {
    const counts = { lines: 0 };
    for await (const line of bufferLines(createReadStream(file, { highWaterMark: SCAN_CHUNK }), { counts })) {
      if (!line?.length) continue;
      const entry = parseEntry(line.toString('utf8'));
      if (entry) yield raws.resolve(entry);
      else log?.warn({ file, line: counts.lines }, 'skipping an unreadable alert journal line (torn by a crash?)');
    }
  }
}

/** The entry numbered `seq` in one segment, if it is there. */
export async function entryAt(file: string, seq: number): Promise<JournalEntry | undefined> {
  for await (const line of bufferLines(createReadStream(file, { highWaterMark: SCAN_CHUNK }), { only: needles([`"seq":${seq},`, `"seq":${seq}}`]) })) {
    const entry = line && parseEntry(line.toString('utf8'));
    if (entry?.seq === seq) return entry;
  }
  return undefined;
}

export function parseEntry(line: string): JournalEntry | undefined {
  try {
    const e = JSON.parse(line) as JournalEntry;
    if (typeof e.seq !== 'number' || !['alert', 'ack', 'moved', 'case'].includes(e.type) || typeof e.investigation?.name !== 'string') return undefined;
    return e;
  } catch {
    return undefined;
  }
}
