/**
 * Memory of the target's processes, read from /proc/<pid>/mem in the debug container (never in the
 * suspect): the regions the scope selects, each copied to live/memory/<pid>/<start>-<end>.bin within
 * one byte budget per case, and an index of them in live/memory/<pid>/regions.json.
 */
import { read } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Findings } from './findings.js';
import { jsonArray } from './json-stream.js';
import { suspiciousRegion } from './maps.js';
import { describeProcess, type ProcessRecord } from './processes.js';
import { DELETED, errorCode, lines, pidDir, readChunks } from './procfs.js';
import type { Run } from './run.js';

export const MEMORY_SCOPES = ['Suspicious', 'Anonymous', 'None'] as const;
export type MemoryScope = (typeof MEMORY_SCOPES)[number];
export const DEFAULT_MEMORY_MAX_BYTES = 256 * 1024 * 1024;

/** Why a region was selected. */
export type SelectReason = 'rwx' | 'anon-exec' | 'deleted-file' | 'heap' | 'stack' | 'anon-private';

/** One entry of live/memory/<pid>/regions.json (the layout the report reads). */
export interface RegionRecord {
  /** Line number (from 0) of the region in /proc/<pid>/maps as read here. */
  index: number;
  start: string;
  end: string;
  perms: string;
  offset: string;
  dev: string;
  inode: number;
  path: string;
  deleted: boolean;
  reason: SelectReason;
  /** The region's size; what was copied is in `artifact` (shorter when the read stopped early, then `skipped` says why). */
  bytes: number;
  sha256?: string;
  artifact?: string;
  skipped?: string;
}

export interface MemoryOptions {
  scope: MemoryScope;
  maxBytes: number;
  /** Cap on regions listed per process (a process may map 65530 regions; each copy is one artifact). */
  maxRegionsPerProcess?: number;
}

const MAX_REGIONS_PER_PROCESS = 4096;
/** No maps line is longer than a path plus its fields; a longer one is cut, not buffered. */
const MAX_MAPS_LINE = 8192;
const READ_CHUNK = 65536;

interface MapsEntry {
  index: number;
  start: bigint;
  end: bigint;
  record: Omit<RegionRecord, 'reason' | 'bytes'>;
}

/** Parses one maps line: "start-end perms offset dev inode  path" (the path may contain spaces). */
export function parseMapsLine(line: string, index: number): MapsEntry | null {
  const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+([0-9a-f]+)\s+(\S+)\s+(\d+)\s*(.*)$/.exec(line);
  if (!m) return null;
  const [, start, end, perms, offset, dev, inode, rawPath] = m as unknown as string[];
  const regionPath = rawPath!.trimEnd();
  const s = BigInt(`0x${start}`);
  const e = BigInt(`0x${end}`);
  if (e <= s) return null;
  return {
    index,
    start: s,
    end: e,
    record: { index, start: start!, end: end!, perms: perms!, offset: offset!, dev: dev!, inode: Number(inode), path: regionPath, deleted: regionPath.endsWith(DELETED) },
  };
}

/** Shared anonymous memory and System V shared memory, which the kernel shows as deleted files. */
const SHARED_ANONYMOUS = /^\/(dev\/zero|SYSV[0-9a-f]{8}) \(deleted\)$/;

/**
 * Why a region is read under `scope`, or null. Regions with no access at all (guard pages, address
 * space reservations) hold nothing the process uses and are never selected.
 */
export function selectRegion(line: string, entry: MapsEntry, scope: MemoryScope): SelectReason | null {
  const { perms, path: regionPath, deleted } = entry.record;
  if (scope === 'None' || perms.startsWith('---')) return null;
  if (deleted && !SHARED_ANONYMOUS.test(regionPath)) return 'deleted-file';
  const suspicious = suspiciousRegion(line);
  if (suspicious !== null) return suspicious.reason === 'rwx' ? 'rwx' : 'anon-exec';
  if (scope === 'Suspicious') return null;
  if (regionPath === '[heap]') return 'heap';
  if (regionPath === '[stack]' || regionPath.startsWith('[stack:')) return 'stack';
  if (perms[3] === 'p' && (regionPath === '' || regionPath.startsWith('[anon:'))) return 'anon-private';
  return null;
}

/** The byte budget shared by every process of one case. */
class Budget {
  used = 0;
  constructor(readonly max: number) {}
  get left(): number {
    return this.max - this.used;
  }
}

/**
 * Reads the selected regions of every target process, in pid order and maps order within one.
 * Writes notes for what was not read (scope None, nothing selected, unreadable, over the budget).
 */
export async function collectMemory(proc: string, targets: ProcessRecord[], opts: MemoryOptions, run: Run, findings: Findings): Promise<void> {
  if (opts.scope === 'None') {
    await run.note('info', 'memory not read: spec.evidence.live.memory.scope is None');
    return;
  }
  if (targets.length === 0) {
    await run.note('warn', 'memory not read: no target process');
    return;
  }
  const budget = new Budget(opts.maxBytes);
  for (const r of targets) await processMemory(proc, r, opts, budget, run, findings);
  await run.note('info', `memory: ${budget.used} of ${budget.max} bytes (memory.maxBytes) read from ${targets.length} target process(es), scope ${opts.scope}`);
}

async function processMemory(proc: string, r: ProcessRecord, opts: MemoryOptions, budget: Budget, run: Run, findings: Findings): Promise<void> {
  const who = describeProcess(r);
  const mapsFile = path.join(pidDir(proc, r.pid), 'maps');
  const cap = opts.maxRegionsPerProcess ?? MAX_REGIONS_PER_PROCESS;
  const selected: { entry: MapsEntry; reason: SelectReason }[] = [];
  let overCap = 0;
  try {
    let index = 0;
    for await (const line of lines(readChunks(mapsFile), MAX_MAPS_LINE)) {
      const entry = parseMapsLine(line, index++);
      const reason = entry === null ? null : selectRegion(line, entry, opts.scope);
      if (reason === null) continue;
      if (selected.length < cap) selected.push({ entry: entry!, reason });
      else overCap++;
    }
  } catch (err) {
    await run.note('warn', `memory of ${who} not read: cannot read ${mapsFile}: ${errorCode(err)}`);
    return;
  }
  if (overCap > 0) await run.note('warn', `memory of ${who}: ${overCap} more selected region(s) past the first ${cap} are not listed`);
  if (selected.length === 0) {
    await run.note('info', `memory of ${who}: no region matches scope ${opts.scope} (nothing read)`);
    return;
  }

  const memFile = path.join(pidDir(proc, r.pid), 'mem');
  let handle: FileHandle | null = null;
  let openError: string | null = null;
  try {
    handle = await open(memFile, 'r');
  } catch (err) {
    openError = errorCode(err);
  }
  const records: RegionRecord[] = [];
  const unreadable: string[] = [];
  let overBudget = 0;
  try {
    for (const { entry, reason } of selected) {
      const size = entry.end - entry.start;
      const record: RegionRecord = { ...entry.record, reason, bytes: Number(size) };
      records.push(record);
      if (handle === null) {
        record.skipped = `unreadable (${openError}): cannot open ${memFile}`;
        unreadable.push(openError!);
      } else if (size > BigInt(budget.left)) {
        record.skipped = `cap reached: ${size} bytes, ${budget.left} of memory.maxBytes ${budget.max} left`;
        overBudget++;
      } else {
        const problem = await copyRegion(handle, r.pid, entry, record, budget, run);
        if (problem !== null) unreadable.push(problem);
      }
    }
  } finally {
    await handle?.close();
  }
  const dir = `live/memory/${r.pid}`;
  await run.artifact(`${dir}/regions.json`, jsonArray(records));
  run.count('memoryRegions', records.length);
  if (unreadable.length > 0) {
    const codes = [...new Set(unreadable)].join(', ');
    await run.note('warn', `memory of ${who}: ${unreadable.length} of ${records.length} selected region(s) could not be read (${codes}); each is listed with the reason in ${dir}/regions.json`);
  }
  if (overBudget > 0) await run.note('warn', `memory of ${who}: ${overBudget} region(s) listed but not copied: memory.maxBytes ${budget.max} reached`);
  memoryFindings(r, records, dir, findings);
}

/** Copies one region; returns the read error's code (also in `record.skipped`), or null. */
async function copyRegion(handle: FileHandle, pid: number, entry: MapsEntry, record: RegionRecord, budget: Budget, run: Run): Promise<string | null> {
  const size = Number(entry.end - entry.start);
  // The first read decides whether there is anything to copy, so an unreadable region leaves no empty artifact.
  let first: Buffer;
  try {
    first = await readAt(handle, entry.start, Math.min(READ_CHUNK, size));
  } catch (err) {
    record.skipped = `unreadable (${errorCode(err)})`;
    return errorCode(err);
  }
  if (first.length === 0) {
    record.skipped = 'unreadable (nothing read: the region is gone)';
    return 'gone';
  }
  let copied = 0;
  let stopped: string | null = null;
  async function* chunks(): AsyncGenerator<Buffer> {
    let chunk = first;
    for (;;) {
      copied += chunk.length;
      yield chunk;
      if (copied >= size) return;
      try {
        chunk = await readAt(handle, entry.start + BigInt(copied), Math.min(READ_CHUNK, size - copied));
      } catch (err) {
        stopped = errorCode(err);
        return;
      }
      if (chunk.length === 0) {
        stopped = 'the region shrank or was unmapped';
        return;
      }
    }
  }
  const artifact = `live/memory/${pid}/${record.start}-${record.end}.bin`;
  const sent = await run.artifact(artifact, chunks());
  budget.used += copied;
  run.count('memoryBytes', copied);
  if (sent === null) {
    record.skipped = 'copy failed (see the collector notes)';
    return 'copy failed';
  }
  record.sha256 = sent.sha256;
  record.artifact = artifact;
  if (stopped !== null) {
    record.skipped = `unreadable after ${copied} of ${size} bytes (${stopped}): the copy is partial`;
    return stopped;
  }
  return null;
}

/**
 * pread at a 64-bit address. fs.read takes a bigint position; FileHandle.read (Node 20) silently
 * treats one as "the current position", which would copy the wrong bytes.
 */
function readAt(handle: FileHandle, address: bigint, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  return new Promise((resolve, reject) => {
    read(handle.fd, buf, 0, length, address, (err, bytesRead) => (err ? reject(err) : resolve(buf.subarray(0, bytesRead))));
  });
}

function memoryFindings(r: ProcessRecord, records: RegionRecord[], dir: string, findings: Findings): void {
  const copied = records.filter((x) => x.artifact !== undefined);
  const deleted = copied.filter((x) => x.reason === 'deleted-file');
  const executable = copied.filter((x) => x.reason === 'rwx' || x.reason === 'anon-exec');
  if (deleted.length > 0) {
    findings.add({
      severity: 'high',
      kind: 'memory-from-deleted-file',
      summary: `${describeProcess(r)} maps ${deleted.length} region(s) of deleted file(s) (${[...new Set(deleted.map((x) => x.path))].slice(0, 3).join(', ')}); their memory is copied under ${dir}/.`,
      artifact: `${dir}/regions.json`,
      pid: r.pid,
    });
  }
  if (executable.length > 0) {
    const rwx = executable.filter((x) => x.reason === 'rwx').length;
    findings.add({
      severity: 'low',
      kind: 'executable-anonymous-memory-copied',
      summary: `${describeProcess(r)}: ${executable.length} writable+executable or anonymous executable region(s) (${rwx} rwx) copied under ${dir}/ for analysis; JIT runtimes create such regions legitimately.`,
      artifact: `${dir}/regions.json`,
      pid: r.pid,
    });
  }
}
