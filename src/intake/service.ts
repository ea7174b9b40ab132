// Alert intake, wired: the HTTP(S) server (bound at start, so the port is there from the first
// moment), and, once this replica leads, the journal replay, the ResponsePolicy informers and the
// creation worker (the pod index syncs beside them). Until those are up, and on any replica that does
// not lead, intake answers 503:
// the Service's endpoints are the ready replicas, and only the leader becomes ready (its Investigation
// informer syncs), so senders reach the leader. It runs in its own thread (./service-thread.ts, started
// by ./thread.ts), with its own Kubernetes client, so alerts never wait behind reconciles.
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, GROUP, INVESTIGATION_PLURAL, RESPONSE_POLICY_PLURAL, VERSION, type Investigation } from '../api/investigation.js';
import { CLUSTER_RESPONSE_POLICY_PLURAL, type ResponsePolicy } from '../api/response-policy.js';
import type { IntakeConfig } from '../config.js';
import { customObjectSource, Informer } from '../engine/informer.js';
import type { RestClient } from '../kube/rest.js';
import { isNotFound } from '../kube/errors.js';
import type { Logger } from '../log.js';
import type { AuditAlert } from '../audit/alert.js';
import { errorMessage } from '../errors.js';
import { parseAlert, type ParsedAlert } from './alert-schema.js';
import type { IntakeObserver } from './metrics-batch.js';
import { TokenFile } from './auth.js';
import { sealedImports } from './case-file-import.js';
import { AheadIsolation, restAheadApi } from './isolate-ahead.js';
import { AlertJournal } from './journal.js';
import { journalDir } from './journal-format.js';
import { PolicyCache } from './policy-cache.js';
import { podIndexSource, PodResolver } from './pod-resolver.js';
import { alertProcessor } from './processor.js';
import { KeyedRateLimiter } from './rate-limit.js';
import { createIntakeServer, type AcceptResult } from './server.js';
import { AlertWorker, type InvestigationApi } from './worker.js';

const RETRY_MS = 5000;
/** How often the leader looks for containment made ahead that nobody claimed (./isolate-ahead.ts). */
const SWEEP_MS = 60_000;

export interface IntakeServiceDeps {
  /** The thread's own small API client (no client-node: ../kube/rest.ts). */
  api: RestClient;
  observe: IntakeObserver;
  log: Logger;
  evidenceDir: string;
  /** Each Investigation intake created, as the API server returned it. */
  onOpened?: (inv: Investigation) => void;
}

const investigations = (namespace: string) => `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${INVESTIGATION_PLURAL}`;

/** undefined for a 404 (the object is not there); any other error throws. */
async function unlessNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function investigationApi(api: RestClient): InvestigationApi {
  return {
    create: (body) => api.json<Investigation>('POST', investigations(body.metadata.namespace), { body }),
    get: (ref) => unlessNotFound(api.getJSON<Investigation>(`${investigations(ref.namespace)}/${encodeURIComponent(ref.name)}`)),
    patchAlerts: (ref, resourceVersion, alerts) =>
      api.json<Investigation>('PATCH', `${investigations(ref.namespace)}/${encodeURIComponent(ref.name)}/status`, {
        body: { apiVersion: API_VERSION, kind: 'Investigation', metadata: { resourceVersion }, status: { alerts } },
        contentType: 'application/merge-patch+json',
      }),
  };
}

export class IntakeService {
  private journal: AlertJournal | undefined;
  private readonly server: http.Server;
  private readonly policies: Informer<ResponsePolicy>;
  private readonly clusterPolicies: Informer<ResponsePolicy>;
  private readonly pods: Informer<V1Pod>;
  private readonly worker: AlertWorker;
  private readonly ahead: AheadIsolation;
  private sweeper: NodeJS.Timeout | undefined;
  private ready = false;
  private readonly accept: (alert: ParsedAlert, raw: string) => Promise<AcceptResult>;
  private stopped = false;
  private readonly log: Logger;

  constructor(
    private readonly config: IntakeConfig & { port: number },
    private readonly deps: IntakeServiceDeps,
  ) {
    const { api, observe } = deps;
    this.log = deps.log.child({ component: 'intake' });
    this.policies = new Informer<ResponsePolicy>({
      name: 'responsepolicies',
      ...customObjectSource<ResponsePolicy>(api, RESPONSE_POLICY_PLURAL),
      onChange: () => undefined, // matched on demand against the cache
      resyncMs: 0,
      log: this.log,
    });
    this.clusterPolicies = new Informer<ResponsePolicy>({
      name: CLUSTER_RESPONSE_POLICY_PLURAL,
      ...customObjectSource<ResponsePolicy>(api, CLUSTER_RESPONSE_POLICY_PLURAL),
      onChange: () => undefined,
      resyncMs: 0,
      log: this.log,
    });
    const limiter = new KeyedRateLimiter((key) =>
      key.startsWith('namespace:') ? { rate: config.namespaceRate, burst: config.namespaceBurst } : { rate: config.policyRate, burst: config.policyBurst },
    );
    this.ahead = new AheadIsolation({ api: restAheadApi(api), log: this.log });
    this.worker = new AlertWorker({
      api: investigationApi(api),
      isolateAhead: (body) => this.ahead.begin(body),
      journal: () => this.journal,
      limiter,
      log: this.log,
      onRateLimited: () => observe.outcome('rate_limited'),
      onNameTaken: () => observe.outcome('name_taken'),
      onOpened: deps.onOpened,
      onNamespaceGone: () => observe.outcome('namespace_gone'),
    });
    this.pods = new Informer<V1Pod>({
      name: 'pods',
      ...podIndexSource(api),
      onChange: () => undefined, // looked up on demand
      resyncMs: 0,
      log: this.log,
    });
    const resolver = new PodResolver({
      get: (namespace, name) => unlessNotFound(api.getJSON<V1Pod>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`)),
      list: async (): Promise<V1Pod[]> => (await api.getJSON<{ items: V1Pod[] }>('/api/v1/pods')).items,
    }, { index: this.pods });
    // Read now: a missing certificate is a start-up error naming the file, not a failing handshake later.
    const tls = config.tlsCert && config.tlsKey
      ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey), ...(config.clientCA ? { clientCA: readFileSync(config.clientCA) } : {}) }
      : undefined;
    this.accept = alertProcessor({
      resolver,
      policies: new PolicyCache({ namespaced: this.policies, cluster: this.clusterPolicies }, this.log),
      journal: () => this.journal,
      openAhead: (entries) => this.worker.openAhead(entries),
      onCommitted: (entries) => this.worker.committed(entries),
      log: this.log,
    });
    this.server = createIntakeServer({
      tls,
      auth: { tokenFile: config.tokenFile ? new TokenFile(config.tokenFile, this.log) : undefined, mutualTLS: Boolean(config.clientCA) },
      maxBodyBytes: config.maxBodyBytes,
      maxConnections: config.maxConnections,
      ready: () => this.ready,
      accept: this.accept,
      onOutcome: (outcome) => observe.outcome(outcome),
      onRequest: (seconds, code) => observe.request(seconds, code),
      log: this.log,
    });
  }

  /** Binds the port (answering 503 until this replica leads); resolves with the port bound. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port, () => {
        this.server.off('error', reject);
        const port = (this.server.address() as { port: number }).port;
        this.log.info({ port, tls: Boolean(this.config.tlsCert), mutualTLS: Boolean(this.config.clientCA), token: Boolean(this.config.tokenFile) }, 'alert intake listening');
        resolve(port);
      });
    });
  }

  /** Replays the journal, syncs the policies and starts the worker; retries until it succeeds or stop(). */
  async startLeading(): Promise<void> {
    while (!this.stopped && !this.journal) {
      try {
        this.journal = await AlertJournal.open(journalDir(this.deps.evidenceDir), { log: this.log, maxBytes: this.config.journalMaxBytes, importedCheck: () => sealedImports(this.deps.evidenceDir), onFsync: (s) => this.deps.observe.fsync(s) }, (e) =>
          this.worker.observe(e),
        );
      } catch (err) {
        this.log.error({ err, retryInMs: RETRY_MS }, 'cannot open the alert journal; intake answers 503 until it can');
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
    if (this.stopped) return;
    // The pod index syncs in the background: until it has, alerts resolve their pods by API reads.
    void this.pods.start();
    await Promise.all([this.policies.start(), this.clusterPolicies.start()]);
    if (this.stopped) return;
    this.worker.start();
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_MS).unref();
    void this.sweep();
    this.ready = true;
    this.log.info({ journal: this.journal!.dir, sequence: this.journal!.sequence }, 'alert intake ready: journal replayed, policies synced');
  }

  /**
   * An audit event that is a signal on its own (someone got into a pod: src/audit/alert.ts), from the
   * API server through the audit receiver's mutual TLS: matched against ResponsePolicies, journaled and
   * deduplicated like any alert. Before this replica leads it is not acted on (the record stays in
   * the audit store, and any case about the pod still copies it).
   */
  async acceptAuditAlert(alert: AuditAlert): Promise<void> {
    if (!this.ready) return void this.log.debug({ rule: alert.rule }, 'audit alert not acted on: intake is not ready (not leading)');
    const raw = JSON.stringify(alert);
    const parsed = parseAlert(raw);
    if (!parsed.ok) return void this.log.error({ field: parsed.field, message: parsed.message }, 'audit alert does not parse as an alert (a bug)');
    try {
      const result = await this.accept({ alert: parsed.value.alert, sender: 'audit' }, raw);
      for (const outcome of result.outcomes) this.deps.observe.outcome(outcome);
    } catch (err) {
      this.log.warn({ err: errorMessage(err), rule: alert.rule }, 'audit alert not accepted; the record stays in the audit store');
    }
  }

  /** After a stop between isolating ahead and the claim: what nobody claimed is lifted (logged inside). */
  private async sweep(): Promise<void> {
    try {
      await this.ahead.sweep();
    } catch (err) {
      this.log.warn({ err: errorMessage(err), retryInMs: SWEEP_MS }, 'could not look for containment made ahead that nobody claimed');
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.stopped = true;
    this.ready = false;
    this.server.close();
    this.policies.stop();
    this.clusterPolicies.stop();
    this.pods.stop();
    await this.worker.stop();
    await this.journal?.close();
  }
}
