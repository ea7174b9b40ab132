// The case-file API: case files served read-only over HTTPS, reached through the Kubernetes API server
// as an aggregated API (APIService v1alpha1.cases.casefile.dev), so a person needs no access to
// casefile's namespace. Order per request: the forwarding proxy's certificate, the user it forwards,
// the API server's authorization for that user, then the case on disk. Reading is logged and recorded
// as an Event on the Investigation: who took evidence out is part of the story.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { mayReadCaseFile } from './authorize.js';
import { findCaseDir } from './case-lookup.js';
import { caseFileSummary } from './summary.js';
import { identityFromHeaders, proxyCertificateProblem, type RequestHeaderConfig, type UserIdentity } from './front-proxy.js';
import { discoveryDocument, parseCaseApiPath, statusBody, type CaseApiRoute } from './routes.js';
import type { Kube } from '../kube/client.js';

export interface CaseApiServerOptions {
  kube: Kube;
  evidenceDir: string;
  /** The cluster's request-header settings, or undefined while they could not be read (503). */
  requestHeader: () => RequestHeaderConfig | undefined;
  /** Writes a case directory as a deterministic tar.gz. */
  writeBundle: (caseDir: string, out: Writable) => Promise<void>;
  /** Tells the Investigation's Events who read its case file. */
  onRead: (who: UserIdentity, namespace: string, name: string, what: string) => void;
  log: Logger;
}

type CaseRoute = Extract<CaseApiRoute, { kind: 'case' }>;

/**
 * A server not yet listening and without a certificate: the caller sets its TLS context (serving
 * certificate plus the request-header CA that verifies the proxy) with setSecureContext. Client
 * certificates are requested, and verified against that CA, but not required by TLS: handle() answers
 * a missing or foreign one with 401.
 */
export function createCaseApiServer(opts: CaseApiServerOptions): https.Server {
  const server = https.createServer({ requestCert: true, rejectUnauthorized: false }, (req, res) => {
    handle(req, res, opts).catch((err: unknown) => {
      opts.log.error({ err: errorMessage(err), url: req.url }, 'case-file request failed');
      if (!res.headersSent) send(res, statusBody(500, 'InternalError', `cannot serve the case file: ${errorMessage(err)}`));
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // a bundle of a large case takes as long as the network needs
  return server;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, opts: CaseApiServerOptions): Promise<void> {
  if (req.method !== 'GET') return send(res, statusBody(405, 'MethodNotAllowed', 'case files are read-only: GET only'), { allow: 'GET' });
  const config = opts.requestHeader();
  if (!config) return send(res, statusBody(503, 'ServiceUnavailable', 'casefile cannot read the cluster request-header settings yet (kube-system/extension-apiserver-authentication)'));
  const socket = req.socket as TLSSocket;
  const problem = proxyCertificateProblem(socket.authorized, socket.getPeerCertificate(), config);
  if (problem) return send(res, statusBody(401, 'Unauthorized', problem));

  const url = new URL(req.url ?? '/', 'https://casefile.invalid');
  const route = parseCaseApiPath(url.pathname);
  if (route.kind === 'discovery') return send(res, discoveryDocument());
  if (route.kind === 'not-found') return send(res, statusBody(404, 'NotFound', `no such path: ${url.pathname.slice(0, 200)}`));

  const who = identityFromHeaders(req.headersDistinct, config);
  if (!who) return send(res, statusBody(401, 'Unauthorized', 'the forwarded request names no user'));
  const decision = await mayReadCaseFile(opts.kube, who, route.namespace, route.name);
  if (!decision.allowed) {
    opts.log.warn({ user: who.user, namespace: route.namespace, name: route.name, subresource: route.subresource }, 'case-file read refused');
    const what = `investigations.casefile.dev/casefile "${route.name}" in namespace "${route.namespace}"`;
    return send(res, statusBody(403, 'Forbidden', `User "${who.user}" cannot get ${what}${decision.reason ? `: ${decision.reason}` : ''} (ClusterRole casefile-viewer grants it)`));
  }
  const uid = url.searchParams.get('uid') ?? undefined;
  const found = await findCaseDir(opts.kube, opts.evidenceDir, route.namespace, route.name, uid);
  if (!found.found) return send(res, statusBody(found.code, found.reason, found.message));
  await serveCase(res, route, found.dir, url, opts);
  opts.log.info({ user: who.user, groups: who.groups, namespace: route.namespace, name: route.name, case: found.relativeDir, subresource: route.subresource ?? 'summary' }, 'case file read');
  opts.onRead(who, route.namespace, route.name, route.subresource ?? 'summary');
}

async function serveCase(res: http.ServerResponse, route: CaseRoute, dir: string, url: URL, opts: CaseApiServerOptions): Promise<void> {
  const base = path.basename(dir);
  if (route.subresource === 'bundle') {
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-disposition': `attachment; filename="${route.namespace}-${base}.tar.gz"` });
    await opts.writeBundle(dir, res);
    return;
  }
  if (route.subresource === 'report') {
    const html = url.searchParams.get('format') === 'html';
    const file = path.join(dir, html ? 'report.html' : 'report.md');
    const size = await stat(file).then((s) => s.size, () => undefined);
    if (size === undefined) return send(res, statusBody(404, 'NotFound', `this case has no ${path.basename(file)}`));
    res.writeHead(200, { 'content-type': html ? 'text/html; charset=utf-8' : 'text/markdown; charset=utf-8', 'content-length': size });
    await pipeline(createReadStream(file), res);
    return;
  }
  send(res, await caseFileSummary(route.namespace, route.name, dir, (f) => readFile(path.join(dir, f), 'utf8')));
}

function send(res: http.ServerResponse, body: Record<string, unknown>, headers: Record<string, string> = {}): void {
  const code = typeof body.code === 'number' && body.kind === 'Status' ? body.code : 200;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
