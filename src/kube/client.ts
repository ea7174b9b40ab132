// One place that knows how to talk to the API server with client-node: typed clients, merge-patch
// options, and the raw reads, streams and watches that go through ./rest.ts.
import https from 'node:https';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import {
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
import { keepAliveAgent, RestClient, type Query, type RestCredentials, type WatchFn } from './rest.js';

/**
 * client-node 1.x gives every request a new https.Agent, so every API call pays a TCP and TLS handshake:
 * milliseconds each on a small node, on the path that contains a suspect. Each request gets the shared
 * keep-alive agent of its TLS identity instead (./rest.ts). Proxy agents are left as made.
 */
function reuseConnections(kc: KubeConfig): void {
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    await apply(context);
    const made = context.getAgent();
    if (made?.constructor !== https.Agent && made?.constructor !== http.Agent) return;
    context.setAgent(keepAliveAgent(made instanceof https.Agent, (made as https.Agent).options));
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
  /** Raw reads and watches: wire JSON, streams, one keep-alive pool. */
  readonly rest: RestClient;
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
    this.rest = new RestClient(() => restCredentials(kc));
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
  getJSON(path: string, query: Query = {}): Promise<Record<string, unknown>> {
    return this.rest.getJSON(path, query);
  }

  /**
   * GET a path and hand back the response stream once the server answered 200. Unlike client-node's
   * Log helper this keeps the server's error message (e.g. "previous terminated container not found"),
   * which the case file records.
   */
  streamGet(path: string, query: Query): Promise<IncomingMessage> {
    return this.rest.stream(path, query);
  }

  /** A watch of a collection such as `/apis/casefile.dev/v1alpha1/investigations` (see RestClient.watch). */
  watch(path: string, query: Query = {}): WatchFn {
    return this.rest.watch(path, query);
  }
}

/**
 * What ./rest.ts needs to reach the API server as this kubeconfig's identity, as plain data: client-node
 * resolves it (CA and certificate files, an in-cluster token file, an exec plugin), so every form a
 * kubeconfig can take works, and the intake thread needs no client-node of its own.
 */
export async function restCredentials(kc: KubeConfig): Promise<RestCredentials> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  if (cluster.proxyUrl) throw new Error(`kubeconfig cluster ${cluster.name} goes through a proxy (${cluster.proxyUrl}), which casefile's API client does not support`);
  const options: https.RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(options);
  const text = (v: unknown) => (v === undefined || v === null ? undefined : Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'string' ? v : undefined);
  const authorization = (options.headers as Record<string, unknown>).Authorization;
  return {
    server: cluster.server,
    tls: { ca: text(options.ca), cert: text(options.cert), key: text(options.key), rejectUnauthorized: options.rejectUnauthorized !== false, servername: options.servername ?? undefined },
    ...(typeof authorization === 'string' ? { authorization } : {}),
  };
}

