// The port's holder while no intake thread runs (one crashed and waits for its restart): the intake
// server itself, never ready, with the same TLS and authentication, so a sender hears what a replica
// that is not ready says (401 without credentials, else 503 with Retry-After) and retries.
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type { IntakeConfig } from '../config.js';
import type { Logger } from '../log.js';
import { TokenFile } from './auth.js';
import { createIntakeServer } from './server.js';

/** Holds the port while no thread does. */
export interface Standby {
  open(port: number): Promise<void>;
  close(): Promise<void>;
}

/** The standby: the intake server itself, never ready, with the same TLS and authentication. */
export function standbyServer(config: IntakeConfig, log: Logger): Standby {
  let server: http.Server | undefined;
  let opening: Promise<void> | undefined;
  return {
    async open(port) {
      const tls = config.tlsCert && config.tlsKey
        ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey), ...(config.clientCA ? { clientCA: readFileSync(config.clientCA) } : {}) }
        : undefined;
      const s = createIntakeServer({
        tls,
        auth: { tokenFile: config.tokenFile ? new TokenFile(config.tokenFile, log) : undefined, mutualTLS: Boolean(config.clientCA) },
        maxBodyBytes: config.maxBodyBytes,
        maxConnections: config.maxConnections,
        ready: () => false,
        accept: () => Promise.reject(new Error('the standby intake server accepts nothing')),
        log,
      });
      server = s;
      opening = new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, () => resolve());
      });
      await opening;
    },
    async close() {
      const s = server;
      server = undefined;
      if (!s) return;
      await opening?.catch(() => undefined);
      if (!s.listening) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
  };
}
