// A case bundle: the case directory (signature included; the store's .partial/ left out) as a deterministic tar.gz. Same directory,
// same bytes: paths sorted, mtime 0, uid/gid 0, no user or group names, modes 0644/0755, gzip with a
// fixed level and no name or time. File contents are streamed, never held whole.
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import { PARTIAL_DIR } from './layout.js';
import { BLOCK, entryHeader, padding, type TarEntry } from './tar.js';

const GZIP_LEVEL = 6;

/** Every entry under `caseDir`, as '/' paths below its basename, sorted; refuses anything but files and directories. */
async function listEntries(caseDir: string): Promise<TarEntry[]> {
  const top = path.basename(path.resolve(caseDir));
  const entries: TarEntry[] = [{ path: top, type: 'directory', size: 0 }];
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(path.join(caseDir, rel))) {
      // The store's scratch area: temp files waiting to be linked in, never part of the case.
      if (rel === '' && name === PARTIAL_DIR) continue;
      const child = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(path.join(caseDir, child));
      if (st.isDirectory()) {
        entries.push({ path: `${top}/${child}`, type: 'directory', size: 0 });
        await walk(child);
      } else if (st.isFile()) {
        entries.push({ path: `${top}/${child}`, type: 'file', size: st.size });
      } else {
        throw new Error(`cannot bundle ${caseDir}: ${child} is not a regular file or directory`);
      }
    }
  };
  await walk('');
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function* tarStream(caseDir: string, entries: TarEntry[]): AsyncGenerator<Buffer> {
  const top = entries[0]!.path;
  for (const entry of entries) {
    yield entryHeader(entry);
    if (entry.type !== 'file') continue;
    let bytes = 0;
    for await (const chunk of createReadStream(path.join(caseDir, entry.path.slice(top.length + 1))) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      // The header already promised the size: a file that grows or shrinks would corrupt the archive.
      if (bytes > entry.size) break;
      yield chunk;
    }
    if (bytes !== entry.size) throw new Error(`cannot bundle ${caseDir}: ${entry.path} changed size while it was read`);
    yield padding(entry.size);
  }
  yield Buffer.alloc(2 * BLOCK);
}

/**
 * Writes the case directory as a deterministic tar.gz to `out` and ends it. The tree is listed (and
 * anything that is not a file or directory refused) before the first byte is written; on a later
 * error `out` is destroyed, so a reader never mistakes a cut archive for a whole one.
 */
export async function writeBundle(caseDir: string, out: NodeJS.WritableStream | Writable): Promise<void> {
  const entries = await listEntries(caseDir);
  await pipeline(Readable.from(tarStream(caseDir, entries)), createGzip({ level: GZIP_LEVEL, strategy: constants.Z_DEFAULT_STRATEGY }), out);
}
