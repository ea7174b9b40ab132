// Who may post alerts: a bearer token (Falcosidekick can send custom headers) and/or a client
// certificate signed by the configured CA (Falco's http_output can do mTLS but no headers). Either
// configured method suffices. The token file is a mounted Secret: it is re-read when its mtime or
// size changes (kubelet swaps the ..data symlink on rotation), checked at most once a second.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';

const RECHECK_MS = 1000;

/** Constant-time equality of two secrets of any length (hashes first, so lengths leak nothing). */
function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

export class TokenFile {
  private token: string | undefined;
  private stamp = '';
  private checkedAt = -Infinity;
  private loading: Promise<void> | undefined;

  constructor(
    readonly file: string,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The current token; undefined when the file is missing or empty (then no token is accepted). */
  async current(): Promise<string | undefined> {
    if (this.now() - this.checkedAt >= RECHECK_MS) {
      this.loading ??= this.reload().finally(() => (this.loading = undefined));
      await this.loading;
    }
    return this.token;
  }

  private async reload(): Promise<void> {
    this.checkedAt = this.now();
    try {
      const s = await stat(this.file);
      const stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
      if (stamp === this.stamp) return;
      const token = (await readFile(this.file, 'utf8')).trim();
      this.log.info({ file: this.file, empty: token === '' }, this.stamp ? 'intake token file changed: reloaded' : 'intake token loaded');
      this.stamp = stamp;
      this.token = token || undefined;
    } catch (err) {
      if (this.token !== undefined || this.stamp !== 'missing') this.log.error({ err, file: this.file }, 'cannot read the intake token file: refusing bearer tokens');
      this.token = undefined;
      this.stamp = 'missing';
    }
  }
}

export interface Authenticator {
  tokenFile?: TokenFile;
  /** Client certificates are requested and verified against the client CA (TLS only). */
  mutualTLS: boolean;
}

function hasPeerCertificate(socket: Partial<TLSSocket>): boolean {
  const cert = socket.getPeerCertificate?.();
  return cert !== undefined && cert !== null && typeof cert.fingerprint256 === 'string' && cert.fingerprint256 !== '';
}

/** How the request proved who it is, or undefined (401). */
export async function authenticate(req: IncomingMessage, auth: Authenticator): Promise<'client-certificate' | 'bearer-token' | undefined> {
  const socket = req.socket as Partial<TLSSocket>;
  // `authorized` alone is not proof: on a TLS session resumed from a connection that presented no
  // certificate, Node reports authorized = true with no peer certificate at all.
  if (auth.mutualTLS && socket.authorized === true && hasPeerCertificate(socket)) return 'client-certificate';
  if (auth.tokenFile) {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
    const expected = await auth.tokenFile.current();
    if (match && expected !== undefined && secretsEqual(match[1]!, expected)) return 'bearer-token';
  }
  return undefined;
}
