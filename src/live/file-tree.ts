import type { Stats } from 'node:fs';
import { lstat, type FileHandle } from 'node:fs/promises';
import { ArtifactPathError, mirrorPath } from '../evidence/paths.js';
import { at, copyChunks, descend, fileFacts, inspectRegular, isSuspicious, octalMode, openRoot, readLinkAt, walk, type Inspection, type WalkEntry, type WalkState } from './files.js';
import { jsonArray } from './json-stream.js';
import { errorCode } from './procfs.js';
import type { Run } from './run.js';

/** One line of live/files.json or node/upper-layer.json. */
export interface FileRecord {
  path: string;
  pathHex?: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mode: string;
  uid: number;
  gid: number;
  mtime: string;
  /** Inode change time: later than mtime after a chmod, a rename, or an mtime set back (touch -d). */
  ctime: string;
  device: number;
  sha256: string | null;
  setuid: boolean;
  setgid: boolean;
  executable: boolean;
  elf: boolean;
  script: boolean;
  linkTarget: string | null;
  /** Bytes the file occupies on disk, for a file too large to read (sparse when far below size). */
  allocatedBytes?: number;
  whiteout?: boolean;
  copied: string | null;
  note: string | null;
}

export interface TreeOptions {
  artifact: string;
  /** Copies are named <copyPrefix><mirrorPath(container path)>. */
  copyPrefix: string;
  maxFileBytes: number;
  /** Larger files are not read: hashed, typed and copied only up to here would mislead, so recorded by size and allocated bytes. */
  maxHashBytes: number;
  maxEntries: number;
  /** Epoch ms after which the walk stops (walkSeconds: for the note). */
  deadline?: number;
  walkSeconds?: number;
  /** Overlay upper layer: mark whiteouts (char device 0/0 = deleted in the container). */
  whiteouts?: boolean;
  /** Emit an entry for each start directory itself (live paths yes; the upper layer's root no). */
  includeStart?: boolean;
}

interface PendingCopy {
  components: Buffer[];
  dev: number;
  ino: number;
  sha256: string;
  artifact: string;
  path: string;
}

const MAX_DEPTH = 64;
/** What is read of a file too large to hash: enough to tell ELF and "#!" apart. */
const HEAD_BYTES = 4;

/**
 * Walks each start path under `rootDir` into one streamed JSON array, then copies the suspicious
 * files it listed (one artifact is open at a time, so copies follow the listing; each is reopened
 * by the same no-follow walk and must still be the inode that was hashed).
 */
export async function collectTree(rootDir: string, starts: string[], opts: TreeOptions, run: Run, onFile: (f: FileRecord) => void): Promise<void> {
  let root: FileHandle;
  try {
    root = await openRoot(rootDir);
  } catch (err) {
    await run.note('warn', `cannot open ${rootDir}: ${errorCode(err)}; nothing walked`);
    await run.artifact(opts.artifact, '[]\n');
    return;
  }
  const copies: PendingCopy[] = [];
  const names = new Set<string>();
  const state: WalkState = { entries: 0, limitHit: false, timedOut: false };
  try {
    const records = async function* (): AsyncGenerator<FileRecord> {
      for (const start of starts) {
        for await (const entry of entriesOf(root, start, opts, state, run)) {
          const record = await describe(entry, opts, run);
          if (record.copied !== null) {
            if (names.has(record.copied)) {
              await run.note('warn', `${record.path} maps to the same copy name as another file (${record.copied}): hashed, not copied`);
              record.copied = null;
            } else {
              names.add(record.copied);
              copies.push({ components: entry.components, dev: entry.stat.dev, ino: entry.stat.ino, sha256: record.sha256!, artifact: record.copied, path: record.path });
            }
          }
          run.count('files');
          onFile(record);
          yield record;
        }
        if (state.timedOut) {
          await run.note('warn', `${opts.artifact} stops after ${opts.walkSeconds ?? '?'} s (--walk-seconds), ${state.entries} entries in: the rest of ${start} and any later paths are not listed`);
          return;
        }
        if (state.limitHit) {
          await run.note('warn', `${opts.artifact} stops at ${opts.maxEntries} entries: the rest of ${start} and any later paths are not listed`);
          return;
        }
      }
    };
    await run.artifact(opts.artifact, jsonArray(records()));
    for (const c of copies) {
      if (opts.deadline !== undefined && Date.now() > opts.deadline) {
        await run.note('warn', `${c.path} not copied: the walk's deadline (--walk-seconds) passed; it is listed and hashed in ${opts.artifact}`);
        continue;
      }
      const sent = await run.artifact(c.artifact, copyChunks(root, c.components, c, opts.maxFileBytes));
      if (sent === null) continue;
      run.count('copied');
      if (sent.sha256 !== c.sha256) await run.note('warn', `${c.path} changed between hashing (${c.sha256}) and copying (${c.artifact} has ${sent.sha256})`);
    }
  } finally {
    await root.close();
  }
}

/** Entries under one start path, with notes for a start that is missing, not a directory, or empty. */
async function* entriesOf(root: FileHandle, start: string, opts: TreeOptions, state: WalkState, run: Run): AsyncGenerator<WalkEntry> {
  const components = start.split('/').filter((c) => c !== '').map((c) => Buffer.from(c, 'utf8'));
  const parent = await descend(root, components.slice(0, -1));
  if (!('dir' in parent)) {
    const reached = `/${components.slice(0, parent.blockedAt + 1).join('/')}`;
    if (parent.stat !== null) await run.note('warn', `${start} is not walked: ${reached} is a ${fileFacts(parent.stat).type}, not a directory (not followed)`);
    else if (errorCode(parent.error) === 'ENOENT') await run.note('info', `${start} does not exist in the target`);
    else await run.note('warn', `${start} is not walked: cannot open ${reached}: ${errorCode(parent.error)}`);
    return;
  }
  const dir = parent.dir;
  try {
    let walkFrom: FileHandle = dir;
    let ownHandle: FileHandle | null = null;
    if (components.length > 0) {
      const name = components[components.length - 1]!;
      let st: Stats;
      try {
        st = await lstat(at(dir, name));
      } catch (err) {
        if (errorCode(err) === 'ENOENT') await run.note('info', `${start} does not exist in the target`);
        else await run.note('warn', `cannot stat ${start}: ${errorCode(err)}`);
        return;
      }
      if (opts.includeStart) {
        state.entries++;
        yield { path: start, pathHex: null, components, parent: dir, name, stat: st };
      }
      if (!st.isDirectory()) {
        await run.note('warn', `${start} is a ${fileFacts(st).type} in the target, not a directory: listed, not followed`);
        return;
      }
      const inner = await descend(dir, [name]);
      if (!('dir' in inner)) {
        await run.note('warn', `cannot open ${start}: ${errorCode(inner.error)}`);
        return;
      }
      walkFrom = ownHandle = inner.dir;
    }
    try {
      const before = state.entries;
      yield* walk(walkFrom, start, components, { maxEntries: opts.maxEntries, maxDepth: MAX_DEPTH, deadline: opts.deadline }, state, run.note);
      if (state.entries === before && !state.limitHit && !state.timedOut) await run.note('info', `no files under ${start}`);
    } finally {
      if (ownHandle !== null) await ownHandle.close();
    }
  } finally {
    if (dir !== root) await dir.close();
  }
}

async function describe(entry: WalkEntry, opts: TreeOptions, run: Run): Promise<FileRecord> {
  const st = entry.stat;
  const facts = fileFacts(st);
  let inspection: Inspection | null = null;
  let note: string | null = null;
  let linkTarget: string | null = null;
  let allocatedBytes: number | undefined;
  if (facts.type === 'file' && st.size > opts.maxHashBytes) {
    // Not read: a 16 TiB sparse file would take hours. Its first bytes still say ELF or script.
    allocatedBytes = st.blocks * 512;
    const sparse = allocatedBytes < st.size ? `sparse: ${allocatedBytes} bytes allocated` : `${allocatedBytes} bytes allocated`;
    note = `${st.size} bytes (${sparse}), over --max-hash-bytes ${opts.maxHashBytes}: not hashed, not copied`;
    await run.note('warn', `${entry.path}: ${note}`);
    try {
      inspection = await inspectRegular(entry.parent, entry.name, st, HEAD_BYTES);
    } catch (err) {
      await run.note('warn', `cannot read the start of ${entry.path}: ${errorCode(err)}`);
    }
  } else if (facts.type === 'file') {
    try {
      inspection = await inspectRegular(entry.parent, entry.name, st, opts.maxHashBytes);
    } catch (err) {
      note = `cannot read: ${errorCode(err)}`;
      await run.note('warn', `cannot hash ${entry.path}: ${errorCode(err)}`);
    }
  } else if (facts.type === 'symlink') {
    try {
      linkTarget = await readLinkAt(entry.parent, entry.name);
    } catch (err) {
      note = `cannot read link: ${errorCode(err)}`;
    }
  }
  let copied: string | null = null;
  if (allocatedBytes === undefined && inspection !== null && isSuspicious(facts, inspection)) {
    if (inspection.bytes > opts.maxFileBytes) {
      note = `${inspection.bytes} bytes, over --max-file-bytes ${opts.maxFileBytes}: hashed, not copied`;
    } else {
      try {
        copied = opts.copyPrefix + mirrorPath(entry.path);
      } catch (err) {
        if (!(err instanceof ArtifactPathError)) throw err;
        note = `no copy: ${err.message}`;
      }
    }
  }
  const record: FileRecord = {
    path: entry.path,
    ...(entry.pathHex !== null ? { pathHex: entry.pathHex } : {}),
    type: facts.type,
    size: st.size,
    mode: octalMode(st.mode),
    uid: st.uid,
    gid: st.gid,
    mtime: st.mtime.toISOString(),
    ctime: st.ctime.toISOString(),
    device: st.dev,
    sha256: allocatedBytes === undefined ? (inspection?.sha256 ?? null) : null,
    setuid: facts.setuid,
    setgid: facts.setgid,
    executable: facts.executable,
    elf: inspection?.elf ?? false,
    script: inspection?.script ?? false,
    linkTarget,
    ...(allocatedBytes !== undefined ? { allocatedBytes } : {}),
    copied,
    note,
  };
  if (opts.whiteouts) record.whiteout = st.isCharacterDevice() && st.rdev === 0;
  return record;
}
