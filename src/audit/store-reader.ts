// The store's reading side (the phase that copies a case's audit trail): lists the segments when it
// scans, so it needs no state shared with the writer's thread. A segment pruned while it is read is
// reported, not fatal: the open handle keeps its bytes readable anyway on Linux.
import path from 'node:path';
import { openIfExists } from '../evidence/io.js';
import { bufferLines, needles, OVERSIZED, SCAN_CHUNK } from '../evidence/lines.js';
import type { AuditRecord } from './record.js';
import { auditStoreDir, listSegments, PARTITIONS, type Partition } from './store.js';

/** Lines longer than this are not records the writer wrote (it bounds every field): skipped unparsed. */
const MAX_LINE = 64 * 1024;
/**
 * How far the API server's clock may be ahead of the operator's for a scan from `since` (a time the
 * API server stamped) to skip a segment last written before it: nothing in the segment can be later.
 */
const CLOCK_SLACK_MS = 5 * 60_000;

export interface ScanStats {
  lines: number;
  parsed: number;
  malformed: number;
  /** Segments listed but gone before they could be opened (pruned meanwhile). */
  vanished: number;
  /** The time of the first record in each partition: the store holds nothing older. */
  oldest: Partial<Record<Partition, string>>;
  /** Segments not read: last written before the window opened. */
  skippedSegments: number;
}

export class AuditStoreReader {
  readonly root: string;

  constructor(evidenceDir: string) {
    this.root = auditStoreDir(evidenceDir);
  }

  /**
   * Records of `partitions` in store order whose line contains one of `terms` (a byte search before
   * JSON.parse: the store can hold hundreds of megabytes of other pods' requests; none: every record).
   * With `since`, a segment last written more than CLOCK_SLACK_MS before it is not read: every record
   * in it happened before it was written, so before `since` (the API server's clock within the slack
   * of the operator's).
   */
  async *scan(partitions: readonly Partition[], terms: readonly string[] | undefined, stats: ScanStats, since?: string): AsyncGenerator<AuditRecord> {
    const only = terms && needles(terms);
    const notBefore = since === undefined ? -Infinity : Date.parse(since) - CLOCK_SLACK_MS;
    for (const partition of partitions) {
      const dir = path.join(this.root, partition);
      const segments = await listSegments(dir);
      if (segments[0]) stats.oldest[partition] ??= await firstTimeOf(path.join(dir, segments[0].name));
      for (const { name } of segments) {
        const handle = await openIfExists(path.join(dir, name));
        if (!handle) {
          stats.vanished++;
          continue;
        }
        if ((await handle.stat()).mtimeMs < notBefore) {
          stats.skippedSegments++;
          await handle.close();
          continue;
        }
        for await (const line of bufferLines(handle.createReadStream({ highWaterMark: SCAN_CHUNK }), { maxLine: MAX_LINE, only, counts: stats })) {
          if (line === OVERSIZED) continue;
          try {
            yield JSON.parse(line.toString('utf8')) as AuditRecord;
            stats.parsed++;
          } catch {
            stats.malformed++; // a line cut by a crash mid-write
          }
        }
      }
    }
  }

  /** The newest record time in the store: how far the API server has delivered. */
  async newest(): Promise<string | undefined> {
    let newest: string | undefined;
    for (const partition of PARTITIONS) {
      const dir = path.join(this.root, partition);
      const segments = await listSegments(dir);
      for (const { name } of segments.reverse()) {
        const time = await lastTime(path.join(dir, name));
        if (time === undefined) continue;
        if (newest === undefined || time > newest) newest = time;
        break;
      }
    }
    return newest;
  }
}

export function emptyScanStats(): ScanStats {
  return { lines: 0, parsed: 0, malformed: 0, vanished: 0, oldest: {}, skippedSegments: 0 };
}

function firstTime(line: string): string | undefined {
  const m = /^\{"time":"([^"]{1,40})"/.exec(line);
  return m?.[1];
}

/** The time of a segment's first record (reads only its head). */
async function firstTimeOf(file: string): Promise<string | undefined> {
  const handle = await openIfExists(file);
  if (!handle) return undefined;
  try {
    const buf = Buffer.alloc(128);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return firstTime(buf.subarray(0, bytesRead).toString('utf8'));
  } finally {
    await handle.close();
  }
}

/** The time of the last complete record of a segment (reads only its tail). */
async function lastTime(file: string): Promise<string | undefined> {
  const handle = await openIfExists(file);
  if (!handle) return undefined;
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, MAX_LINE);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, size - length);
    const lines = buf.toString('utf8').split('\n').filter(Boolean);
    for (const line of lines.reverse()) {
      const time = firstTime(line);
      if (time) return time;
    }
    return undefined;
  } finally {
    await handle.close();
  }
}
