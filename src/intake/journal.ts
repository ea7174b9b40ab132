// The alert journal: an append-only log on the evidence volume, so an alert is durable before the
// sender hears 202 and survives a restart before its Investigation exists. One JSON line per accepted
// alert (and per acknowledgement that an Investigation's status caught up). Alerts arriving within a
// few milliseconds share one write and one fsync (group commit). Each process writes its own segment
// files, created with O_EXCL, appended to and never rewritten; a segment is never reopened for writing,
// so a line torn by a crash stays the (ignored) tail of its own segment.
//
// The journal is bounded (maxBytes over all segments): past it, alerts are refused (the sender gets
// 503 and retries later) rather than filling the evidence volume; acknowledgements still go in, and
// nothing already accepted is dropped.
import { createReadStream } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { errnoCode, fileStamp, fsyncDir, mkdirDurable, writeFully } from '../evidence/io.js';
import type { Logger } from '../log.js';

/**
 * `_intake` cannot be a namespace's case directory: namespaces are DNS labels, which have no '_'.
 * (`intake` could: a namespace of that name would share the directory.)
 */
const JOURNAL_SUBDIR = '_intake';
const SEGMENT = /^(\d{16})-[0-9TZ]+\.jsonl$/;

export interface InvestigationRef {
  namespace: string;
  name: string;
}

export interface AlertEntry {
  type: 'alert';
  seq: number;
  receivedAt: string;
  source: 'falco' | 'falcosidekick';
  policy: { namespace: string; name: string };
  investigation: InvestigationRef;
  pod: { name: string; uid: string; container?: string };
  alert: { rule: string; priority: string; time: string };
  /** The policy's investigation template as it was when the alert matched. */
  template: Record<string, unknown>;
  /** The request body, verbatim. */
  raw: string;
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

export type JournalEntry = AlertEntry | AckEntry | MovedEntry;
export type NewJournalEntry = Omit<AlertEntry, 'seq'> | Omit<AckEntry, 'seq'> | Omit<MovedEntry, 'seq'>;

export interface JournalOptions {
  log: Logger;
  /** How long the first alert of a batch waits for company before the write+fsync. Default 2 ms. */
  groupCommitMs?: number;
  /** A segment is closed and a new one started beyond this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Alerts are refused (JournalFullError) once the segments hold this much. Default 1 GiB. */
  maxBytes?: number;
  onFsync?: (seconds: number) => void;
}

/** The journal holds maxBytes: the alert is not accepted (503 journal_full), nothing accepted is lost. */
export class JournalFullError extends Error {
  constructor(readonly bytes: number, readonly maxBytes: number) {
    super(`the alert journal is full (${bytes} of ${maxBytes} bytes, --intake-journal-max-bytes); the alert was not accepted; retry later`);
    this.name = 'JournalFullError';
  }
}

const DEFAULT_MAX_BYTES = 1024 ** 3;

interface Pending {
  entries: JournalEntry[];
  lines: string;
  resolve: (entries: JournalEntry[]) => void;
  reject: (err: unknown) => void;
}

export function journalDir(evidenceDir: string): string {
  return path.join(evidenceDir, JOURNAL_SUBDIR);
}

export class AlertJournal {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private segment: { fh: FileHandle; bytes: number } | undefined;
  private closed = false;
  /** Bytes in the segments plus bytes waiting to be written. */
  private bytes: number;

  private constructor(
    readonly dir: string,
    private lastSeq: number,
    bytes: number,
    private readonly opts: JournalOptions,
  ) {
    this.bytes = bytes;
  }

  /** Replays every committed entry (in sequence order) through `onEntry`, then opens for appending. */
  static async open(dir: string, opts: JournalOptions, onEntry: (entry: JournalEntry) => void): Promise<AlertJournal> {
    await mkdirDurable(dir);
    let lastSeq = 0;
    for await (const entry of readJournal(dir, opts.log)) {
      lastSeq = Math.max(lastSeq, entry.seq);
      onEntry(entry);
    }
    let bytes = 0;
    for (const file of await journalSegments(dir)) bytes += (await stat(file)).size;
    return new AlertJournal(dir, lastSeq, bytes, opts);
  }

  get sequence(): number {
    return this.lastSeq;
  }

  /** Bytes the journal holds (written and pending). */
  get size(): number {
    return this.bytes;
  }

  /** Assigns sequence numbers and resolves with the entries once they are written and fsynced. */
  append(entries: NewJournalEntry[]): Promise<JournalEntry[]> {
    if (this.closed) return Promise.reject(new Error('alert journal is closed'));
    const max = this.opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (this.bytes >= max && entries.some((e) => e.type === 'alert')) return Promise.reject(new JournalFullError(this.bytes, max));
    const numbered = entries.map((e) => ({ ...e, seq: ++this.lastSeq }) as JournalEntry);
    const lines = numbered.map((e) => `${JSON.stringify(e)}\n`).join('');
    this.bytes += Buffer.byteLength(lines);
    return new Promise((resolve, reject) => {
      this.pending.push({ entries: numbered, lines, resolve, reject });
      this.schedule();
    });
  }

  /** Waits for pending writes, then closes the segment. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.timer || this.pending.length) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.startFlush();
      }
      await this.flushing;
    }
    await this.segment?.fh.close();
    this.segment = undefined;
  }

  private schedule(): void {
    if (this.flushing || this.timer) return; // the running flush reschedules when it ends
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startFlush();
    }, this.opts.groupCommitMs ?? 2);
  }

  private startFlush(): void {
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      if (this.pending.length) this.schedule();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const all = batch.flatMap((p) => p.entries);
    const buf = Buffer.from(batch.map((p) => p.lines).join(''), 'utf8');
    try {
      const segment = await this.segmentFor(all[0]!.seq, buf.length);
      await writeFully(segment.fh, buf);
      segment.bytes += buf.length;
      const started = performance.now();
      await segment.fh.datasync();
      this.opts.onFsync?.((performance.now() - started) / 1000);
    } catch (err) {
      // The segment may end in a partial line now: never append after it; the next batch starts a new one.
      const segment = this.segment;
      this.segment = undefined;
      await segment?.fh.close().catch(() => undefined);
      this.bytes -= buf.length; // not written (a partial line may be: the count is an estimate until the next open)
      this.opts.log.error({ err, entries: all.length }, 'alert journal write failed');
      for (const p of batch) p.reject(err);
      return;
    }
    for (const p of batch) p.resolve(p.entries);
  }

  private async segmentFor(firstSeq: number, bytes: number): Promise<{ fh: FileHandle; bytes: number }> {
    const max = this.opts.segmentBytes ?? 64 * 1024 * 1024;
    if (this.segment && this.segment.bytes > 0 && this.segment.bytes + bytes > max) {
      await this.segment.fh.close();
      this.segment = undefined;
    }
    if (!this.segment) {
      const file = path.join(this.dir, `${String(firstSeq).padStart(16, '0')}-${fileStamp()}.jsonl`);
      const fh = await open(file, 'wx');
      await fsyncDir(this.dir);
      this.segment = { fh, bytes: 0 };
    }
    return this.segment;
  }
}

/** Segment files in sequence order. */
async function journalSegments(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => SEGMENT.test(n)).sort().map((n) => path.join(dir, n));
}

/**
 * Every committed entry, in sequence order, streamed. A line that does not parse (the torn tail of a
 * segment whose writer crashed mid-write, never acknowledged) is skipped with a warning.
 */
export async function* readJournal(dir: string, log?: Logger): AsyncGenerator<JournalEntry> {
  for (const file of await journalSegments(dir)) {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      n++;
      if (!line) continue;
      const entry = parseEntry(line);
      if (entry) yield entry;
      else log?.warn({ file, line: n }, 'skipping an unreadable alert journal line (torn by a crash?)');
    }
  }
}

function parseEntry(line: string): JournalEntry | undefined {
  try {
    const e = JSON.parse(line) as JournalEntry;
    if (typeof e.seq !== 'number' || (e.type !== 'alert' && e.type !== 'ack' && e.type !== 'moved') || typeof e.investigation?.name !== 'string') return undefined;
    return e;
  } catch {
    return undefined;
  }
}
