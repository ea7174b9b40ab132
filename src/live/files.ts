import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, open, opendir, readlink, type FileHandle } from 'node:fs/promises';
import { errorCode, handleChunks } from './procfs.js';

/**
 * Walking a suspect's filesystem without trusting it. Every name below the walk root is looked up
 * relative to an open directory through our own /proc/self/fd/<n>/<name> (an openat() without
 * native code), with O_NOFOLLOW, so a symlink planted by the attacker is recorded, never followed
 * (an absolute one would otherwise resolve against the collector's root, not the target's).
 * Names are handled as bytes: a name that is not UTF-8 cannot hide a file.
 */

const SELF_FD = '/proc/self/fd';
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

export interface WalkEntry {
  /** Path as seen in the container ('/tmp/x'). */
  path: string;
  /** The same path's raw bytes in hex when it is not valid UTF-8 (`path` then has U+FFFD). */
  pathHex: string | null;
  /** Components from the walk root, as bytes, to reopen the file later. */
  components: Buffer[];
  parent: FileHandle;
  name: Buffer;
  stat: Stats;
}

export interface WalkLimits {
  maxEntries: number;
  maxDepth: number;
  /** Epoch ms: no entry is listed after it. */
  deadline?: number;
}

export interface WalkState {
  entries: number;
  limitHit: boolean;
  timedOut: boolean;
}

export type NoteFn = (level: 'info' | 'warn', message: string) => Promise<void>;

/** /proc/self/fd/<dir fd>/<name>: resolves <name> inside that directory and nowhere else. */
export function at(dir: FileHandle, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${SELF_FD}/${dir.fd}/`), name]);
}

function fileType(st: Stats): FileType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function joinPath(parent: string, name: Buffer): { path: string; invalid: boolean } {
  const text = name.toString('utf8');
  const invalid = !Buffer.from(text, 'utf8').equals(name);
  return { path: parent === '/' ? `/${text}` : `${parent}/${text}`, invalid };
}

/** Opens a directory (following links: used for trusted roots such as /proc/<pid>/root). */
export async function openRoot(dir: string): Promise<FileHandle> {
  return open(dir, O_RDONLY | O_DIRECTORY);
}

/** Opens `name` in `dir` as a directory, refusing symlinks, and checks it is the inode lstat saw. */
async function openSubdir(dir: FileHandle, name: Buffer, expected: Stats): Promise<FileHandle> {
  const handle = await open(at(dir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  const st = await handle.stat();
  if (st.dev !== expected.dev || st.ino !== expected.ino) {
    await handle.close();
    throw Object.assign(new Error('replaced while walking'), { code: 'ECHANGED' });
  }
  return handle;
}

/**
 * Descends from `root` through `components` (each must be a real directory, not a symlink).
 * Returns the handle of the last directory, or the lstat of the first component that is not one.
 */
export async function descend(root: FileHandle, components: Buffer[]): Promise<{ dir: FileHandle } | { blockedAt: number; stat: Stats | null; error: unknown }> {
  let dir = root;
  for (let i = 0; i < components.length; i++) {
    const name = components[i]!;
    let st: Stats;
    try {
      st = await lstat(at(dir, name));
      if (!st.isDirectory()) {
        if (dir !== root) await dir.close();
        return { blockedAt: i, stat: st, error: null };
      }
      const next = await openSubdir(dir, name, st);
      if (dir !== root) await dir.close();
      dir = next;
    } catch (error) {
      if (dir !== root) await dir.close();
      return { blockedAt: i, stat: null, error };
    }
  }
  return { dir };
}

/**
 * Depth-first walk below `dir` (whose container path is `dirPath`), yielding every entry with its
 * lstat. Directories on other devices are descended too (the caller records the device).
 */
export async function* walk(dir: FileHandle, dirPath: string, components: Buffer[], limits: WalkLimits, state: WalkState, note: NoteFn, depth = 0): AsyncGenerator<WalkEntry> {
  let listing;
  try {
    listing = await opendir(`${SELF_FD}/${dir.fd}`, { encoding: 'buffer' as BufferEncoding });
  } catch (err) {
    await note('warn', `cannot list ${dirPath}: ${errorCode(err)}`);
    return;
  }
  try {
    for await (const dirent of listing) {
      const name = dirent.name as unknown as Buffer;
      if (state.entries >= limits.maxEntries) {
        state.limitHit = true;
        return;
      }
      if (limits.deadline !== undefined && Date.now() > limits.deadline) {
        state.timedOut = true;
        return;
      }
      const { path: childPath, invalid } = joinPath(dirPath, name);
      let st: Stats;
      try {
        st = await lstat(at(dir, name));
      } catch (err) {
        await note('warn', `cannot stat ${childPath}: ${errorCode(err)}`);
        continue;
      }
      state.entries++;
      const childComponents = [...components, name];
      const fullHex = invalid ? Buffer.concat([Buffer.from(dirPath === '/' ? '/' : `${dirPath}/`), name]).toString('hex') : null;
      yield { path: childPath, pathHex: fullHex, components: childComponents, parent: dir, name, stat: st };
      if (!st.isDirectory()) continue;
      if (depth + 1 >= limits.maxDepth) {
        await note('warn', `not descending into ${childPath}: deeper than ${limits.maxDepth} levels`);
        continue;
      }
      let sub: FileHandle;
      try {
        sub = await openSubdir(dir, name, st);
      } catch (err) {
        await note('warn', `cannot open directory ${childPath}: ${errorCode(err)}`);
        continue;
      }
      try {
        yield* walk(sub, childPath, childComponents, limits, state, note, depth + 1);
      } finally {
        await sub.close();
      }
      if (state.limitHit || state.timedOut) return;
    }
  } finally {
    await listing.close().catch(() => undefined);
  }
}

export interface Inspection {
  sha256: string;
  bytes: number;
  elf: boolean;
  script: boolean;
}

/** Opens a regular file found by lstat, refusing symlinks, FIFOs (O_NONBLOCK) and a swapped inode. */
async function openRegular(dir: FileHandle, name: Buffer, expected: Pick<Stats, 'dev' | 'ino'>): Promise<FileHandle> {
  const handle = await open(at(dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  const st = await handle.stat();
  if (!st.isFile() || st.dev !== expected.dev || st.ino !== expected.ino) {
    await handle.close();
    throw Object.assign(new Error('replaced since it was listed'), { code: 'ECHANGED' });
  }
  return handle;
}

/** Hashes a stream and notes whether it starts like an ELF binary or a "#!" script. */
export async function inspectChunks(chunks: AsyncIterable<Buffer>): Promise<Inspection> {
  const hash = createHash('sha256');
  let head = Buffer.alloc(0);
  let bytes = 0;
  for await (const chunk of chunks) {
    if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
    hash.update(chunk);
    bytes += chunk.length;
  }
  return {
    sha256: hash.digest('hex'),
    bytes,
    elf: head.length >= 4 && head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])),
    script: head.length >= 2 && head[0] === 0x23 && head[1] === 0x21,
  };
}

/** `limit`: bytes read at most (a file growing while it is read cannot keep the collector reading). */
export async function inspectRegular(dir: FileHandle, name: Buffer, st: Stats, limit: number): Promise<Inspection> {
  const handle = await openRegular(dir, name, st);
  try {
    return await inspectChunks(handleChunks(handle, limit));
  } finally {
    await handle.close();
  }
}

export async function readLinkAt(dir: FileHandle, name: Buffer): Promise<string> {
  return (await readlink(at(dir, name), { encoding: 'buffer' })).toString('utf8');
}

/** Reopens a file by its components from the walk root (after the listing artifact is closed) and streams up to `limit` bytes. */
export async function* copyChunks(root: FileHandle, components: Buffer[], expected: Pick<Stats, 'dev' | 'ino'>, limit: number): AsyncGenerator<Buffer> {
  const found = await descend(root, components.slice(0, -1));
  if (!('dir' in found)) throw Object.assign(new Error('its directory changed since it was listed'), { code: 'ECHANGED' });
  try {
    const handle = await openRegular(found.dir, components[components.length - 1]!, expected);
    try {
      yield* handleChunks(handle, limit);
    } finally {
      await handle.close();
    }
  } finally {
    if (found.dir !== root) await found.dir.close();
  }
}

export interface FileFacts {
  type: FileType;
  setuid: boolean;
  setgid: boolean;
  executable: boolean;
}

export function fileFacts(st: Stats): FileFacts {
  const type = fileType(st);
  return {
    type,
    setuid: type === 'file' && (st.mode & 0o4000) !== 0,
    setgid: type === 'file' && (st.mode & 0o2000) !== 0,
    executable: type === 'file' && (st.mode & 0o111) !== 0,
  };
}

/** Files worth a copy: anything that can run or raise privileges. */
export function isSuspicious(facts: FileFacts, inspection: Inspection | null): boolean {
  return facts.type === 'file' && (facts.executable || facts.setuid || facts.setgid || inspection?.elf === true || inspection?.script === true);
}
