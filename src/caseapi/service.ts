// Runs the case-file API: reads the cluster's request-header settings (and re-reads them, as the API
// server may rotate its front-proxy CA), keeps the TLS context that verifies the proxy in step, and
// serves on its own port. It serves on every replica, leader or not: it only reads sealed files.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type https from 'node:https';
import type { Writable } from 'node:stream';
import type { Investigation } from '../api/investigation.js';
import { GROUP, INVESTIGATION_PLURAL, VERSION } from '../api/investigation.js';
import type { EventRecorder } from '../engine/events.js';
import { errorMessage } from '../errors.js';
import type { Kube } from '../kube/client.js';
import type { Logger } from '../log.js';
import { AUTHENTICATION_CONFIGMAP, requestHeaderConfig, type RequestHeaderConfig } from './front-proxy.js';
import { createCaseApiServer } from './server.js';

const REFRESH_MS = 5 * 60_000;
const RETRY_MS = 10_000;

export interface CaseApiConfig {
  port: number;
  tlsCert: string;
  tlsKey: string;
}

export interface CaseApiDeps {
  kube: Kube;
  evidenceDir: string;
  events: EventRecorder;
  writeBundle: (caseDir: string, out: Writable) => Promise<void>;
  log: Logger;
}

export class CaseApiService {
  private readonly server: https.Server;
  private requestHeader?: RequestHeaderConfig;
  private context = '';
  private listening = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly config: CaseApiConfig,
    private readonly deps: CaseApiDeps,
  ) {
    this.server = createCaseApiServer({
      kube: deps.kube,
      evidenceDir: deps.evidenceDir,
      requestHeader: () => this.requestHeader,
      writeBundle: deps.writeBundle,
      onRead: (who, namespace, name, what) => void this.recordRead(who.user, namespace, name, what),
      log: deps.log,
    });
  }

  /** The port it listens on (the configured one, or the one the system chose for port 0); undefined before it serves. */
  get port(): number | undefined {
    const address = this.listening ? this.server.address() : null;
    return address && typeof address === 'object' ? address.port : undefined;
  }

  /** Starts serving once the certificate and the cluster's settings can be read; until then retries in the background. */
  async start(): Promise<void> {
    await this.refresh();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    if (this.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Reads the serving certificate (cert-manager or a person may rotate it) and the request-header
   * settings (the API server may rotate its front-proxy CA), applies what changed, and schedules the
   * next read: soon after a failure, every few minutes otherwise.
   */
  private async refresh(): Promise<void> {
    let next = REFRESH_MS;
    try {
      const [cert, key] = await Promise.all([readFile(this.config.tlsCert), readFile(this.config.tlsKey)]).catch((err: unknown) => {
        throw new Error(`cannot read its serving certificate (${this.config.tlsCert}, Secret casefile-case-api-tls): ${errorMessage(err)}`);
      });
      const cm = await this.deps.kube.core.readNamespacedConfigMap(AUTHENTICATION_CONFIGMAP);
      const config = requestHeaderConfig(cm.data);
      if (!config) throw new Error(`${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name} has no requestheader-client-ca-file: the API server runs without --requestheader-client-ca-file and cannot forward to aggregated APIs`);
      const context = createHash('sha256').update(cert).update(key).update(config.clientCA).digest('hex');
      if (context !== this.context) this.server.setSecureContext({ cert, key, ca: config.clientCA });
      this.context = context;
      this.requestHeader = config;
      if (!this.listening) await this.listen();
    } catch (err) {
      next = RETRY_MS;
      this.deps.log.error({ err: errorMessage(err) }, 'case-file API not serving yet; retrying');
    }
    this.timer = setTimeout(() => void this.refresh(), next);
    this.timer.unref();
  }

  private async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port, () => resolve());
    });
    this.listening = true;
    this.deps.log.info({ port: this.config.port }, 'case-file API serving');
  }

  private async recordRead(user: string, namespace: string, name: string, what: string): Promise<void> {
    try {
      const inv = (await this.deps.kube.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVESTIGATION_PLURAL, name })) as Investigation;
      this.deps.events.emit(inv, 'Normal', 'CaseFileRead', `${user} read the case file (${what}) through the case-file API`);
    } catch {
      // The Investigation is gone; the operator's log has the read.
    }
  }
}
