// `casefile verify` / `kubectl casefile verify` (both call verifyAndReport): a directory or a bundle,
// --key and --require-signature, the failing file named, the exit code.
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { verifyAndReport } from '../../../src/cli/verify.js';
import { writeBundle } from '../../../src/evidence/bundle.js';
import { generateSigningKeyPem, signCase, signingKeyFromPem } from '../../../src/evidence/signing.js';
import { KEY_A_FINGERPRINT, KEY_A_PEM, KEY_A_PUBLIC_PEM, sealedCase } from '../evidence/sealed-case.js';

let tmp: string;
let signedDir: string;
let unsignedDir: string;
let bundle: Buffer;
let keyA: string;
let keyB: string;
let out: string[];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-verify-cli-'));
  const signed = await sealedCase('signed');
  const unsigned = await sealedCase('unsigned');
  await signCase(signed.dir, signingKeyFromPem(KEY_A_PEM));
  signedDir = path.join(tmp, path.basename(signed.dir));
  unsignedDir = path.join(tmp, path.basename(unsigned.dir));
  await cp(signed.dir, signedDir, { recursive: true });
  await cp(unsigned.dir, unsignedDir, { recursive: true });
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  await writeBundle(signedDir, sink);
  bundle = Buffer.concat(chunks);
  keyA = path.join(tmp, 'a.pub.pem');
  keyB = path.join(tmp, 'b.pub.pem');
  await writeFile(keyA, KEY_A_PUBLIC_PEM);
  await writeFile(keyB, signingKeyFromPem(generateSigningKeyPem()).publicKeyPem);
  await rm(signed.root, { recursive: true, force: true });
  await rm(unsigned.root, { recursive: true, force: true });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  out = [];
  const capture = (...args: unknown[]) => void out.push(args.join(' '));
  jest.spyOn(console, 'log').mockImplementation(capture);
  jest.spyOn(console, 'error').mockImplementation(capture);
});
afterEach(() => {
  jest.restoreAllMocks();
});

const bundleFile = async (bytes: Buffer) => {
  const file = path.join(await mkdtemp(path.join(tmp, 'b-')), 'case.tar.gz');
  await writeFile(file, bytes);
  return file;
};

describe('verifyAndReport', () => {
  test('a signed bundle with its key: exit 0, the temporary directory removed', async () => {
    const before = await readdir(os.tmpdir());
    expect(await verifyAndReport(await bundleFile(bundle), { keys: [keyA] })).toBe(0);
    expect(out).toEqual([expect.stringMatching(new RegExp(`^OK signed by ${KEY_A_FINGERPRINT} at \\d{4}-`)), expect.stringMatching(/^OK 3 artifact\(s\) verified in .*case\.tar\.gz$/)]);
    expect((await readdir(os.tmpdir())).filter((d) => d.startsWith('casefile-verify-') && !before.includes(d))).toEqual([]);
  });

  test('one byte changed in an artifact inside the bundle: exit 1, the file named', async () => {
    const tar = gunzipSync(bundle);
    const at = tar.indexOf('GET / 200');
    tar[at + 4] = 'X'.charCodeAt(0);
    expect(await verifyAndReport(await bundleFile(gzipSync(tar)), { keys: [keyA] })).toBe(1);
    expect(out[0]).toMatch(/^FAIL logs\/app\.log: SHA-256 [0-9a-f]{64} does not match the manifest/);
    expect(out.at(-1)).toMatch(/^FAILED 1 problem\(s\) in /);
  });

  test('a key that did not sign it: exit 1, the untrusted fingerprint named', async () => {
    expect(await verifyAndReport(signedDir, { keys: [keyB] })).toBe(1);
    expect(out[0]).toMatch(new RegExp(`^FAIL MANIFEST\\.sha256\\.sig: signed by an untrusted key ${KEY_A_FINGERPRINT} \\(trusted: sha256:[0-9a-f]{64}\\)$`));
  });

  test('a signed directory without --key: exit 0, with a warning that the signer was not checked', async () => {
    expect(await verifyAndReport(signedDir)).toBe(0);
    expect(out[1]).toMatch(/^WARN the signature was checked with the key written in MANIFEST\.sha256\.sig only/);
    expect(console.error).not.toHaveBeenCalled(); // stderr is for failures only (e2e expects it empty on a pass)
  });

  test('an unsigned case: a warning by default, a failure with --require-signature or --key', async () => {
    expect(await verifyAndReport(unsignedDir)).toBe(0);
    expect(out[0]).toBe('WARN not signed: no MANIFEST.sha256.sig (--key or --require-signature make this a failure)');
    expect(console.error).not.toHaveBeenCalled();
    out.length = 0;
    expect(await verifyAndReport(unsignedDir, { requireSignature: true })).toBe(1);
    expect(out[0]).toBe('FAIL MANIFEST.sha256.sig is missing: the case is not signed');
    out.length = 0;
    expect(await verifyAndReport(unsignedDir, { keys: [keyA] })).toBe(1);
    expect(out[0]).toBe('FAIL MANIFEST.sha256.sig is missing: the case is not signed');
  });

  test('a hostile or broken bundle: exit 1 with the reason', async () => {
    expect(await verifyAndReport(await bundleFile(bundle.subarray(0, 100)))).toBe(1);
    expect(out[0]).toMatch(/^FAIL cannot read bundle .*: unexpected end of file/);
  });

  test('a path that does not exist: exit 1', async () => {
    expect(await verifyAndReport(path.join(tmp, 'no-such-case'))).toBe(1);
    expect(out[0]).toMatch(/^FAIL .*ENOENT/);
  });

  test('a --key file that is not a key: exit 1', async () => {
    const bad = path.join(tmp, 'bad.pem');
    await writeFile(bad, 'nope');
    expect(await verifyAndReport(signedDir, { keys: [bad] })).toBe(1);
    expect(out[0]).toMatch(/^FAIL --key: /);
  });
});
