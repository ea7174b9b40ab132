// Throwaway certificate authorities and certificates for TLS tests, made with openssl in a temp dir.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface TestPki {
  dir: string;
  /** A file of the PKI: `<name>.crt`, `<name>.key`. */
  file(name: string): Promise<Buffer>;
  ca(name: string): void;
  /** A certificate with common name `cn` (default: `name`) signed by CA `ca`, with openssl x509 extensions `ext`. */
  issue(name: string, ca: string, ext: string, cn?: string): Promise<void>;
  remove(): Promise<void>;
}

export async function testPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-pki-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  return {
    dir,
    file: (name) => readFile(path.join(dir, name)),
    ca(name) {
      openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`);
    },
    async issue(name, ca, ext, cn = name) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
      await writeFile(path.join(dir, `${name}.ext`), `${ext}\n`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
