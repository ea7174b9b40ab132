// The intake endpoint: HTTP(S) on its own port, separate from /healthz and /metrics. It authenticates
// first (nothing is read from an unauthenticated request), then answers precisely: 415 for Falco's
// plain-text output, 413 past the size cap (reading stops there), 400 naming the bad field, 503 when
// this replica cannot take alerts, and 202 only once `accept` has made the alert durable. Evidence
// capture never happens on this path.
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../log.js';
import { parseAlert, type ParsedAlert } from './alert-schema.js';
import { authenticate, type Authenticator } from './auth.js';

const INTAKE_PATHS = new Set(['/', '/alerts']);

export type IntakeOutcome =
  | 'accepted'
  | 'unauthenticated'
  | 'invalid'
  | 'too_large'
  | 'unsupported_media_type'
  | 'no_pod'
  | 'unmatched'
  | 'matched'
  | 'dry_run'
  | 'rate_limited'
  | 'name_taken'
  | 'namespace_gone'
  | 'journal_full';

export interface AcceptResult {
  /** Outcomes to count (e.g. accepted + matched, or no_pod). */
  outcomes: IntakeOutcome[];
  body: Record<string, unknown>;
}

/** Thrown by `accept` when the alert cannot be made durable or resolved right now: 503, the sender may retry. */
export class IntakeUnavailableError extends Error {
  /** `reason`: a machine-readable cause in the 503 body (and an outcome to count), e.g. journal_full. */
  constructor(message: string, readonly reason?: 'journal_full') {
    super(message);
  }
}

export interface IntakeServerOptions {
  tls?: { cert: Buffer; key: Buffer; clientCA?: Buffer };
  auth: Authenticator;
  maxBodyBytes: number;
  /** Open connections at most; more are closed on arrival. Default 256. */
  maxConnections?: number;
  /** Time a client has to send a request's headers (10 s) and the whole request (30 s): a slow client cannot hold a connection. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** False while this replica does not lead (or has not replayed the journal yet): 503. */
  ready: () => boolean;
  accept: (alert: ParsedAlert, raw: string) => Promise<AcceptResult>;
  onOutcome?: (outcome: IntakeOutcome) => void;
  onRequest?: (seconds: number, code: number) => void;
  log: Logger;
}

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json$/;

/** A server for the intake endpoint, not yet listening. Client certificates are verified but not required by TLS: an unverified one gets 401. */
const KEEP_ALIVE_MS = 120_000;

export function createIntakeServer(opts: IntakeServerOptions): http.Server {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = performance.now();
    res.on('finish', () => opts.onRequest?.((performance.now() - started) / 1000, res.statusCode));
    handle(req, res, opts).catch((err: unknown) => {
      opts.log.error({ err }, 'intake request failed');
      if (!res.headersSent) send(res, 500, { status: 'error', message: 'internal error; the alert was not accepted' });
      else res.destroy();
    });
  };
  // Timeouts are checked this often (Node's default, 30 s, would let a slow client hold a connection 4x longer than the header timeout).
  const checking = { connectionsCheckingInterval: Math.min(1000, opts.headersTimeoutMs ?? 1000) };
  const server = opts.tls
    ? https.createServer(
        {
          ...checking,
          cert: opts.tls.cert,
          key: opts.tls.key,
          ...(opts.tls.clientCA ? { ca: opts.tls.clientCA, requestCert: true, rejectUnauthorized: false } : {}),
        },
        handler,
      )
    : http.createServer(checking, handler);
  // Senders keep connections open (Go's default idle timeout is 90 s) and do not retry a POST that
  // hits a connection the server closed at that instant: close idle connections later than they do.
  // Idle connections cost a socket, not a buffer, and there are at most maxConnections of them.
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = opts.headersTimeoutMs ?? 10_000;
  server.requestTimeout = opts.requestTimeoutMs ?? 30_000;
  server.maxConnections = opts.maxConnections ?? 256;
  return server;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, opts: IntakeServerOptions): Promise<void> {
  const count = (o: IntakeOutcome) => opts.onOutcome?.(o);
  const path = (req.url ?? '/').split('?')[0]!;
  if (!INTAKE_PATHS.has(path)) return send(res, 404, { status: 'not_found', message: 'POST alerts to / or /alerts' });
  if (req.method !== 'POST') return send(res, 405, { status: 'method_not_allowed', message: 'POST a Falco alert as JSON' }, { allow: 'POST' });

  const how = await authenticate(req, opts.auth);
  if (!how) {
    count('unauthenticated');
    opts.log.warn({ remote: req.socket.remoteAddress, userAgent: req.headers['user-agent'] }, 'intake: unauthenticated request refused');
    return send(res, 401, { status: 'unauthenticated', message: authHint(opts.auth) }, { 'www-authenticate': 'Bearer realm="casefile-intake"' }, true);
  }
  if (!opts.ready()) {
    return send(res, 503, { status: 'unavailable', message: 'this replica cannot take alerts now (it is not the leader, is replaying its journal, or intake is restarting); retry' }, { 'retry-after': '1' }, true);
  }

  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!JSON_TYPE.test(type)) {
    count('unsupported_media_type');
    const message =
      type === 'text/plain'
        ? 'got text/plain: Falco sends that when json_output is false; set json_output: true in falco.yaml (with http_output enabled) so alerts arrive as JSON'
        : `Content-Type must be application/json, got ${type || 'none'}`;
    return send(res, 415, { status: 'unsupported_media_type', message }, {}, true);
  }

  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > opts.maxBodyBytes) {
    count('too_large');
    return send(res, 413, { status: 'too_large', message: `body of ${declared} bytes exceeds the limit of ${opts.maxBodyBytes}` }, {}, true);
  }
  const raw = await readCapped(req, opts.maxBodyBytes);
  if (raw === undefined) {
    count('too_large');
    return send(res, 413, { status: 'too_large', message: `body exceeds the limit of ${opts.maxBodyBytes} bytes` }, {}, true);
  }

  const parsed = parseAlert(raw, req.headers['user-agent']);
  if (!parsed.ok) {
    count('invalid');
    return send(res, 400, { status: 'invalid', field: parsed.field, message: parsed.message });
  }
  let result: AcceptResult;
  try {
    result = await opts.accept(parsed.value, raw);
  } catch (err) {
    if (!(err instanceof IntakeUnavailableError)) throw err;
    opts.log.warn({ err: err.message, reason: err.reason }, 'intake: alert not accepted, sender told to retry');
    if (err.reason) count(err.reason);
    return send(res, 503, { status: 'unavailable', ...(err.reason ? { reason: err.reason } : {}), message: err.message }, { 'retry-after': err.reason === 'journal_full' ? '30' : '1' });
  }
  for (const o of result.outcomes) count(o);
  send(res, 202, result.body);
}

function authHint(auth: Authenticator): string {
  const ways = [auth.tokenFile ? 'an Authorization: Bearer token' : undefined, auth.mutualTLS ? 'a client certificate from the configured CA' : undefined].filter(Boolean);
  return `authentication required: ${ways.join(' or ')}`;
}

/** The body as UTF-8, or undefined as soon as it exceeds `max` bytes (the rest is never read). */
function readCapped(req: http.IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > max) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/** `close`: the request body may be unread; end the connection rather than parse the rest as a next request. */
function send(res: http.ServerResponse, code: number, body: Record<string, unknown>, headers: Record<string, string> = {}, close = false): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...(close ? { connection: 'close' } : {}), ...headers });
  res.end(text, () => {
    if (close) res.req.socket.destroySoon?.();
  });
}
