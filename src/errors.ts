// The error vocabulary shared by the operator, its phases and casefile's collectors: one errorMessage,
// and the three signals a worker gives the reconciler (cf. controller-runtime's TerminalError and
// Result.RequeueAfter). Workers throw; src/engine/outcome.ts decides what each means.
// No Kubernetes client import here: the collectors in the debug image use this file too.

/** Cannot progress without a change (to the spec, RBAC, the cluster): the condition turns False with `reason`, no retry. */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
  constructor(
    message: string,
    readonly reason = 'Failed',
  ) {
    super(message);
  }
}

/** Not done yet and nothing is wrong (a pod still starting, a namespace still terminating): look again after `afterMs`. */
export class RequeueAfter extends Error {
  override readonly name = 'RequeueAfter';
  constructor(
    message: string,
    readonly afterMs: number,
    readonly reason = 'Waiting',
  ) {
    super(message);
  }
}

/** Transient trouble (API unavailable, conflict): the condition stays Unknown and the key is retried with backoff. */
export class RetryableError extends Error {
  override readonly name = 'RetryableError';
  constructor(
    message: string,
    readonly reason = 'Retrying',
  ) {
    super(message);
  }
}

/** `err` with what was being done prefixed to its message; its class (and so its verdict) is kept as its cause. */
export class StepError extends Error {
  override readonly name = 'StepError';
  constructor(
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(`${step}: ${errorMessage(cause)}`);
  }
}

export function during(step: string, err: unknown): StepError {
  return new StepError(step, err);
}

/** The innermost error of a `during` chain: the one whose class and status code decide. */
export function rootCause(err: unknown): unknown {
  let e = err;
  while (e instanceof StepError) e = e.cause;
  return e;
}

interface ApiLike {
  code: number;
  body?: unknown;
  message: string;
}

/** client-node's ApiException, recognised by shape (this file must not import the client). */
function isApiLike(err: unknown): err is ApiLike {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'body' in err;
}

/** The API server's own explanation when there is one, else the error's message (errno code first). */
export function errorMessage(err: unknown): string {
  if (isApiLike(err)) {
    const body = err.body;
    if (typeof body === 'string') return `${err.code}: ${statusMessage(body)}`;
    const message = (body as { message?: string } | undefined)?.message;
    if (message) return `${err.code}: ${message}`;
    return `${err.code}: ${err.message.split('\n')[0]}`;
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return typeof code === 'string' && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** The `message` of a Kubernetes Status body, else the start of the raw text. */
export function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: string };
    if (status.message) return status.message;
  } catch {
    // not a Status object: fall through to the raw text
  }
  return body.slice(0, 512) || 'no response body';
}
