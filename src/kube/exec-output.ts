// Backpressure between an exec connection and the reader of its stdout. The Kubernetes client writes
// every stdout frame into the stream it was given and ignores the answer, so a collector that writes
// faster than the case file can take would otherwise grow the operator's heap without bound. Past
// pauseAtBytes unread the WebSocket is paused (TCP then stops the remote command's writes) until the
// reader catches up; past abortAtBytes (frames already in flight when it paused, or a source that
// cannot pause) the exec is given up with ExecOverflowError, keeping what was read.
import { Readable, Writable } from 'node:stream';

export const EXEC_PAUSE_AT_BYTES = 1024 * 1024;
export const EXEC_ABORT_AT_BYTES = 16 * 1024 * 1024;

export class ExecOverflowError extends Error {
  constructor(readonly what: string, readonly bufferedBytes: number, readonly limitBytes: number) {
    super(`${what}: stopped reading: ${bufferedBytes} bytes of output were waiting to be written to the case file (limit ${limitBytes}); what was written before is kept`);
    this.name = 'ExecOverflowError';
  }
}

/** The part of a WebSocket the pipe needs. */
export interface PausableSource {
  pause(): void;
  resume(): void;
}

/** Hand `pipe` to the client as the stdout sink; read `pipe.output`; `attach` the connection once it exists. */
export class ExecOutputPipe extends Writable {
  readonly output: Readable;
  private source: PausableSource | undefined;
  private paused = false;
  private dropping = false;
  overflowed: number | undefined;

  constructor(
    private readonly onOverflow: (bufferedBytes: number) => void,
    private readonly limits = { pauseAtBytes: EXEC_PAUSE_AT_BYTES, abortAtBytes: EXEC_ABORT_AT_BYTES },
  ) {
    super();
    this.output = new Readable({ highWaterMark: limits.pauseAtBytes, read: () => this.resumeSource() });
    // A frame the client writes after the connection ended (write after end) is dropped, not a crash.
    this.on('error', () => undefined);
  }

  attach(source: PausableSource): void {
    this.source = source;
    if (this.paused) source.pause();
  }

  /** The reader is gone: drop whatever still arrives, and let the connection run to its close. */
  discard(): void {
    this.dropping = true;
    this.resumeSource();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.dropping || this.overflowed !== undefined) return callback();
    if (!this.output.push(chunk)) this.pauseSource();
    const buffered = this.output.readableLength;
    if (buffered > this.limits.abortAtBytes) {
      this.overflowed = buffered;
      this.onOverflow(buffered);
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.output.push(null);
    callback();
  }

  private pauseSource(): void {
    if (this.paused) return;
    this.paused = true;
    this.source?.pause();
  }

  private resumeSource(): void {
    if (!this.paused) return;
    this.paused = false;
    this.source?.resume();
  }
}
