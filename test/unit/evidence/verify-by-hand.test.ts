// docs/verify-by-hand.md promises that a reviewer can check a case with bash, sha256sum, jq and openssl
// alone. This runs the doc's own ```bash blocks, unchanged, on a case written and signed by casefile's
// store: they must pass on it and fail on each tampered copy.
import { spawnSync } from 'node:child_process';
import { createHash, sign } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CaseFile } from '../../../src/evidence/index.js';
import { generateSigningKeyPem, signaturePayload, signCase, signingKeyFromPem, type SignatureFile, type SigningKey } from '../../../src/evidence/signing.js';
import { KEY_A_FINGERPRINT, KEY_A_PEM } from './sealed-case.js';

const DOC = path.join(process.cwd(), 'docs/verify-by-hand.md');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const missingTools = ['bash', 'sha256sum', 'jq', 'openssl'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const describeIfTools = missingTools.length === 0 ? describe : describe.skip;

let tmp: string;
let sealedCase: string;
let script: string;

beforeAll(async () => {
  const blocks = [...(await readFile(DOC, 'utf8')).matchAll(/^```bash\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  script = blocks.join('\n');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-by-hand-'));
  const cf = await CaseFile.open({ root: path.join(tmp, 'root'), namespace: 'prod', name: 'inv', uid: '0123456789abcdef', actor: 'test' });
  await cf.writeText('logs/app.log', 'GET / 200\n');
  await cf.writeJSON('k8s/pod.yaml', { kind: 'Pod' });
  await cf.writeText('live/files/tmp/dropper', 'x'.repeat(100_000));
  await cf.record('negative-finding', { summary: 'no previous container' });
  await cf.seal();
  const { sha256, bytes } = await signCase(cf.dir, signingKeyFromPem(KEY_A_PEM));
  await cf.recordSignature(sha256, bytes, { keyFingerprint: KEY_A_FINGERPRINT });
  await cf.close();
  sealedCase = cf.dir;
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function runDocOn(tamper: (dir: string) => Promise<void>): Promise<{ status: number | null; stderr: string }> {
  const dir = await mkdtemp(path.join(tmp, 'copy-'));
  await cp(sealedCase, dir, { recursive: true });
  await tamper(dir);
  const r = spawnSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, TRUSTED_KEY_FINGERPRINT: KEY_A_FINGERPRINT } });
  return { status: r.status, stderr: `${r.stdout}${r.stderr}` };
}

async function edit(dir: string, rel: string, change: (text: string) => string): Promise<void> {
  const file = path.join(dir, rel);
  await writeFile(file, change(await readFile(file, 'utf8')));
}

/** Rewrites the sealed record's hash and re-links every line after it, as anyone can (the chain has no key). */
const forgeSealed = (dir: string, manifest: string) =>
  edit(dir, 'custody.jsonl', (t) => {
    const lines = t.replace(/("action":"sealed","artifact":"MANIFEST.sha256","sha256":")[0-9a-f]{64}/, `$1${sha(manifest)}`).split('\n');
    for (let i = 1; i < lines.length - 1; i++) lines[i] = lines[i]!.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${sha(lines[i - 1]!)}"`);
    return lines.join('\n');
  });

/** Every line's seq set to its line number (after a line was cut). */
const renumber = (t: string) => t.replace(/^\{"seq":\d+,/gm, (() => {
  let n = 0;
  return () => `{"seq":${++n},`;
})());

/** The signature file's fields (with `override`) signed again by `key`, as its holder could. */
function resign(s: Record<string, unknown>, key: SigningKey, override: Partial<SignatureFile> = {}): Record<string, unknown> {
  const fields = { ...(s as unknown as SignatureFile), keyFingerprint: key.fingerprint, publicKey: key.publicKeyPem, ...override };
  return { ...fields, signature: sign(null, signaturePayload(fields), key.privateKey).toString('base64') };
}

/** A signature file edited with jq-like precision. */
const editSignature = (dir: string, change: (s: Record<string, unknown>) => Record<string, unknown>) =>
  edit(dir, 'MANIFEST.sha256.sig', (t) => `${JSON.stringify(change(JSON.parse(t) as Record<string, unknown>), null, 2)}\n`);

describeIfTools('docs/verify-by-hand.md', () => {
  test('the doc has the six checks as bash blocks', () => {
    expect(script).toContain('sha256sum --check');
    expect(script).toContain('custody.jsonl');
    expect(script).toContain('openssl pkeyutl -verify');
    expect(script.match(/^set -euo pipefail$/m)).not.toBeNull();
  });

  test('passes on the case as sealed', async () => {
    expect(await runDocOn(async () => undefined)).toEqual({ status: 0, stderr: '' });
  });

  test.each<[string, (dir: string) => Promise<void>, RegExp]>([
    ['an artifact edited', (d) => edit(d, 'logs/app.log', () => 'GET /admin 200\n'), /logs\/app\.log: FAILED/],
    ['an artifact and its manifest line edited', async (d) => {
      await edit(d, 'logs/app.log', () => 'GET /admin 200\n');
      await edit(d, 'MANIFEST.sha256', (t) => t.replace(sha('GET / 200\n'), sha('GET /admin 200\n')));
    }, /is not the sealed manifest/],
    ['an artifact, its manifest line and the sealed hash edited', async (d) => {
      await edit(d, 'logs/app.log', () => 'GET /admin 200\n');
      await edit(d, 'MANIFEST.sha256', (t) => t.replace(sha('GET / 200\n'), sha('GET /admin 200\n')));
      await forgeSealed(d, await readFile(path.join(d, 'MANIFEST.sha256'), 'utf8'));
    }, /^< [0-9a-f]{64} {2}logs\/app\.log$/m],
    ['the manifest reordered after sealing', (d) => edit(d, 'MANIFEST.sha256', (t) => `${t.trimEnd().split('\n').reverse().join('\n')}\n`), /is not the sealed manifest/],
    ['a manifest line removed and the sealed hash forged', async (d) => {
      await edit(d, 'MANIFEST.sha256', (t) => t.replace(/^.* {2}k8s\/pod\.yaml\n/m, ''));
      await forgeSealed(d, await readFile(path.join(d, 'MANIFEST.sha256'), 'utf8'));
    }, /^> [0-9a-f]{64} {2}k8s\/pod\.yaml$/m],
    ['a custody line removed', (d) => edit(d, 'custody.jsonl', (t) => t.split('\n').filter((_, i) => i !== 1).join('\n')), /custody\.jsonl line 2: expected seq 2/],
    ['a custody line edited', (d) => edit(d, 'custody.jsonl', (t) => t.replace('"bytes":10,', '"bytes":11,')), /custody\.jsonl line \d+: expected seq \d+ and prev/],
    ['a forged first custody line', (d) => edit(d, 'custody.jsonl', (t) => t.replace(/"prev":"0{64}"/, `"prev":"${sha('cut')}"`)), /custody\.jsonl line 1: expected seq 1 and prev 0{64}/],
    ['the custody log cut inside a line', (d) => edit(d, 'custody.jsonl', (t) => t.slice(0, -5)), /last line is incomplete/],
    ['the sealed record removed', (d) => edit(d, 'custody.jsonl', (t) => t.replace(/^.*"action":"sealed".*\n/m, '')), /custody\.jsonl line \d+: expected seq/],
    ['a file planted in the case', (d) => writeFile(path.join(d, 'logs/planted.log'), 'x'), /^< logs\/planted\.log$/m],
    ['a symlink planted in the case', (d) => symlink('/etc/passwd', path.join(d, 'logs/passwd')), /not a regular file or directory: \.\/logs\/passwd/],
    ['a signed field edited', (d) => editSignature(d, (s) => ({ ...s, signedAt: '2030-01-01T00:00:00.000Z' })), /MANIFEST\.sha256\.sig: the signature does not verify/],
    ['another key put in the signature file', (d) => editSignature(d, (s) => ({ ...s, publicKey: signingKeyFromPem(generateSigningKeyPem()).publicKeyPem })), /MANIFEST\.sha256\.sig: the signature does not verify/],
    ['the case re-signed by another key', (d) => editSignature(d, (s) => resign(s, signingKeyFromPem(generateSigningKeyPem()))), /MANIFEST\.sha256\.sig: signed by an untrusted key sha256:[0-9a-f]{64}/],
    ['the fingerprint alone changed, re-signed', (d) => editSignature(d, (s) => resign(s, signingKeyFromPem(KEY_A_PEM), { keyFingerprint: `sha256:${'0'.repeat(64)}` })), /keyFingerprint is not its publicKey's/],
    ['the manifest re-sealed and the chain re-linked', async (d) => {
      await edit(d, 'MANIFEST.sha256', (t) => t.replace(/^.* {2}k8s\/pod\.yaml\n/m, ''));
      await edit(d, 'custody.jsonl', (t) => t.replace(/^.*"artifact":"k8s\/pod\.yaml".*\n/m, ''));
      await edit(d, 'custody.jsonl', (t) => renumber(t));
      await forgeSealed(d, await readFile(path.join(d, 'MANIFEST.sha256'), 'utf8'));
      await unlink(path.join(d, 'k8s/pod.yaml'));
    }, /MANIFEST\.sha256 is not the signed manifest/],
    ['the sealed record edited and the chain re-linked', (d) => edit(d, 'custody.jsonl', (t) => {
      const lines = t.replace(/("action":"sealed".*"detail":\{"artifacts":)\d+/, '$19').split('\n');
      for (let i = 1; i < lines.length - 1; i++) lines[i] = lines[i]!.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${sha(lines[i - 1]!)}"`);
      return lines.join('\n');
    }), /custody\.jsonl line \d+ is not the signed custody head/],
  ])('fails on %s', async (_what, tamper, says) => {
    const r = await runDocOn(tamper);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(says);
  });
});

if (missingTools.length > 0) {
  test.skip(`docs/verify-by-hand.md not run: ${missingTools.join(', ')} not installed`, () => undefined);
}
