import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../errors.js';

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function errnoCode(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

export { errorMessage };

/** The file's bytes, or undefined when it does not exist (any other error is thrown). */
export async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** The file opened for reading, or undefined when it does not exist (pruned or compacted meanwhile). */
export async function openIfExists(file: string): Promise<FileHandle | undefined> {
  try {
    return await open(file, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** UTC time using only [0-9TZ], safe inside a sanitised file name. */
export function fileStamp(date = new Date()): string {
  return date.toISOString().replace(/[-:.]/g, '');
}

/** Streams the file through SHA-256; never holds it whole. */
export async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** A new or renamed directory entry is only durable once its directory is fsynced. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p, then fsync the parent of every directory it created. */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    await fsyncDir(path.dirname(d));
    if (d === first) return;
  }
}

/** fh.write may write less than asked (e.g. volume filling up); loop so the errno surfaces. */
export async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
  }
}

/** Publishes a complete, fsynced temp file under its final name; link fails with EEXIST rather than overwrite. */
export async function linkInto(temp: string, final: string): Promise<void> {
  await mkdirDurable(path.dirname(final));
  await link(temp, final);
  await fsyncDir(path.dirname(final));
  // The bytes live on under `final`; this only drops the second name.
  await unlink(temp);
}

/** Writes `content` to a fresh temp file, fsyncs it and links it to `final`: all or nothing, never over an existing file. */
export async function writeOnce(temp: string, final: string, content: Buffer): Promise<void> {
  await mkdir(path.dirname(temp), { recursive: true });
  const fh = await open(temp, 'wx');
  try {
    await writeFully(fh, content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await linkInto(temp, final);
}
