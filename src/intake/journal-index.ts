// Where each case's alerts are in the alert journal (main thread). A case sealing imports its alerts;
// before this index, each import read and searched the whole journal, so a storm of 50 cases read it
// 50 times over while the alerts kept coming, and that was most of the operator's CPU. The index reads
// every byte of the journal once, as it is appended (each import first catches up with what was
// written since the last one), and an import then reads only its own lines, by position.
//
// It follows the journal's files as readJournal does: the newest checkpoint and the segments begun
// after it. A file a compaction replaced is dropped with its entries; the checkpoint that replaced it
// is indexed when it appears. A torn last line (a writer that crashed mid-write) is never indexed: only
// lines up to a file's last newline are.
import { open, type FileHandle } from 'node:fs/promises';
import { openIfExists } from '../evidence/io.js';
import { SCAN_CHUNK } from '../evidence/lines.js';
import { entryAt, journalSegments, parseEntry, RawResolver, type AlertEntry, type InvestigationRef, type MovedEntry } from './journal-format.js';

interface IndexedFile {
  path: string;
  /** Bytes indexed: up to just after the last complete line read. */
  indexed: number;
  /** Per case (namespace/name): its alert lines as [start, end, seq] triples, in file order. */
  alerts: Map<string, number[]>;
  moves: MovedEntry[];
}

const keyOf = (ref: InvestigationRef) => `${ref.namespace}/${ref.name}`;

export class JournalIndex {
  private files: IndexedFile[] = [];
  private catchingUp: Promise<void> = Promise.resolve();

  constructor(private readonly dir: string) {}

  /** Indexes what was written since the last call (one catch-up at a time; callers share it). */
  refresh(): Promise<void> {
    this.catchingUp = this.catchingUp.catch(() => undefined).then(() => this.catchUp());
    return this.catchingUp;
  }

  /** Every move journaled in `namespace`, in journal order. */
  moves(namespace: string): MovedEntry[] {
    return this.files.flatMap((f) => f.moves.filter((m) => m.investigation.namespace === namespace));
  }

  /** The sequence numbers of the alerts journaled under these cases, after `afterSeq`, lowest and highest (none: undefined). */
  range(refs: readonly InvestigationRef[], afterSeq: number): { first: number; last: number } | undefined {
    let first = Infinity;
    let last = 0;
    for (const f of this.files) {
      for (const ref of refs) {
        const at = f.alerts.get(keyOf(ref)) ?? [];
        for (let i = 2; i < at.length; i += 3) {
          const seq = at[i]!;
          if (seq <= afterSeq) continue;
          first = Math.min(first, seq);
          last = Math.max(last, seq);
        }
      }
    }
    return last === 0 ? undefined : { first, last };
  }

  /** The alerts of these cases numbered first..last, in journal order, each with its raw body. */
  async *alerts(refs: readonly InvestigationRef[], first: number, last: number): AsyncGenerator<AlertEntry> {
    for (const f of this.files) {
      const lines: number[][] = [];
      for (const ref of refs) {
        const at = f.alerts.get(keyOf(ref)) ?? [];
        for (let i = 0; i < at.length; i += 3) if (at[i + 2]! >= first && at[i + 2]! <= last) lines.push([at[i]!, at[i + 1]!]);
      }
      if (lines.length === 0) continue;
      lines.sort((a, b) => a[0]! - b[0]!);
      const raws = new RawResolver();
      const fh = await open(f.path, 'r');
      try {
        for (const [start, end] of lines) {
          const buf = Buffer.alloc(end! - start!);
          await readFully(fh, buf, start!);
          const entry = parseEntry(buf.toString('utf8'));
          if (entry?.type !== 'alert') continue;
          if (entry.rawSeq !== undefined && !raws.has(entry.rawSeq)) {
            // Its body is on the line of the alert it came with (another policy's case).
            const carrier = await entryAt(f.path, entry.rawSeq);
            if (carrier) raws.resolve(carrier);
          }
          yield raws.resolve(entry);
        }
      } finally {
        await fh.close();
      }
    }
  }

  private async catchUp(): Promise<void> {
    const live = await journalSegments(this.dir);
    const known = new Map(this.files.map((f) => [f.path, f]));
    this.files = live.map((path) => known.get(path) ?? { path, indexed: 0, alerts: new Map(), moves: [] });
    for (const f of this.files) await indexNewLines(f);
  }
}

/** Reads `f` from where its index stops to its last complete line. */
async function indexNewLines(f: IndexedFile): Promise<void> {
  const fh = await openIfExists(f.path);
  if (!fh) return; // compacted away meanwhile: gone from the next catch-up's list
  try {
    let buf = Buffer.alloc(SCAN_CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, f.indexed);
      if (bytesRead === 0) return;
      const lastNewline = buf.subarray(0, bytesRead).lastIndexOf(10);
      if (lastNewline === -1) {
        if (bytesRead < buf.length) return; // a line still being written (or torn): not yet
        buf = Buffer.alloc(buf.length * 2); // a line longer than the buffer
        continue;
      }
      let start = 0;
      for (let nl = buf.indexOf(10); nl !== -1 && nl <= lastNewline; nl = buf.indexOf(10, start)) {
        index(f, buf.subarray(start, nl), f.indexed + start, f.indexed + nl);
        start = nl + 1;
      }
      f.indexed += lastNewline + 1;
    }
  } finally {
    await fh.close();
  }
}

function index(f: IndexedFile, line: Buffer, start: number, end: number): void {
  if (line.length === 0) return;
  const entry = parseEntry(line.toString('utf8'));
  if (entry?.type === 'moved') f.moves.push(entry);
  if (entry?.type !== 'alert') return;
  const key = keyOf(entry.investigation);
  let at = f.alerts.get(key);
  if (!at) f.alerts.set(key, (at = []));
  at.push(start, end, entry.seq);
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`alert journal ${position + done}: the file is shorter than its index`);
    done += bytesRead;
  }
}
