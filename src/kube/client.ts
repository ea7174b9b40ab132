// One place that knows how to talk to the API server: typed clients, merge-patch options,
// a streaming GET for logs, and error helpers that keep the server's own message.
import { createHash } from 'node:crypto';
import https from 'node:https';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import {
  ApiException,
  AdmissionregistrationV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { statusMessage } from '../errors.js';

const STREAM_IDLE_MS = 60_000;

/**
 * client-node 1.x gives every request a new https.Agent, so every API call pays a TCP and TLS handshake:
 * milliseconds each on a small node, on the path that contains a suspect. One keep-alive agent per TLS
 * identity instead (the CA, client certificate and key as the request would have used them; a bearer
 * token travels in a header, so a rotated token needs no new agent). Proxy agents are left as made.
 */
function reuseConnections(kc: KubeConfig): void {
  const agents = new Map<string, https.Agent | http.Agent>();
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    await apply(context);
    const made = context.getAgent();
    if (made?.constructor !== https.Agent && made?.constructor !== http.Agent) return;
    const o = (made as https.Agent).options;
    const hash = createHash('sha256');
    for (const part of [made.constructor.name, o.ca, o.cert, o.key, o.pfx, o.passphrase, String(o.rejectUnauthorized), o.servername]) {
      hash.update(part === undefined ? '-' : typeof part === 'string' || Buffer.isBuffer(part) ? part : JSON.stringify(part)).update('\0');
    }
    const key = hash.digest('hex');
    let agent = agents.get(key);
    if (!agent) {
      agent = made instanceof https.Agent ? new https.Agent({ ...o, keepAlive: true }) : new http.Agent({ ...(made as unknown as { options: http.AgentOptions }).options, keepAlive: true });
      agents.set(key, agent);
    }
    context.setAgent(agent);
  };
}

export class Kube {
  readonly core: CoreV1Api;
  readonly admission: AdmissionregistrationV1Api;
  readonly apps: AppsV1Api;
  readonly batch: BatchV1Api;
  readonly rbac: RbacAuthorizationV1Api;
  readonly networking: NetworkingV1Api;
  readonly authz: AuthorizationV1Api;
  readonly coordination: CoordinationV1Api;
  readonly custom: CustomObjectsApi;
  /** Pass as the last argument of a patch call to send a JSON merge patch. */
  readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  constructor(readonly kc: KubeConfig) {
    reuseConnections(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.admission = kc.makeApiClient(AdmissionregistrationV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.batch = kc.makeApiClient(BatchV1Api);
    this.rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    this.networking = kc.makeApiClient(NetworkingV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  static fromEnvironment(kubeconfigPath?: string): Kube {
    const kc = new KubeConfig();
    if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
    else kc.loadFromDefault();
    return new Kube(kc);
  }

  /**
   * An object exactly as the API server serves it (wire field names, timestamps as sent): what the case
   * file keeps. The typed clients rename fields (e.g. `from` -> `_from`) and turn timestamps into Dates.
   */
  async getJSON(path: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<Record<string, unknown>> {
    const response = await this.streamGet(path, query);
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  }

  /**
   * GET a path and hand back the response stream once the server answered 200.
   * Unlike client-node's Log helper this keeps the server's error message
   * (e.g. "previous terminated container not found"), which the case file records.
   */
  async streamGet(path: string, query: Record<string, string | number | boolean | undefined>): Promise<IncomingMessage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const options: https.RequestOptions = { method: 'GET', headers: {} };
    await this.kc.applyToHTTPSOptions(options);
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, options, (response) => {
        if (response.statusCode === 200) return resolve(response);
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (body.length < 4096) body += chunk;
        });
        response.on('end', () => reject(new ApiException(response.statusCode ?? 0, statusMessage(body), body, {})));
        response.on('error', reject);
      });
      // A stream that goes silent (a stalled proxy, a half-open connection) must not hold a worker
      // forever: the phase fails over to a retry, and what was received is kept as interrupted.
      request.setTimeout(STREAM_IDLE_MS, () => request.destroy(new Error(`no data from the API server for ${STREAM_IDLE_MS / 1000}s on ${path}`)));
      request.on('error', reject);
      request.end();
    });
  }
}

/** `containerd://3f2a…` -> `3f2a…`: the ID as cgroups, Falco and the runtime spell it. */
export function bareContainerID(id: string | undefined): string {
  const s = id ?? '';
  const i = s.indexOf('://');
  return i === -1 ? s : s.slice(i + 3);
}

export function errorCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => errorCode(err) === 404;
export const isConflict = (err: unknown): boolean => errorCode(err) === 409;
export const isForbidden = (err: unknown): boolean => errorCode(err) === 403;

/** A 404 because the object's namespace does not exist (the Status names kind `namespaces`), not a missing object or resource type. */
export function isNamespaceNotFound(err: unknown): boolean {
  if (!isNotFound(err)) return false;
  let status = (err as { body?: unknown }).body;
  if (typeof status === 'string') {
    try {
      status = JSON.parse(status);
    } catch {
      return false;
    }
  }
  return (status as { details?: { kind?: unknown } } | undefined)?.details?.kind === 'namespaces';
}

