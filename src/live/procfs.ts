import { open, readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { errorMessage } from '../errors.js';

/** What the kernel appends to a /proc link (exe, fd, maps path) whose file was deleted. */
export const DELETED = ' (deleted)';

/**
 * Readers of /proc/<pid>/*. Every path is built from a proc root so tests can point at a fake
 * tree. Only readFile/readlink/readdir are used: nothing here follows a link to a file.
 */

/** Clock ticks per second for /proc/<pid>/stat times. USER_HZ is 100 on every Linux ABI Node runs on; Node cannot call sysconf(_SC_CLK_TCK). */
export const CLK_TCK = 100;

export const NAMESPACES = ['mnt', 'pid', 'net', 'uts', 'ipc', 'user', 'cgroup'] as const;
export type NamespaceName = (typeof NAMESPACES)[number];

export interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
  /** Field 22: start time in clock ticks after boot. */
  startTicks: number;
}

export interface IdSet {
  real: number;
  effective: number;
  saved: number;
  fs: number;
}

export { errorMessage };

/** Short form for notes: "ENOENT" rather than the full message that repeats the path. */
export function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? errorMessage(err);
}

export function pidDir(proc: string, pid: number | 'self'): string {
  return path.join(proc, String(pid));
}

/** Numeric entries of the proc root, ascending. */
export async function listPids(proc: string): Promise<number[]> {
  const names = await readdir(proc);
  return names
    .filter((n) => /^[1-9][0-9]*$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * Parses /proc/<pid>/stat. The comm (field 2) is in parentheses and may itself contain spaces
 * and ')', so the fields after it start after the LAST ')'.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open === -1 || close < open) throw new Error('malformed stat: no (comm)');
  const rest = text.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTicks = Number(rest[19]);
  if (state === undefined || !Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTicks)) throw new Error('malformed stat: missing fields');
  return { comm: text.slice(open + 1, close), state, ppid, startTicks };
}

/** "Key:\tvalue" lines of /proc/<pid>/status. */
export function parseStatus(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** Uid:/Gid: lines: real, effective, saved, filesystem. */
export function parseIds(value: string | undefined): IdSet | null {
  const ids = (value ?? '').split(/\s+/).map(Number);
  if (ids.length < 4 || ids.some((n) => !Number.isSafeInteger(n))) return null;
  return { real: ids[0]!, effective: ids[1]!, saved: ids[2]!, fs: ids[3]! };
}

/** btime from /proc/stat: boot time in seconds since the epoch. */
export function parseBootTime(text: string): number {
  const m = /^btime\s+(\d+)$/m.exec(text);
  if (!m) throw new Error('no btime in /proc/stat');
  return Number(m[1]);
}

export function startTimeIso(bootTime: number, startTicks: number): string {
  return new Date(bootTime * 1000 + (startTicks * 1000) / CLK_TCK).toISOString();
}

/** NUL-separated lists (cmdline, environ); a trailing NUL ends the last item. */
export function splitNul(buf: Buffer): string[] {
  if (buf.length === 0) return [];
  const text = buf.toString('utf8');
  const items = text.split('\0');
  if (items[items.length - 1] === '') items.pop();
  return items;
}

/** Reads an open file to its end in 64 KiB chunks (a fresh buffer each: consumers may keep them). */
export async function* handleChunks(handle: FileHandle, limit = Number.MAX_SAFE_INTEGER): AsyncGenerator<Buffer> {
  let total = 0;
  while (total < limit) {
    const buf = Buffer.allocUnsafe(Math.min(65536, limit - total));
    const { bytesRead } = await handle.read(buf, 0, buf.length, null);
    if (bytesRead === 0) return;
    total += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

/** A process's command line or environment is read up to this much: the suspect chooses their size. */
export const MAX_PROC_LIST_BYTES = 64 * 1024;

/** The first `max` bytes of a file, and whether there was more. */
export async function readHead(file: string, max: number): Promise<{ buf: Buffer; truncated: boolean }> {
  const parts: Buffer[] = [];
  for await (const chunk of readChunks(file, max + 1)) parts.push(chunk);
  const all = Buffer.concat(parts);
  return { buf: all.subarray(0, max), truncated: all.length > max };
}

/** Streams a file (including /proc files whose size reads as 0) in chunks, never whole, up to `limit` bytes. */
export async function* readChunks(file: string, limit = Number.MAX_SAFE_INTEGER): AsyncGenerator<Buffer> {
  const handle = await open(file, 'r');
  try {
    yield* handleChunks(handle, limit);
  } finally {
    await handle.close();
  }
}

/** Splits a chunk stream into lines (without the "\n"), keeping at most `maxLine` bytes of each. */
export async function* lines(chunks: AsyncIterable<Buffer>, maxLine = 1 << 20): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  for await (const chunk of chunks) {
    const parts = (carry + decoder.write(chunk)).split('\n');
    carry = parts.pop()!.slice(0, maxLine);
    for (const part of parts) yield part.slice(0, maxLine);
  }
  if (carry !== '') yield carry;
}

/** Passes chunks through unchanged while feeding each complete line to `onLine` (one read serves the raw copy and the parse). */
export async function* tapLines(chunks: AsyncIterable<Buffer>, onLine: (line: string) => void): AsyncGenerator<Buffer> {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  for await (const chunk of chunks) {
    yield chunk;
    const parts = (carry + decoder.write(chunk)).split('\n');
    carry = parts.pop()!;
    for (const part of parts) onLine(part);
  }
  if (carry !== '') onLine(carry);
}
