import { open, readFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, fileStamp, fsyncDir, sha256Hex, writeFully } from './io.js';
import { TORN_TAIL_ACTION } from './layout.js';

export const GENESIS_PREV = '0'.repeat(64);

export interface CustodyRecord {
  seq: number;
  time: string;
  actor: string;
  action: string;
  phase?: string;
  artifact?: string;
  sha256?: string;
  bytes?: number;
  detail?: Record<string, unknown>;
  prev: string;
}

export interface CustodyEntry {
  action: string;
  phase?: string;
  artifact?: string;
  sha256?: string;
  bytes?: number;
  detail?: Record<string, unknown>;
}

export type CustodyVerification = { ok: true; records: CustodyRecord[] } | { ok: false; line: number; reason: string };

const HEX64 = /^[0-9a-f]{64}$/;

/** Nested objects get sorted keys; the top level keeps the field order the record was built with. */
function sortNestedKeys(key: string, value: unknown): unknown {
  if (key === '' || value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function serialize(r: CustodyRecord): string {
  const ordered: CustodyRecord = {
    seq: r.seq,
    time: r.time,
    actor: r.actor,
    action: r.action,
    phase: r.phase,
    artifact: r.artifact,
    sha256: r.sha256,
    bytes: r.bytes,
    detail: r.detail,
    prev: r.prev,
  };
  return JSON.stringify(ordered, sortNestedKeys);
}

function shapeProblem(value: unknown, seq: number): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  if (r.seq !== seq) return `seq is ${JSON.stringify(r.seq)}, expected ${seq}`;
  for (const k of ['time', 'actor', 'action'] as const) {
    if (typeof r[k] !== 'string' || r[k] === '') return `${k} must be a non-empty string`;
  }
  if (typeof r.prev !== 'string' || !HEX64.test(r.prev)) return 'prev must be 64 hex digits';
  if (r.phase !== undefined && typeof r.phase !== 'string') return 'phase must be a string';
  if (r.artifact !== undefined && typeof r.artifact !== 'string') return 'artifact must be a string';
  if (r.sha256 !== undefined && (typeof r.sha256 !== 'string' || !HEX64.test(r.sha256))) return 'sha256 must be 64 hex digits';
  if (r.bytes !== undefined && !(Number.isSafeInteger(r.bytes) && (r.bytes as number) >= 0)) return 'bytes must be a non-negative integer';
  if (r.detail !== undefined && (typeof r.detail !== 'object' || r.detail === null || Array.isArray(r.detail))) {
    return 'detail must be an object';
  }
  return undefined;
}

/** Checks every line's shape, seq and prev link. Lines are numbered from 1. */
export function verifyCustodyChain(text: string): CustodyVerification {
  const lines = text.split('\n');
  if (lines.pop() !== '') {
    return { ok: false, line: lines.length + 1, reason: 'last line has no newline (an incomplete write)' };
  }
  const records: CustodyRecord[] = [];
  let prev = GENESIS_PREV;
  for (const [i, line] of lines.entries()) {
    const n = i + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return { ok: false, line: n, reason: 'not valid JSON' };
    }
    const problem = shapeProblem(parsed, n);
    if (problem) return { ok: false, line: n, reason: problem };
    const record = parsed as CustodyRecord;
    if (record.prev !== prev) {
      const want = n === 1 ? 'the genesis value (64 zeros)' : `the SHA-256 of line ${n - 1} (${prev})`;
      return { ok: false, line: n, reason: `prev ${record.prev} is not ${want}: a line was changed, removed or inserted` };
    }
    prev = sha256Hex(line);
    records.push(record);
  }
  return { ok: true, records };
}

/** The append-only, hash-chained custody log of one case. */
export class CustodyLog {
  private queue: Promise<unknown> = Promise.resolve();
  private broken: Error | undefined;

  private constructor(
    private readonly file: string,
    private readonly actor: string,
    private readonly fh: FileHandle,
    private readonly list: CustodyRecord[],
    private head: string,
    private size: number,
  ) {}

  /** Opens (creating if absent) and verifies the log; refuses to extend a broken chain. */
  static async open(file: string, actor: string): Promise<CustodyLog> {
    let data: Buffer | undefined;
    try {
      data = await readFile(file);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    const bytes = data ?? Buffer.alloc(0);
    const end = bytes.lastIndexOf(0x0a) + 1;
    const complete = bytes.subarray(0, end).toString('utf8');
    const result = verifyCustodyChain(complete);
    if (!result.ok) {
      throw new Error(`custody log ${file} is broken at line ${result.line}: ${result.reason}; refusing to extend it`);
    }
    const lastLine = complete.slice(complete.lastIndexOf('\n', complete.length - 2) + 1, -1);
    const head = result.records.length > 0 ? sha256Hex(lastLine) : GENESIS_PREV;
    const fh = await open(file, 'a');
    try {
      if (data === undefined) await fsyncDir(path.dirname(file));
      const log = new CustodyLog(file, actor, fh, result.records, head, end);
      const torn = bytes.subarray(end);
      if (torn.length > 0) await log.preserveTornTail(torn);
      return log;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * Bytes after the last newline come from a write cut short by a node crash. They were never
   * acknowledged (acks follow fdatasync of a whole line), so they are not part of the chain:
   * keep them in a side file, cut them from the log and record that.
   */
  private async preserveTornTail(torn: Buffer): Promise<void> {
    const saved = `${this.file}.torn-${fileStamp()}`;
    const side = await open(saved, 'wx');
    try {
      await writeFully(side, torn);
      await side.sync();
    } finally {
      await side.close();
    }
    await fsyncDir(path.dirname(this.file));
    await this.fh.truncate(this.size);
    await this.fh.sync();
    await this.append({
      action: TORN_TAIL_ACTION,
      detail: { savedAs: path.basename(saved), bytes: torn.length, sha256: sha256Hex(torn) },
    });
  }

  /** Serialised: concurrent callers get consecutive seq numbers and an unbroken chain. */
  append(entry: CustodyEntry): Promise<CustodyRecord> {
    const next = this.queue.then(() => this.write(entry));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async write(entry: CustodyEntry): Promise<CustodyRecord> {
    if (this.broken) throw this.broken;
    const line = serialize({
      seq: this.list.length + 1,
      time: new Date().toISOString(),
      actor: this.actor,
      action: entry.action,
      phase: entry.phase,
      artifact: entry.artifact,
      sha256: entry.sha256,
      bytes: entry.bytes,
      detail: entry.detail,
      prev: this.head,
    });
    const buf = Buffer.from(`${line}\n`, 'utf8');
    try {
      // One write of the whole line on an O_APPEND fd; writeFully loops only after a short write.
      await writeFully(this.fh, buf);
      await this.fh.datasync();
    } catch (err) {
      // Not acknowledged, so cut any part of it that landed; a torn line would break the chain.
      try {
        await this.fh.truncate(this.size);
      } catch {
        this.broken = new Error(`custody log ${this.file} may end in a partial line; reopen it to repair`);
      }
      throw err;
    }
    const record = JSON.parse(line) as CustodyRecord;
    this.list.push(record);
    this.head = sha256Hex(line);
    this.size += buf.length;
    return record;
  }

  records(): readonly CustodyRecord[] {
    return this.list;
  }

  /** Waits for pending appends, then releases the file handle. */
  async close(): Promise<void> {
    await this.queue;
    await this.fh.close();
  }
}
