// The audit webhook endpoint: the Kubernetes API server's webhook audit backend POSTs batches of
// audit.k8s.io/v1 EventList here. Only the API server may: TLS requires a client certificate signed by
// the audit client CA, and its subject CN must be one of the allowed names (a CA shared with other
// clients would otherwise let any of them write the trail). A batch is answered 200 only once its
// records are fsynced in the store; on 5xx the API server retries it (duplicates are dropped by
// auditID when a case copies records).
import type http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { podAccessAlert } from './alert.js';
import { eventListItems, toAuditRecord, type AuditRecord } from './record.js';
import type { AppendResult } from './store.js';

export interface AuditReceiverOptions {
  tlsCert: string | Buffer;
  tlsKey: string | Buffer;
  clientCA: string | Buffer;
  /** Subject CNs of the client certificates that may post audit events. */
  allowedNames: readonly string[];
  maxBodyBytes: number;
  append: (records: AuditRecord[]) => Promise<AppendResult>;
  onBatch?: (summary: { events: number; kept: number; skipped: number; prunedSegments: number }) => void;
  /** Called for each stored record that is a signal on its own (someone got into a pod), after the fsync. */
  onPodAccess?: (record: AuditRecord) => void;
  log: Logger;
}

export function createAuditReceiver(opts: AuditReceiverOptions): https.Server {
  const server = https.createServer({ cert: opts.tlsCert, key: opts.tlsKey, ca: opts.clientCA, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    handle(req, res, opts).catch((err: unknown) => {
      opts.log.error({ err: errorMessage(err) }, 'audit batch not stored');
      reply(res, 503, `audit events not stored: ${errorMessage(err)}`);
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  server.maxConnections = 16;
  return server;
}

/** Why the client certificate may not post audit events, or undefined when it may. */
export function clientProblem(socket: TLSSocket, allowedNames: readonly string[]): string | undefined {
  if (!socket.authorized) return `client certificate not verified: ${String(socket.authorizationError ?? 'none presented')}`;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name || !allowedNames.includes(name)) return `client certificate CN ${JSON.stringify(name ?? '')} is not one of the allowed audit senders`;
  return undefined;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, opts: AuditReceiverOptions): Promise<void> {
  const problem = clientProblem(req.socket as TLSSocket, opts.allowedNames);
  if (problem) {
    opts.log.warn({ remote: req.socket.remoteAddress, problem }, 'audit post refused');
    return reply(res, 403, problem);
  }
  if (req.method !== 'POST') return reply(res, 405, 'POST an audit.k8s.io/v1 EventList');
  const body = await readBody(req, opts.maxBodyBytes);
  if (body === undefined) return reply(res, 413, `the batch is over ${opts.maxBodyBytes} bytes: lower --audit-webhook-batch-max-size or raise --audit-max-body-bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return reply(res, 400, 'the body is not JSON');
  }
  const items = eventListItems(parsed);
  if (!Array.isArray(items)) return reply(res, 400, items.error);
  const records: AuditRecord[] = [];
  for (const item of items) {
    const record = toAuditRecord(item);
    if (!('skip' in record)) records.push(record);
  }
  const result = await opts.append(records);
  opts.onBatch?.({ events: items.length, kept: result.kept, skipped: items.length - records.length + result.oversized, prunedSegments: result.prunedSegments });
  if (opts.onPodAccess) for (const record of records) if (podAccessAlert(record)) opts.onPodAccess(record);
  reply(res, 200, `${result.kept} audit record(s) stored`);
}

/** The body, or undefined once it passes `limit` (the rest is not read: the connection is closed). */
async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function reply(res: http.ServerResponse, code: number, message: string): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', connection: code === 413 ? 'close' : 'keep-alive' });
  res.end(`${message}\n`);
}
