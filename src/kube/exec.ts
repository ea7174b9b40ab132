// pods/exec as a stream: the operator runs its collectors in casefile's own containers (the
// ephemeral debug container, the node collector pod), never in the suspect's. Output is handed to
// the caller chunk by chunk; nothing is buffered whole except a bounded tail of stderr, and stdout
// is held back by ExecOutputPipe (the socket pauses while the caller is behind).
import { type Readable, Writable } from 'node:stream';
import { Exec, type V1Status } from '@kubernetes/client-node';
import { EXEC_ABORT_AT_BYTES, ExecOutputPipe, ExecOverflowError } from './exec-output.js';
import type { Kube } from './client.js';

export { ExecOverflowError };

const STDERR_TAIL_BYTES = 8192;

export class ExecTimeoutError extends Error {
  constructor(readonly what: string, readonly timeoutMs: number) {
    super(`${what} did not finish within ${Math.round(timeoutMs / 1000)} s`);
    this.name = 'ExecTimeoutError';
  }
}

export interface ExecResult {
  exitCode: number;
  /** The last few KiB of stderr, for the condition message and the custody record. */
  stderrTail: string;
}

export interface StreamingExec {
  /** The command's stdout; ends when the command exits or the connection closes. */
  stdout: AsyncIterable<Buffer>;
  /** Settles after stdout ended: the exit code, or an error (timeout, overflow, lost connection, exec refused). */
  result: Promise<ExecResult>;
  /** Closes the connection (the remote command then sees its stdout close). */
  abort(): void;
}

/**
 * Starts `command` (an argv array: never a shell string) in a container and streams its stdout.
 * The exit code comes from the V1Status on the status channel: Success is 0, NonZeroExitCode
 * carries it in details.causes[ExitCode]; anything else (executable not found) is an error.
 */
export async function execStream(
  kube: Kube,
  target: { namespace: string; pod: string; container: string },
  command: string[],
  timeoutMs: number,
  /** Attached as the command's stdin when given; the command sees it end when the connection closes (abort). */
  stdin?: Readable,
): Promise<StreamingExec> {
  const what = `exec ${command[0] ?? ''} in ${target.namespace}/${target.pod}/${target.container}`;
  let overflow: ExecOverflowError | undefined;
  let terminate = () => undefined as void;
  const pipe = new ExecOutputPipe((bytes) => {
    overflow = new ExecOverflowError(what, bytes, EXEC_ABORT_AT_BYTES);
    terminate();
  });
  let stderrTail = '';
  const stderr = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      callback();
    },
  });
  let status: V1Status | undefined;
  const ws = await new Exec(kube.kc)
    .exec(target.namespace, target.pod, target.container, command, pipe, stderr, stdin ?? null, false, (s) => {
      status = s;
    })
    .catch((e: unknown) => {
      // A ws ErrorEvent (not an Error) carrying only the HTTP status: 403 RBAC, 400 no such container
      // or not running.
      const message = (e as { message?: unknown } | null)?.message;
      throw new Error(`${what} refused: ${typeof message === 'string' ? message : String(e)}`);
    });

  pipe.attach(ws);
  terminate = () => ws.terminate(); // not close(): a paused socket would never read the peer's close frame
  if (overflow) terminate();
  let timedOut = false;
  const result = new Promise<ExecResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      timedOut = true;
      pipe.discard(); // a paused socket would not read the close handshake
      ws.close();
    }, timeoutMs);
    ws.on('error', (e: Error) => {
      clearTimeout(timer);
      pipe.end();
      reject(overflow ?? new Error(`${what}: connection error: ${e.message}`));
    });
    ws.on('close', () => {
      clearTimeout(timer);
      pipe.end();
      if (overflow) return reject(overflow);
      if (timedOut) return reject(new ExecTimeoutError(what, timeoutMs));
      if (!status) return reject(new Error(`${what}: connection closed without an exit status (stderr: ${stderrTail.trim() || 'empty'})`));
      if (status.status === 'Success') return resolve({ exitCode: 0, stderrTail });
      const exitCause = status.reason === 'NonZeroExitCode' ? status.details?.causes?.find((c) => c.reason === 'ExitCode') : undefined;
      if (exitCause?.message !== undefined) return resolve({ exitCode: Number(exitCause.message), stderrTail });
      reject(new Error(`${what} failed: ${status.message ?? status.reason ?? 'unknown'} (stderr: ${stderrTail.trim() || 'empty'})`));
    });
  });
  // The caller may abandon `result` while reading stdout (e.g. on a protocol error); keep Node quiet.
  result.catch(() => undefined);
  return {
    stdout: pipe.output,
    result,
    abort: () => {
      pipe.discard();
      ws.close();
    },
  };
}
