// The one place that speaks HTTP to the API server without client-node: JSON requests, streamed
// GETs and watches over keep-alive connections. The intake thread uses it alone (loading client-node
// into that thread cost about 70 MB of RSS for five calls); the main thread's Kube sends its raw reads
// and watches through it. Credentials come from a function (the main thread resolves them with
// client-node's KubeConfig, so every kubeconfig form works) and are fetched again after a minute or
// after a 401, so a rotated token is picked up.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { statusMessage } from '../errors.js';

/** Plain data (it crosses into the intake thread): where the API server is and how to prove who we are. */
export interface RestCredentials {
  server: string;
  tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean; servername?: string };
  /** The Authorization header's value (a bearer token), when the identity is not the client certificate. */
  authorization?: string;
}

export type Query = Record<string, string | number | boolean | undefined>;

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchHandle {
  abort(): void;
}

/**
 * Starts a watch from `resourceVersion`. `onDone` ends the watch (with an error, or none for a clean
 * close) and may be called before the returned promise settles; a rejection also ends the watch.
 */
export type WatchFn = (
  resourceVersion: string,
  onEvent: (type: WatchEventType, obj: any) => void,
  onDone: (err?: unknown) => void,
) => Promise<WatchHandle>;

/** A non-2xx answer, shaped as client-node's ApiException is (a numeric `code`, the raw `body`), so one set of helpers reads both. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: string,
  ) {
    super(`HTTP ${code}: ${statusMessage(body)}`);
  }
}

/** Credentials are resolved again after this long: a projected token rotates, an exec plugin's expires. */
const CREDENTIALS_MAX_AGE_MS = 60_000;
/** A request or stream that goes silent this long (a stalled proxy, a half-open connection) fails. */
const IDLE_MS = 60_000;
/** A watch asks the server to close it after 5-10 minutes (as client-go); silence past that is a dead connection. */
const WATCH_IDLE_MS = 660_000;

const agents = new Map<string, http.Agent>();

/**
 * One keep-alive pool per TLS identity (the CA, client certificate and key, verification and server
 * name), for every client in this thread: client-node's typed clients (./client.ts) and RestClient. A
 * bearer token travels in a header, so a rotated token keeps its connections; a new certificate gets new ones.
 */
export function keepAliveAgent(secure: boolean, tls: https.AgentOptions): http.Agent {
  const hash = createHash('sha256');
  for (const part of [String(secure), tls.ca, tls.cert, tls.key, tls.pfx, tls.passphrase, String(tls.rejectUnauthorized !== false), tls.servername]) {
    hash.update(part === undefined ? '-' : typeof part === 'string' || Buffer.isBuffer(part) ? part : JSON.stringify(part)).update('\0');
  }
  const key = hash.digest('hex');
  let agent = agents.get(key);
  if (!agent) {
    agent = secure ? new https.Agent({ ...tls, keepAlive: true }) : new http.Agent({ keepAlive: true });
    agents.set(key, agent);
  }
  return agent;
}

interface Resolved {
  credentials: RestCredentials;
  agent: http.Agent;
  at: number;
}

interface Call {
  method: string;
  path: string;
  query?: Query;
  body?: string;
  contentType?: string;
  idleMs: number;
}

export class RestClient {
  private resolved: Resolved | undefined;
  private resolving: Promise<Resolved> | undefined;

  constructor(
    private readonly credentials: () => Promise<RestCredentials>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A JSON request; the parsed answer, or ApiError with the server's message. */
  async json<T = Record<string, unknown>>(method: string, path: string, options: { query?: Query; body?: unknown; contentType?: string } = {}): Promise<T> {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const response = await this.open({ method, path, query: options.query, body, contentType: options.contentType ?? 'application/json', idleMs: IDLE_MS });
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
  }

  getJSON<T = Record<string, unknown>>(path: string, query: Query = {}): Promise<T> {
    return this.json<T>('GET', path, { query });
  }

  /** GET a path and hand back the response stream once the server answered 200. */
  stream(path: string, query: Query = {}): Promise<IncomingMessage> {
    return this.open({ method: 'GET', path, query, idleMs: IDLE_MS });
  }

  /** A WatchFn over `path` (a collection), with bookmarks, the server's 5-10 minute timeout and `query` (e.g. a label selector). */
  watch(path: string, query: Query = {}): WatchFn {
    return async (resourceVersion, onEvent, onDone) => {
      let aborted = false;
      const response = await this.open({
        method: 'GET',
        path,
        query: { timeoutSeconds: Math.floor(300 + Math.random() * 300), ...query, watch: true, allowWatchBookmarks: true, resourceVersion },
        idleMs: WATCH_IDLE_MS,
      });
      const done = (err?: unknown) => {
        if (aborted) return;
        aborted = true;
        onDone(err);
      };
      const decoder = new StringDecoder('utf8');
      let partial = '';
      response.on('data', (chunk: Buffer) => {
        const lines = (partial + decoder.write(chunk)).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          if (aborted) return;
          if (!line.trim()) continue;
          let event: { type?: WatchEventType; object?: unknown };
          try {
            event = JSON.parse(line) as typeof event;
          } catch {
            response.destroy();
            return done(new Error(`watch of ${path}: an event that is not JSON: ${line.slice(0, 120)}`));
          }
          onEvent(event.type as WatchEventType, event.object);
        }
      });
      response.on('end', () => done());
      response.on('error', (err) => done(err));
      response.on('close', () => done(response.complete ? undefined : new Error(`watch of ${path}: the connection closed`)));
      return {
        abort: () => {
          aborted = true;
          response.destroy();
        },
      };
    };
  }

  private async open(call: Call): Promise<IncomingMessage> {
    const resolved = await this.resolve();
    const response = await this.send(resolved, call);
    if (response.statusCode !== 401) return this.accept(response, call.path);
    // A rotated or expired credential: resolve it again and try once more.
    response.resume();
    if (this.resolved === resolved) this.resolved = undefined;
    return this.accept(await this.send(await this.resolve(), call), call.path);
  }

  private accept(response: IncomingMessage, path: string): Promise<IncomingMessage> {
    const code = response.statusCode ?? 0;
    if (code >= 200 && code < 300) return Promise.resolve(response);
    return new Promise((_, reject) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < 4096) body += chunk;
      });
      response.on('end', () => reject(new ApiError(code, body)));
      response.on('error', (err) => reject(new Error(`${path}: ${err.message}`)));
    });
  }

  private send({ credentials, agent }: Resolved, call: Call): Promise<IncomingMessage> {
    const url = new URL(credentials.server.replace(/\/+$/, '') + call.path);
    for (const [key, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: http.OutgoingHttpHeaders = { Accept: 'application/json' };
    if (credentials.authorization) headers.Authorization = credentials.authorization;
    if (call.body !== undefined) {
      headers['Content-Type'] = call.contentType;
      headers['Content-Length'] = Buffer.byteLength(call.body);
    }
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, { method: call.method, headers, agent }, resolve);
      request.setTimeout(call.idleMs, () => request.destroy(new Error(`no data from the API server for ${call.idleMs / 1000}s on ${call.path}`)));
      request.on('error', reject);
      request.end(call.body);
    });
  }

  private resolve(): Promise<Resolved> {
    if (this.resolved && this.now() - this.resolved.at < CREDENTIALS_MAX_AGE_MS) return Promise.resolve(this.resolved);
    this.resolving ??= this.credentials()
      .then((credentials) => (this.resolved = { credentials, agent: keepAliveAgent(!credentials.server.startsWith('http:'), credentials.tls), at: this.now() }))
      .finally(() => (this.resolving = undefined));
    return this.resolving;
  }
}
