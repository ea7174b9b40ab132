import { createHash } from 'node:crypto';

/**
 * The collectors' stdout protocol. Each frame is one JSON header line ending in "\n"; a data
 * header is followed by exactly `bytes` raw bytes. Artifacts are open → data* → close, one at a
 * time; notes may come between artifacts; `done` is last.
 */
export type Frame =
  | { t: 'open'; artifact: string }
  | { t: 'data'; chunk: Buffer }
  | { t: 'close'; sha256: string; bytes: number }
  | { t: 'note'; level: 'info' | 'warn'; message: string }
  | { t: 'done'; summary: Record<string, number> };

export class FrameProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameProtocolError';
  }
}

/** Thrown by FrameWriter.artifact when the content source fails: the artifact was closed with what was sent. */
export class ArtifactContentError extends Error {
  constructor(
    readonly artifact: string,
    readonly sent: { sha256: string; bytes: number },
    override readonly cause: unknown,
  ) {
    super(`${artifact}: ${cause instanceof Error ? cause.message : String(cause)} (closed after ${sent.bytes} bytes)`);
    this.name = 'ArtifactContentError';
  }
}

const MAX_DATA_BYTES = 65536;
const MAX_HEADER_BYTES = 65536;
/** A note of this many UTF-16 units, each escaped to at most 6 bytes, stays well under MAX_HEADER_BYTES. */
const MAX_NOTE_CHARS = 4096;

const NEWLINE = 0x0a;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isByteCount(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

function parseHeader(line: Buffer, artifactOpen: boolean): { t: string; header: Record<string, unknown> } {
  let header: unknown;
  try {
    header = JSON.parse(line.toString('utf8'));
  } catch {
    throw new FrameProtocolError(`frame header is not JSON: ${JSON.stringify(line.subarray(0, 80).toString('utf8'))}`);
  }
  if (!isRecord(header) || typeof header.t !== 'string') throw new FrameProtocolError('frame header has no "t"');
  const t = header.t;
  switch (t) {
    case 'open':
      if (typeof header.artifact !== 'string' || header.artifact === '') throw new FrameProtocolError('open frame without an artifact name');
      if (artifactOpen) throw new FrameProtocolError(`open of ${header.artifact} while another artifact is open`);
      break;
    case 'data':
      if (!isByteCount(header.bytes, MAX_DATA_BYTES)) throw new FrameProtocolError(`data frame with bytes out of range: ${JSON.stringify(header.bytes)}`);
      if (!artifactOpen) throw new FrameProtocolError('data frame with no open artifact');
      break;
    case 'close':
      if (!artifactOpen) throw new FrameProtocolError('close frame with no open artifact');
      if (typeof header.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(header.sha256)) throw new FrameProtocolError('close frame without a sha256');
      if (!isByteCount(header.bytes, Number.MAX_SAFE_INTEGER)) throw new FrameProtocolError('close frame with bytes out of range');
      break;
    case 'note':
      if (artifactOpen) throw new FrameProtocolError('note frame inside an open artifact');
      if ((header.level !== 'info' && header.level !== 'warn') || typeof header.message !== 'string') throw new FrameProtocolError('malformed note frame');
      break;
    case 'done':
      if (artifactOpen) throw new FrameProtocolError('done frame inside an open artifact');
      if (!isRecord(header.summary) || !Object.values(header.summary).every((v) => typeof v === 'number')) throw new FrameProtocolError('done frame without a numeric summary');
      break;
    default:
      throw new FrameProtocolError(`unknown frame type ${JSON.stringify(t)}`);
  }
  return { t, header };
}

/** Decodes a byte stream (chunks split anywhere) into frames; throws FrameProtocolError on a malformed header (> 64 KiB, bad JSON, unknown t, bytes out of range, data with no open artifact, open while open). */
export async function* decodeFrames(input: AsyncIterable<Buffer | string>): AsyncGenerator<Frame> {
  let pending: Buffer = Buffer.alloc(0);
  let dataLeft = -1; // bytes still expected for the current data frame; -1 = reading a header
  let dataParts: Buffer[] = [];
  let artifactOpen = false;
  let done = false;
  for await (const raw of input) {
    pending = pending.length === 0 ? Buffer.from(raw) : Buffer.concat([pending, Buffer.from(raw)]);
    for (;;) {
      if (dataLeft >= 0) {
        const take = Math.min(dataLeft, pending.length);
        if (take > 0) dataParts.push(pending.subarray(0, take));
        pending = pending.subarray(take);
        dataLeft -= take;
        if (dataLeft > 0) break;
        yield { t: 'data', chunk: Buffer.concat(dataParts) };
        dataParts = [];
        dataLeft = -1;
        continue;
      }
      const nl = pending.indexOf(NEWLINE);
      if (nl === -1) {
        if (pending.length > MAX_HEADER_BYTES) throw new FrameProtocolError(`frame header longer than ${MAX_HEADER_BYTES} bytes`);
        break;
      }
      if (nl > MAX_HEADER_BYTES) throw new FrameProtocolError(`frame header longer than ${MAX_HEADER_BYTES} bytes`);
      if (done) throw new FrameProtocolError('frame after done');
      const { t, header } = parseHeader(pending.subarray(0, nl), artifactOpen);
      pending = pending.subarray(nl + 1);
      if (t === 'data') {
        dataLeft = header.bytes as number;
        continue;
      }
      if (t === 'open') {
        artifactOpen = true;
        yield { t, artifact: header.artifact as string };
      } else if (t === 'close') {
        artifactOpen = false;
        yield { t, sha256: header.sha256 as string, bytes: header.bytes as number };
      } else if (t === 'note') {
        yield { t, level: header.level as 'info' | 'warn', message: header.message as string };
      } else {
        done = true;
        yield { t: 'done', summary: header.summary as Record<string, number> };
      }
    }
    // Copy the tail so a small remainder does not pin the whole input chunk.
    pending = Buffer.from(pending);
  }
  if (dataLeft >= 0) throw new FrameProtocolError(`stream ended inside a data frame (${dataLeft} bytes missing)`);
  if (pending.length > 0) throw new FrameProtocolError('stream ended inside a frame header');
}

/** Pending bytes are flushed as one data frame once they reach this size. */
const COALESCE_BYTES = 32768;

/** Encoder over a Writable that honours backpressure (await drain). */
export class FrameWriter {
  private openArtifact: string | null = null;

  constructor(private readonly out: NodeJS.WritableStream) {}

  /** Streams one artifact: hashes while writing, emits open/data.../close. Throws if another is open. */
  async artifact(name: string, content: AsyncIterable<Buffer | string> | Buffer | string): Promise<{ sha256: string; bytes: number }> {
    if (this.openArtifact !== null) throw new Error(`artifact ${this.openArtifact} is still open`);
    const openHeader = `${JSON.stringify({ t: 'open', artifact: name })}\n`;
    if (name === '' || Buffer.byteLength(openHeader) > MAX_HEADER_BYTES) throw new Error(`artifact name is empty or too long (${name.length} characters)`);
    this.openArtifact = name;
    const hash = createHash('sha256');
    let bytes = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const all = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      for (let i = 0; i < all.length; i += MAX_DATA_BYTES) {
        const chunk = all.subarray(i, i + MAX_DATA_BYTES);
        await this.write(`${JSON.stringify({ t: 'data', bytes: chunk.length })}\n`);
        await this.write(chunk);
      }
    };
    const add = async (piece: Buffer | string): Promise<void> => {
      const buf = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
      if (buf.length === 0) return;
      hash.update(buf);
      bytes += buf.length;
      pending.push(buf);
      pendingBytes += buf.length;
      if (pendingBytes >= COALESCE_BYTES) await flush();
    };
    await this.write(openHeader);
    let failure: unknown = null;
    try {
      if (typeof content === 'string' || Buffer.isBuffer(content)) await add(content);
      else for await (const piece of content) await add(piece);
    } catch (err) {
      failure = err;
    }
    await flush();
    const result = { sha256: hash.digest('hex'), bytes };
    await this.write(`${JSON.stringify({ t: 'close', ...result })}\n`);
    this.openArtifact = null;
    if (failure !== null) throw new ArtifactContentError(name, result, failure);
    return result;
  }

  /** Messages are cut at MAX_NOTE_CHARS: they quote attacker-chosen paths, and a header must stay under 64 KiB. */
  async note(level: 'info' | 'warn', message: string): Promise<void> {
    if (this.openArtifact !== null) throw new Error(`note while artifact ${this.openArtifact} is open`);
    const text = message.length > MAX_NOTE_CHARS ? `${message.slice(0, MAX_NOTE_CHARS)}... (note cut at ${MAX_NOTE_CHARS} characters)` : message;
    await this.write(`${JSON.stringify({ t: 'note', level, message: text })}\n`);
  }

  async done(summary: Record<string, number>): Promise<void> {
    if (this.openArtifact !== null) throw new Error(`done while artifact ${this.openArtifact} is open`);
    await this.write(`${JSON.stringify({ t: 'done', summary })}\n`);
  }

  private write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.out.once('error', onError);
      const flushed = this.out.write(data, (err) => {
        if (err) reject(err);
      });
      const finish = (): void => {
        this.out.removeListener('error', onError);
        resolve();
      };
      if (flushed) finish();
      else this.out.once('drain', finish);
    });
  }
}
