// The store's reading side (the phase that copies a case's audit trail): lists the segments when it
// scans, so it needs no state shared with the writer's thread. A segment pruned while it is read is
// reported, not fatal: the open handle keeps its bytes readable anyway on Linux.
import { open } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { AuditRecord } from './record.js';
import { auditStoreDir, listSegments, PARTITIONS, type Partition } from './store.js';

/** Lines longer than this are not records the writer wrote (it bounds every field): skipped unparsed. */
const MAX_LINE = 64 * 1024;

export interface ScanStats {
  lines: number;
  parsed: number;
  malformed: number;
  /** Segments listed but gone before they could be opened (pruned meanwhile). */
  vanished: number;
  /** The time of the first record read in each partition: the store holds nothing older. */
  oldest: Partial<Record<Partition, string>>;
}

export class AuditStoreReader {
  readonly root: string;

  constructor(evidenceDir: string) {
    this.root = auditStoreDir(evidenceDir);
  }

  /**
   * Records of `partitions` in store order for which `prefilter(line)` holds (a cheap substring test
   * before JSON.parse: the store can hold hundreds of megabytes of other pods' requests).
   */
  async *scan(partitions: readonly Partition[], prefilter: (line: string) => boolean, stats: ScanStats): AsyncGenerator<AuditRecord> {
    for (const partition of partitions) {
      const dir = path.join(this.root, partition);
      for (const { name } of await listSegments(dir)) {
        let stream;
        try {
          stream = (await open(path.join(dir, name), 'r')).createReadStream();
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            stats.vanished++;
            continue;
          }
          throw err;
        }
        for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
          stats.lines++;
          if (stats.oldest[partition] === undefined) stats.oldest[partition] = firstTime(line);
          if (line.length > MAX_LINE || !prefilter(line)) continue;
          try {
            yield JSON.parse(line) as AuditRecord;
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
  return { lines: 0, parsed: 0, malformed: 0, vanished: 0, oldest: {} };
}

function firstTime(line: string): string | undefined {
  const m = /^\{"time":"([^"]{1,40})"/.exec(line);
  return m?.[1];
}

/** The time of the last complete record of a segment (reads only its tail). */
async function lastTime(file: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
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
