import { ArtifactContentError, FrameWriter } from './frames.js';
import { errorCode, errorMessage } from './procfs.js';

/** Notes held back while an artifact is open, beyond which only a count is kept (memory stays bounded). */
const MAX_DEFERRED_NOTES = 1000;

/**
 * One collector run: the frame writer, the summary counters and the notes. A note raised while an
 * artifact is open (the protocol forbids interleaving) is emitted right after that artifact closes.
 */
export class Run {
  readonly counts: Record<string, number>;
  private open = false;
  private deferred: { level: 'info' | 'warn'; message: string }[] = [];
  private dropped = 0;
  /** Sees the bytes of artifacts as they are sent (the indicator scan); `open` returns null for an artifact it skips. */
  observer: { open(artifact: string): ArtifactSink | null } | null = null;

  constructor(
    private readonly writer: FrameWriter,
    counters: string[],
  ) {
    this.counts = Object.fromEntries([...counters, 'notes', 'errors'].map((k) => [k, 0]));
  }

  count(key: string, by = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + by;
  }

  /** 'warn' notes are problems and are also counted as errors. */
  note = async (level: 'info' | 'warn', message: string): Promise<void> => {
    this.count('notes');
    if (level === 'warn') this.count('errors');
    if (!this.open) return this.writer.note(level, message);
    if (this.deferred.length < MAX_DEFERRED_NOTES) this.deferred.push({ level, message });
    else this.dropped++;
  };

  /**
   * Emits one artifact. A failing content source leaves a closed, shorter artifact and a warn
   * note; the run goes on. Returns null then.
   */
  async artifact(name: string, content: AsyncIterable<Buffer | string> | Buffer | string): Promise<{ sha256: string; bytes: number } | null> {
    this.open = true;
    let result: { sha256: string; bytes: number } | null = null;
    let failure: ArtifactContentError | null = null;
    try {
      const sink = this.observer?.open(name) ?? null;
      result = await this.writer.artifact(name, sink === null ? content : observed(content, sink));
    } catch (err) {
      if (!(err instanceof ArtifactContentError)) throw err;
      failure = err;
    } finally {
      this.open = false;
    }
    const held = this.deferred;
    const dropped = this.dropped;
    this.deferred = [];
    this.dropped = 0;
    for (const n of held) await this.writer.note(n.level, n.message);
    if (dropped > 0) await this.note('warn', `${dropped} more notes raised while writing ${name} were dropped`);
    if (failure !== null) await this.note('warn', `${name} is incomplete: ${errorMessage(failure.cause)} (closed after ${failure.sent.bytes} bytes)`);
    return result;
  }

  async done(): Promise<void> {
    await this.writer.done(this.counts);
  }
}

export interface ArtifactSink {
  write(chunk: Buffer): void;
  end(): void;
}

async function* observed(content: AsyncIterable<Buffer | string> | Buffer | string, sink: ArtifactSink): AsyncGenerator<Buffer> {
  const pieces = typeof content === 'string' || Buffer.isBuffer(content) ? [content] : content;
  try {
    for await (const piece of pieces) {
      const buf = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
      sink.write(buf);
      yield buf;
    }
  } finally {
    sink.end();
  }
}

/** Passes a stream through; a read failure becomes a note and a marker line instead of ending the run. */
export async function* streamOrNote(chunks: AsyncIterable<Buffer>, what: string, run: Run): AsyncGenerator<Buffer | string> {
  try {
    yield* chunks;
  } catch (err) {
    await run.note(errorCode(err) === 'ENOENT' ? 'info' : 'warn', `${what}: ${errorCode(err)}`);
    yield `(${what}: ${errorCode(err)})\n`;
  }
}
