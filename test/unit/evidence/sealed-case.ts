// A small sealed case for the signing, bundle and verify tests: three artifacts, one with a path too
// long for a plain ustar header (bundles then need pax), and one binary.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CaseFile } from '../../../src/evidence/index.js';

export const LONG_ARTIFACT = `live/files/${'d'.repeat(120)}/dropper`;

export async function sealedCase(name = 'inv'): Promise<{ root: string; dir: string; open: () => Promise<CaseFile> }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'casefile-sealed-'));
  const open = () => CaseFile.open({ root, namespace: 'prod', name, uid: '0123456789abcdef', actor: 'test' });
  const cf = await open();
  await cf.writeText('logs/app.log', 'GET / 200\n');
  await cf.writeJSON('k8s/pod.json', { kind: 'Pod' });
  await cf.captureOnce(LONG_ARTIFACT, () => Buffer.from([0, 1, 2, 255, 10]));
  await cf.seal();
  await cf.close();
  return { root, dir: cf.dir, open };
}

/** A test key, fixed so its fingerprint can be pinned (computed with `openssl pkey -pubout -outform DER | sha256sum`). */
export const KEY_A_PEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOAh8bvuC4fUIssWLOe62WTlGhk2DMeYJ9lS0PsJwM58
-----END PRIVATE KEY-----
`;
export const KEY_A_PUBLIC_PEM = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAnZCQ/5dk1FsC6tEX+AvcmZ+hx2+cjgzMIpyg9Xn2WdI=
-----END PUBLIC KEY-----
`;
export const KEY_A_FINGERPRINT = 'sha256:9808a90c57f13ff36dc99d2b8f6564c10125b819aa764aae88c62345ead1a1c2';
