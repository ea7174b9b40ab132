// The rolling audit store on the evidence volume: the recent audit trail, kept so a case opened later
// can copy what concerns its pod. It is not evidence (nothing in it is part of a case until a case
// copies it under audit/, hashed); it is a bounded buffer, pruned by size and age, so a flood of audit
// events (an attacker's token hammering the API server) can neither fill the volume nor push
// out what matters most: requests on pods have their own quarter of the budget.
//
// Layout: <evidenceDir>/.audit/<partition>/<seq>.jsonl, one AuditRecord a line, seq increasing.
// One writer (the receiver's thread); readers list the directory when they scan.
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../errors.js';
import type { AuditRecord } from './record.js';

export const AUDIT_SUBDIR = '.audit';
export const PARTITIONS = ['pods', 'requests'] as const;
export type Partition = (typeof PARTITIONS)[number];
const SEGMENT_PATTERN = /^(\d{12})\.jsonl$/;

export function auditStoreDir(evidenceDir: string): string {
  return path.join(evidenceDir, AUDIT_SUBDIR);
}

/** Requests on pods (exec, attach, ephemeral containers, changes) are few and matter most: their own budget. */
export function partitionOf(record: AuditRecord): Partition {
  return record.resource === 'pods' && (record.apiGroup ?? '') === '' ? 'pods' : 'requests';
}

export interface AuditStoreLimits {
  /** Both partitions together; pods get a quarter, every other request the rest. */
  maxBytes: number;
  maxAgeMs: number;
}

export function partitionBudget(limits: AuditStoreLimits, partition: Partition): number {
  return partition === 'pods' ? Math.floor(limits.maxBytes / 4) : limits.maxBytes - Math.floor(limits.maxBytes / 4);
}

/** Segments of a partition, oldest first. */
export async function listSegments(dir: string): Promise<{ name: string; seq: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((name) => ({ name, m: SEGMENT_PATTERN.exec(name) }))
    .filter((s): s is { name: string; m: RegExpExecArray } => s.m !== null)
    .map(({ name, m }) => ({ name, seq: Number(m[1]) }))
    .sort((a, b) => a.seq - b.seq);
}

interface Segment {
  name: string;
  seq: number;
  bytes: number;
  createdMs: number;
  lastWriteMs: number;
}

export interface AppendResult {
  kept: number;
  /** Records larger than a whole segment (cannot happen with toAuditRecord's bounds, but never trusted). */
  oversized: number;
  prunedSegments: number;
}

class PartitionWriter {
  private segments: Segment[] = [];

  constructor(
    readonly dir: string,
    private readonly budget: number,
    private readonly maxAgeMs: number,
  ) {}

  /**
   * A segment is a 64th of the budget: pruning drops at most that much of the kept trail at once, and
   * a case's copy skips every segment last written before its window (a 48 MiB segment, an eighth,
   * held the last hour of a busy cluster, so every case read it whole).
   */
  get segmentBytes(): number {
    return Math.max(4096, Math.floor(this.budget / 64));
  }

  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const { name, seq } of await listSegments(this.dir)) {
      const s = await stat(path.join(this.dir, name));
      this.segments.push({ name, seq, bytes: s.size, createdMs: s.mtimeMs, lastWriteMs: s.mtimeMs });
    }
  }

  bytes(): number {
    return this.segments.reduce((sum, s) => sum + s.bytes, 0);
  }

  async append(lines: string[], nowMs: number): Promise<{ oversized: number; pruned: number }> {
    let oversized = 0;
    let batch: string[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (!batch.length) return;
      await this.write(batch.join(''), batchBytes, nowMs);
      batch = [];
      batchBytes = 0;
    };
    for (const line of lines) {
      const bytes = Buffer.byteLength(line);
      if (bytes > this.segmentBytes) {
        oversized++;
        continue;
      }
      const current = this.segments.at(-1);
      // A segment also closes with age, so the newest one cannot keep old records past the age limit.
      const fresh = current !== undefined && nowMs - current.createdMs <= this.maxAgeMs / 8;
      const room = current && fresh ? this.segmentBytes - current.bytes - batchBytes : 0;
      if (bytes > room) {
        await flush();
        await this.rotate(nowMs);
      }
      batch.push(line);
      batchBytes += bytes;
    }
    await flush();
    return { oversized, pruned: await this.prune(nowMs) };
  }

  private async rotate(nowMs: number): Promise<void> {
    const seq = (this.segments.at(-1)?.seq ?? 0) + 1;
    const name = `${String(seq).padStart(12, '0')}.jsonl`;
    const handle = await open(path.join(this.dir, name), 'wx', 0o600);
    await handle.close();
    this.segments.push({ name, seq, bytes: 0, createdMs: nowMs, lastWriteMs: nowMs });
  }

  private async write(text: string, bytes: number, nowMs: number): Promise<void> {
    const segment = this.segments.at(-1)!;
    const handle = await open(path.join(this.dir, segment.name), 'a');
    try {
      await handle.write(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    segment.bytes += bytes;
    segment.lastWriteMs = nowMs;
  }

  /** Drops the oldest segments while over budget, and segments whose newest record is past the age limit. */
  private async prune(nowMs: number): Promise<number> {
    let pruned = 0;
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const overBudget = this.bytes() > this.budget;
      const expired = nowMs - oldest.lastWriteMs > this.maxAgeMs;
      if (!overBudget && !expired) break;
      await unlink(path.join(this.dir, oldest.name)).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      });
      this.segments.shift();
      pruned++;
    }
    return pruned;
  }
}

/** The store's writing side: one instance, in the receiver's thread. Appends are serialized. */
export class AuditStoreWriter {
  private readonly partitions: Map<Partition, PartitionWriter>;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(evidenceDir: string, limits: AuditStoreLimits) {
    const root = auditStoreDir(evidenceDir);
    this.partitions = new Map(PARTITIONS.map((p) => [p, new PartitionWriter(path.join(root, p), partitionBudget(limits, p), limits.maxAgeMs)]));
  }

  static async open(evidenceDir: string, limits: AuditStoreLimits): Promise<AuditStoreWriter> {
    const store = new AuditStoreWriter(evidenceDir, limits);
    for (const p of store.partitions.values()) await p.load();
    return store;
  }

  bytes(): number {
    return [...this.partitions.values()].reduce((sum, p) => sum + p.bytes(), 0);
  }

  /** Appends records (fsynced before it resolves) and prunes; a failure (a full volume) rejects, nothing is half-counted. */
  append(records: readonly AuditRecord[], nowMs = Date.now()): Promise<AppendResult> {
    const run = this.chain.then(async () => {
      const result: AppendResult = { kept: 0, oversized: 0, prunedSegments: 0 };
      for (const [partition, writer] of this.partitions) {
        const lines = records.filter((r) => partitionOf(r) === partition).map((r) => `${JSON.stringify(r)}\n`);
        if (!lines.length) continue;
        try {
          const { oversized, pruned } = await writer.append(lines, nowMs);
          result.kept += lines.length - oversized;
          result.oversized += oversized;
          result.prunedSegments += pruned;
        } catch (err) {
          throw new Error(`audit store ${partition}: ${errorMessage(err)}`);
        }
      }
      return result;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
