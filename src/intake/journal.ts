// The alert journal: an append-only log on the evidence volume, so an alert is durable before the
// sender hears 202 and survives a restart before its Investigation exists. One JSON line per accepted
// alert (and per acknowledgement that an Investigation's status caught up). Alerts arriving within a
// few milliseconds share one write and one fsync (group commit). Each process writes its own segment
// files, created with O_EXCL, appended to and never rewritten; a segment is never reopened for writing,
// so a line torn by a crash stays the (ignored) tail of its own segment.
//
// The journal is bounded (maxBytes over all segments): past it, alerts are refused (the sender gets
// 503 and retries later) rather than filling the evidence volume; acknowledgements still go in, and
// nothing already accepted is dropped. Past half of it the journal is compacted: every closed segment
// is rewritten into one checkpoint that keeps each alert not yet both acknowledged (status.alerts
// counts it) and copied into a sealed case file, plus one `case` line per Investigation carrying the
// counts of what was dropped. The checkpoint is renamed into place before the segments it replaces are
// deleted (./journal-format.ts: what readers take).
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileStamp, fsyncDir, mkdirDurable, writeFully } from '../evidence/io.js';
import type { Logger } from '../log.js';
import {
  checkpointName, journalFiles, journalSegments, readJournal, segmentName,
  type AlertEntry, type CaseEntry, type ImportedCheck, type InvestigationRef, type JournalEntry, type MovedEntry, type NewJournalEntry,
} from './journal-format.js';

export interface JournalOptions {
  log: Logger;
  /** How long the first alert of a batch waits for company before the write+fsync. Default 2 ms. */
  groupCommitMs?: number;
  /** A segment is closed and a new one started beyond this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Alerts are refused (JournalFullError) once the segments hold this much. Default 1 GiB. */
  maxBytes?: number;
  /**
   * A check, fresh for each compaction, of whether an alert is in a sealed case file (`name`: the
   * Investigation it went to). Without it the journal is never compacted. Compaction starts past
   * compactAtBytes (default maxBytes / 2).
   */
  importedCheck?: () => ImportedCheck;
  compactAtBytes?: number;
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

export class AlertJournal {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private segment: { fh: FileHandle; bytes: number } | undefined;
  private closed = false;
  /** Bytes in the segments plus bytes waiting to be written. */
  private bytes: number;
  /** Size right after the last compaction: the next one waits for real growth. */
  private compactedAt = 0;

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
    // One alert matching several policies: its body is written once.
    const carrier = numbered.find((e): e is AlertEntry => e.type === 'alert' && e.raw !== undefined);
    const stored = numbered.map((e) => (e.type === 'alert' && carrier && e !== carrier && e.raw === carrier.raw ? { ...e, raw: undefined, rawSeq: carrier.seq } : e));
    const lines = stored.map((e) => `${JSON.stringify(e)}\n`).join('');
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
    this.flushing = this.flush()
      .then(() => this.maybeCompact())
      .finally(() => {
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

  /** Runs inside the flush chain: no write happens meanwhile (appends wait in `pending`). */
  private async maybeCompact(): Promise<void> {
    const check = this.opts.importedCheck;
    const at = this.opts.compactAtBytes ?? (this.opts.maxBytes ?? DEFAULT_MAX_BYTES) / 2;
    if (!check || this.closed || this.bytes < at || this.bytes - this.compactedAt < at / 4) return;
    try {
      if (this.segment) {
        await this.segment.fh.close();
        this.segment = undefined;
      }
      const before = this.bytes;
      await compactJournal(this.dir, this.lastWritten(), check());
      let bytes = 0;
      for (const file of await journalSegments(this.dir)) bytes += (await stat(file)).size;
      this.bytes = bytes + this.pending.reduce((n, p) => n + Buffer.byteLength(p.lines), 0);
      this.compactedAt = this.bytes;
      this.opts.log.info({ before, after: this.bytes }, 'alert journal compacted');
    } catch (err) {
      this.compactedAt = this.bytes; // not again at once; the journal as it was stays valid
      this.opts.log.error({ err }, 'alert journal compaction failed; the journal is unchanged');
    }
  }

  /** The highest sequence number on disk (entries in `pending` are numbered but not written). */
  private lastWritten(): number {
    return this.lastSeq - this.pending.reduce((n, p) => n + p.entries.length, 0);
  }

  private async segmentFor(firstSeq: number, bytes: number): Promise<{ fh: FileHandle; bytes: number }> {
    const max = this.opts.segmentBytes ?? 64 * 1024 * 1024;
    if (this.segment && this.segment.bytes > 0 && this.segment.bytes + bytes > max) {
      await this.segment.fh.close();
      this.segment = undefined;
    }
    if (!this.segment) {
      const file = path.join(this.dir, segmentName(firstSeq, fileStamp()));
      const fh = await open(file, 'wx');
      await fsyncDir(this.dir);
      this.segment = { fh, bytes: 0 };
    }
    return this.segment;
  }
}

const caseKey = (ref: InvestigationRef) => `${ref.namespace}/${ref.name}`;

/**
 * Rewrites every entry up to `through` into one checkpoint: alerts kept unless acknowledged and
 * imported, acknowledgements and dropped alerts folded into `case` lines, moves kept. Then deletes
 * what it replaces. A crash before the rename leaves only a temporary file; after it, the old files
 * are ignored by readers and deleted on the next compaction.
 */
export async function compactJournal(dir: string, through: number, isImported: ImportedCheck): Promise<void> {
  const acked = new Map<string, number>();
  const movedTo = new Map<string, string>();
  for await (const e of readJournal(dir)) {
    if (e.seq > through) continue;
    const key = caseKey(e.investigation);
    if (e.type === 'ack') acked.set(key, Math.max(acked.get(key) ?? 0, e.throughSeq));
    if (e.type === 'case') acked.set(key, Math.max(acked.get(key) ?? 0, e.ackedThrough));
    if (e.type === 'moved') movedTo.set(key, e.to);
  }
  const folded = new Map<string, CaseEntry>();
  const fold = (key: string, c: Omit<CaseEntry, 'type' | 'seq'>) => {
    const f = folded.get(key);
    if (!f) return folded.set(key, { type: 'case', seq: through, ...c, ackedThrough: acked.get(key) ?? 0 });
    f.count += c.count;
    if (c.first < f.first) f.first = c.first;
    if (c.last > f.last) f.last = c.last;
    f.lastSeq = Math.max(f.lastSeq, c.lastSeq);
  };
  const tmp = path.join(dir, `checkpoint-${through}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    const moves: MovedEntry[] = [];
    for await (const e of readJournal(dir)) {
      if (e.seq > through) continue;
      const key = caseKey(e.investigation);
      if (e.type === 'moved') moves.push(e);
      else if (e.type === 'case') fold(key, e);
      else if (e.type === 'alert') {
        const droppable = e.seq <= (acked.get(key) ?? 0) && (await isImported(e, movedTo.get(key) ?? e.investigation.name));
        if (droppable) fold(key, { investigation: e.investigation, policy: e.policy, podUID: e.pod.uid, count: 1, first: e.receivedAt, last: e.receivedAt, lastSeq: e.seq, ackedThrough: 0 });
        else await writeFully(fh, Buffer.from(`${JSON.stringify(e)}\n`));
      }
    }
    // Cases before moves: replaying a move needs its case.
    for (const c of folded.values()) await writeFully(fh, Buffer.from(`${JSON.stringify(c)}\n`));
    for (const m of moves) await writeFully(fh, Buffer.from(`${JSON.stringify(m)}\n`));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path.join(dir, checkpointName(through)));
  await fsyncDir(dir);
  for (const file of (await journalFiles(dir)).replaced) await rm(file, { force: true });
  await fsyncDir(dir);
}

