// Unpacks a case bundle for offline verification, trusting nothing in it: only regular files and
// directories under one top-level folder, no absolute or '..' paths, no entry twice, a bounded total
// size, and a clear error for an archive that is cut short or malformed.
import { createReadStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { errorMessage, writeFully } from './io.js';
import { resolveInside } from './paths.js';
import { BLOCK, parseHeader, parsePax } from './tar.js';

/** Default bound on the bytes a bundle may unpack to. */
export const DEFAULT_MAX_BUNDLE_BYTES = 64 * 1024 ** 3;
const MAX_PAX_BYTES = 64 * 1024;
const TYPE_NAMES: Record<string, string> = { '1': 'a hard link', '2': 'a symlink', '3': 'a character device', '4': 'a block device', '6': 'a FIFO' };

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

/** Exact-size reads over a stream of chunks; running out is a truncated archive. */
class Reader {
  private buffered: Buffer[] = [];
  private length = 0;
  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.length < n) {
      const next = await this.source.next();
      if (next.done) return false;
      this.buffered.push(next.value);
      this.length += next.value.length;
    }
    return true;
  }

  private takeBuffered(n: number): Buffer {
    this.length -= n;
    const first = this.buffered[0];
    if (first && first.length >= n) {
      this.buffered[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const all = Buffer.concat(this.buffered);
    this.buffered = [all.subarray(n)];
    return all.subarray(0, n);
  }

  async take(n: number, what: string): Promise<Buffer> {
    if (!(await this.fill(n))) throw new BundleError(`truncated archive: it ends inside ${what}`);
    return this.takeBuffered(n);
  }

  /** `n` bytes as they arrive, a chunk at a time. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    for (let left = n; left > 0; ) {
      if (this.length === 0 && !(await this.fill(1))) throw new BundleError(`truncated archive: it ends inside ${what}`);
      const chunk = this.takeBuffered(Math.min(left, this.length));
      left -= chunk.length;
      yield chunk;
    }
  }
}

const skipPadding = (r: Reader, size: number, what: string) => r.take((BLOCK - (size % BLOCK)) % BLOCK, what);

/** The entry's path as '/' segments, or why it is refused. */
function checkedSegments(name: string): string[] {
  const segments = name.replace(/\/$/, '').split('/');
  if (name.startsWith('/')) throw new BundleError(`entry ${JSON.stringify(name)}: absolute path refused`);
  if (segments.some((s) => s === '..' || s === '.' || s === '' || s.includes('\0') || s.includes('\\'))) {
    throw new BundleError(`entry ${JSON.stringify(name)}: '..', '.', empty or backslash segment refused`);
  }
  return segments;
}

/**
 * Extracts the bundle `file` into the existing directory `intoDir` and returns the case directory
 * (its one top-level folder). On an error, what was written so far stays: extract into a fresh
 * temporary directory and remove it afterwards.
 */
export async function extractBundle(file: string, intoDir: string, opts: { maxBytes?: number } = {}): Promise<string> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const gunzip = createGunzip();
  // A read error of the file destroys gunzip with it, so it reaches the reader below.
  const piped = pipeline(createReadStream(file), gunzip).catch(() => undefined);
  const reader = new Reader((gunzip as AsyncIterable<Buffer>)[Symbol.asyncIterator]());
  try {
    return await extractEntries(reader, intoDir, maxBytes);
  } catch (err) {
    if (err instanceof BundleError) throw err;
    throw new BundleError(`cannot read bundle ${file}: ${errorMessage(err)}`, { cause: err });
  } finally {
    gunzip.destroy(); // whatever follows the end-of-archive blocks is not read
    await piped;
  }
}

async function extractEntries(reader: Reader, intoDir: string, maxBytes: number): Promise<string> {
  const seen = new Set<string>();
  let top: string | undefined;
  let total = 0;
  let pax = new Map<string, string>();
  for (let n = 1; ; n++) {
    const block = await reader.take(BLOCK, `header ${n} (before the end-of-archive blocks)`);
    if (block.every((b) => b === 0)) break;
    let header;
    try {
      header = parseHeader(block);
    } catch (err) {
      throw new BundleError(`malformed archive: header ${n}: ${errorMessage(err)}`);
    }
    if (header.typeflag === 'x') {
      if (header.size > MAX_PAX_BYTES) throw new BundleError(`malformed archive: pax header ${n} is ${header.size} bytes`);
      pax = parsePax(await reader.take(header.size, `pax header ${n}`));
      await skipPadding(reader, header.size, `pax header ${n}`);
      continue;
    }
    const name = pax.get('path') ?? header.name;
    const size = pax.has('size') ? Number(pax.get('size')) : header.size;
    pax = new Map();
    const type = header.typeflag === '5' ? 'directory' : header.typeflag === '0' || header.typeflag === '\0' ? 'file' : undefined;
    if (!type) throw new BundleError(`entry ${JSON.stringify(name)}: ${TYPE_NAMES[header.typeflag] ?? `type '${header.typeflag}'`} refused: a case holds only files and directories`);
    const segments = checkedSegments(name);
    top ??= segments[0];
    if (segments[0] !== top) throw new BundleError(`entry ${JSON.stringify(name)}: outside the bundle's one top-level folder ${top}`);
    const rel = segments.join('/');
    if (seen.has(rel)) throw new BundleError(`entry ${JSON.stringify(name)}: appears twice`);
    seen.add(rel);
    if (!Number.isSafeInteger(size) || size < 0) throw new BundleError(`entry ${JSON.stringify(name)}: bad size`);
    total += size;
    if (total > maxBytes) throw new BundleError(`entry ${JSON.stringify(name)}: the bundle unpacks to more than ${maxBytes} bytes`);
    const target = resolveInside(intoDir, rel);
    if (type === 'directory') {
      await mkdir(target, { recursive: true, mode: 0o755 });
      continue;
    }
    await mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    const fh = await open(target, 'wx', 0o644);
    try {
      for await (const chunk of reader.stream(size, rel)) await writeFully(fh, chunk);
    } finally {
      await fh.close();
    }
    await skipPadding(reader, size, rel);
  }
  if (top === undefined) throw new BundleError('empty archive: no case directory in it');
  return path.join(intoDir, top);
}
