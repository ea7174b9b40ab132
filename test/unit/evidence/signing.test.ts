// Signing a sealed case, and one test per check of verifySignature: each expects the exact problem
// list, so removing any single check fails its test.
import { createHash, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { generateSigningKeyPem, keyFingerprint, publicKeyFromPem, signCase, signingKeyFromPem, signaturePayload, type SignatureFile } from '../../../src/evidence/signing.js';
import { verifyCaseDir } from '../../../src/evidence/verify-case.js';
import { verifySignature } from '../../../src/evidence/verify-signature.js';
import { KEY_A_FINGERPRINT, KEY_A_PEM, KEY_A_PUBLIC_PEM, sealedCase } from './sealed-case.js';

const SIG = 'MANIFEST.sha256.sig';
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const keyA = signingKeyFromPem(KEY_A_PEM);
const keyB = signingKeyFromPem(generateSigningKeyPem());

let tmp: string;
let signed: string;
let copy: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-signing-'));
  const c = await sealedCase();
  signed = c.dir;
  const { sha256, bytes, signature } = await signCase(c.dir, keyA, new Date('2026-11-20T10:30:00Z'));
  const cf = await c.open();
  await cf.recordSignature(sha256, bytes, { keyFingerprint: signature.keyFingerprint });
  await cf.close();
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(async () => {
  copy = await mkdtemp(path.join(tmp, 'copy-'));
  await cp(signed, copy, { recursive: true });
});

const readSig = async () => JSON.parse(await readFile(path.join(copy, SIG), 'utf8')) as SignatureFile;
const writeSig = (s: unknown) => writeFile(path.join(copy, SIG), `${JSON.stringify(s, null, 2)}\n`);
/** Re-signs edited fields with `key`, as someone holding that key could. */
const resign = (s: SignatureFile, key = keyA): SignatureFile => {
  const fields = { ...s, keyFingerprint: key.fingerprint, publicKey: key.publicKeyPem };
  return { ...fields, signature: sign(null, signaturePayload(fields), key.privateKey).toString('base64') };
};
const problems = async (trusted?: string[]) => (await verifySignature(copy, trusted?.map((p) => createPublicKey(p)))).problems;

describe('keys', () => {
  test('the fingerprint is sha256: and the SHA-256 of the SPKI DER public key (as openssl computes it)', () => {
    expect(keyA.fingerprint).toBe(KEY_A_FINGERPRINT);
    expect(keyFingerprint(KEY_A_PUBLIC_PEM)).toBe(KEY_A_FINGERPRINT);
    expect(keyA.publicKeyPem).toBe(KEY_A_PUBLIC_PEM);
  });

  test('refuses a key that is not Ed25519', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => signingKeyFromPem(rsa)).toThrow('the signing key is a rsa key, not Ed25519');
  });
});

describe('signCase', () => {
  test('writes the signature file with the manifest hash and the sealed custody line', async () => {
    const s = await readSig();
    const custody = (await readFile(path.join(copy, 'custody.jsonl'), 'utf8')).split('\n');
    const sealedSeq = custody.findIndex((l) => l.includes('"action":"sealed"')) + 1;
    expect(s).toMatchObject({
      format: 'casefile-signature-v1',
      algorithm: 'ed25519',
      keyFingerprint: KEY_A_FINGERPRINT,
      publicKey: KEY_A_PUBLIC_PEM,
      manifestSHA256: sha(await readFile(path.join(copy, 'MANIFEST.sha256'))),
      custodyHead: { seq: sealedSeq, sha256: sha(custody[sealedSeq - 1]!) },
      signedAt: '2026-11-20T10:30:00.000Z',
    });
    expect(await verifySignature(copy)).toEqual({ signed: true, keyFingerprint: KEY_A_FINGERPRINT, signedAt: '2026-11-20T10:30:00.000Z', problems: [] });
    expect(await verifyCaseDir(copy)).toEqual({ ok: true, problems: [], artifacts: 3 });
  });

  test('is idempotent for the same key and never overwrites for another', async () => {
    const before = await readFile(path.join(copy, SIG));
    expect((await signCase(copy, keyA)).sha256).toBe(sha(before));
    await expect(signCase(copy, keyB)).rejects.toThrow(`${SIG} already exists for another key or seal and is never overwritten`);
    expect(await readFile(path.join(copy, SIG))).toEqual(before);
  });

  test('refuses a manifest that is not the sealed one', async () => {
    await rm(path.join(copy, SIG));
    await writeFile(path.join(copy, 'MANIFEST.sha256'), 'changed\n');
    await expect(signCase(copy, keyA)).rejects.toThrow('MANIFEST.sha256 is not the sealed manifest');
  });

  test('refuses an unsealed case', async () => {
    const c = await sealedCase('unsealed');
    const custody = path.join(c.dir, 'custody.jsonl');
    const lines = (await readFile(custody, 'utf8')).split('\n').filter((l) => !l.includes('"action":"sealed"'));
    await writeFile(custody, lines.join('\n'));
    await expect(signCase(c.dir, keyA)).rejects.toThrow("custody.jsonl has no 'sealed' record");
    await rm(c.root, { recursive: true, force: true });
  });

  test('an interrupted signature temp file is dropped on reopen, and a signature file is never recorded as an artifact', async () => {
    const c = await sealedCase('interrupted');
    await signCase(c.dir, keyA);
    await writeFile(path.join(c.dir, '.partial', `${SIG}.0123456789ab.partial`), '{"torn');
    await (await c.open()).close();
    expect(await readdir(path.join(c.dir, '.partial'))).not.toContain(`${SIG}.0123456789ab.partial`);
    expect(await readFile(path.join(c.dir, 'custody.jsonl'), 'utf8')).not.toContain(SIG);
    expect(await verifyCaseDir(c.dir)).toEqual({ ok: true, problems: [], artifacts: 3 });
    await rm(c.root, { recursive: true, force: true });
  });

  test("the store keeps the 'signed' custody action for recordSignature, which records once", async () => {
    const c = await sealedCase('reserved');
    const cf = await c.open();
    await expect(cf.record('signed', {})).rejects.toThrow('custody action "signed" is reserved for the store');
    const first = await cf.recordSignature('a'.repeat(64), 10, {});
    expect(await cf.recordSignature('b'.repeat(64), 10, {})).toEqual(first);
    expect(cf.custodyRecords().filter((r) => r.action === 'signed')).toHaveLength(1);
    await cf.close();
    await rm(c.root, { recursive: true, force: true });
  });
});

describe('verifySignature reports', () => {
  test('an unsigned case as not signed, with no problem (the caller decides)', async () => {
    await rm(path.join(copy, SIG));
    expect(await verifySignature(copy)).toEqual({ signed: false, problems: [] });
  });

  test('a signature file that is not JSON', async () => {
    await writeFile(path.join(copy, SIG), 'not json');
    expect(await problems()).toEqual([`${SIG}: not valid JSON`]);
  });

  test.each<[string, (s: SignatureFile) => unknown, string]>([
    ['not an object', () => [], 'not a JSON object'],
    ['another format', (s) => ({ ...s, format: 'v2' }), 'format "v2" is not casefile-signature-v1'],
    ['another algorithm', (s) => ({ ...s, algorithm: 'rsa' }), 'algorithm "rsa" is not ed25519'],
    ['no signature', (s) => ({ ...s, signature: '' }), 'signature must be a non-empty string'],
    ['a custody head without seq', (s) => ({ ...s, custodyHead: { sha256: s.custodyHead.sha256 } }), 'custodyHead must be { seq: a positive integer, sha256: 64 hex digits }'],
    ['a custody head at seq 0', (s) => ({ ...s, custodyHead: { ...s.custodyHead, seq: 0 } }), 'custodyHead must be { seq: a positive integer, sha256: 64 hex digits }'],
    ['a custody head that is not hex', (s) => ({ ...s, custodyHead: { ...s.custodyHead, sha256: 'x' } }), 'custodyHead must be { seq: a positive integer, sha256: 64 hex digits }'],
  ])('a signature file with %s', async (_what, change, says) => {
    await writeSig(change(await readSig()));
    expect(await problems()).toEqual([`${SIG}: ${says}`]);
  });

  test('a publicKey that is not a key', async () => {
    await writeSig({ ...(await readSig()), publicKey: 'nope' });
    expect((await problems())[0]).toMatch(new RegExp(`^${SIG}: publicKey: `));
  });

  test('a publicKey swapped for another key, fingerprint left', async () => {
    await writeSig({ ...(await readSig()), publicKey: keyB.publicKeyPem });
    expect(await problems()).toEqual([`${SIG}: keyFingerprint ${KEY_A_FINGERPRINT} is not its publicKey's (${keyB.fingerprint})`]);
  });

  test('a signed field edited (signedAt)', async () => {
    await writeSig({ ...(await readSig()), signedAt: '2026-11-21T00:00:00.000Z' });
    expect(await problems()).toEqual([`${SIG}: the signature does not verify with key ${KEY_A_FINGERPRINT}: the file was changed after signing`]);
  });

  test('a manifest that is not the signed one', async () => {
    await writeFile(path.join(copy, 'MANIFEST.sha256'), 'changed\n');
    expect(await problems()).toEqual([`MANIFEST.sha256: SHA-256 ${sha('changed\n')}, not the signed manifest (${(await readSig()).manifestSHA256})`]);
  });

  test('a custody head line edited, naming the line', async () => {
    const s = await readSig();
    const file = path.join(copy, 'custody.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[s.custodyHead.seq - 1] = lines[s.custodyHead.seq - 1]!.replace('"actor":"test"', '"actor":"evil"');
    await writeFile(file, lines.join('\n'));
    expect(await problems()).toEqual([`custody.jsonl line ${s.custodyHead.seq}: SHA-256 ${sha(lines[s.custodyHead.seq - 1]!)}, not the signed custody head (${s.custodyHead.sha256})`]);
  });

  test('a custody log cut before the signed head', async () => {
    const s = await readSig();
    await writeFile(path.join(copy, 'custody.jsonl'), '');
    expect(await problems()).toEqual([`custody.jsonl line ${s.custodyHead.seq}: missing, not the signed custody head (${s.custodyHead.sha256})`]);
  });

  test("a signature file replaced by one that is valid but not the file the custody 'signed' record names", async () => {
    const s = resign({ ...(await readSig()), signedAt: '2026-11-21T00:00:00.000Z' });
    await writeSig(s);
    const line = (await readFile(path.join(copy, 'custody.jsonl'), 'utf8')).split('\n').findIndex((l) => l.includes('"action":"signed"')) + 1;
    expect(await problems()).toEqual([`${SIG}: SHA-256 ${sha(`${JSON.stringify(s, null, 2)}\n`)} is not the one recorded in custody.jsonl line ${line} ('signed')`]);
  });

  test('a case signed by a key outside the trusted ones', async () => {
    expect(await problems([keyB.publicKeyPem])).toEqual([`${SIG}: signed by an untrusted key ${KEY_A_FINGERPRINT} (trusted: ${keyB.fingerprint})`]);
    expect(await problems([keyB.publicKeyPem, KEY_A_PUBLIC_PEM])).toEqual([]);
  });
});

describe('key rotation', () => {
  test('an old case still verifies with the old public key after a new key signs new cases', async () => {
    const fresh = await sealedCase('after-rotation');
    await signCase(fresh.dir, keyB);
    const published = [KEY_A_PUBLIC_PEM, keyB.publicKeyPem].map((p) => createPublicKey(p));
    expect(await verifySignature(copy, published)).toMatchObject({ keyFingerprint: KEY_A_FINGERPRINT, problems: [] });
    expect(await verifySignature(fresh.dir, published)).toMatchObject({ keyFingerprint: keyB.fingerprint, problems: [] });
    expect((await verifySignature(copy, [createPublicKey(keyB.publicKeyPem)])).problems).toEqual([`${SIG}: signed by an untrusted key ${KEY_A_FINGERPRINT} (trusted: ${keyB.fingerprint})`]);
    await rm(fresh.root, { recursive: true, force: true });
  });
});

// Answers to the fourth round's mutation testing of verify-signature.ts (docs/testing.md): each
// expects the exact result, so a shape check, anchor or fallback that stops working fails it.
describe('verifySignature edges', () => {
  const HEAD_SHAPE = 'custodyHead must be { seq: a positive integer, sha256: 64 hex digits }';

  test('a failed check still says the case is signed, and by which key once the shape is known', async () => {
    await writeFile(path.join(copy, SIG), 'not json');
    expect(await verifySignature(copy)).toEqual({ signed: true, problems: [`${SIG}: not valid JSON`] });
    await writeSig({ format: 'v0' });
    expect(await verifySignature(copy)).toEqual({ signed: true, problems: [`${SIG}: format "v0" is not casefile-signature-v1`] });
  });

  test('a signature with a signed field edited keeps its claimed fingerprint in the result', async () => {
    await writeSig({ ...(await readSig()), signedAt: '2026-11-21T00:00:00.000Z' });
    expect(await verifySignature(copy)).toEqual({
      signed: true,
      keyFingerprint: KEY_A_FINGERPRINT,
      problems: [`${SIG}: the signature does not verify with key ${KEY_A_FINGERPRINT}: the file was changed after signing`],
    });
  });

  test.each<[string, unknown]>([
    ['a JSON string', 'casefile-signature-v1'],
    ['null', null],
    ['a number', 1],
  ])('a signature file holding %s is not a JSON object', async (_what, value) => {
    await writeSig(value);
    expect(await problems()).toEqual([`${SIG}: not a JSON object`]);
  });

  test.each(['keyFingerprint', 'publicKey', 'manifestSHA256', 'signedAt', 'signature'] as const)('%s missing, empty or not a string', async (k) => {
    const s = await readSig();
    for (const value of [undefined, '', 1, [s[k]]]) {
      await writeSig({ ...s, [k]: value });
      expect(await problems()).toEqual([`${SIG}: ${k} must be a non-empty string`]);
    }
  });

  test.each<[string, (h: SignatureFile['custodyHead']) => unknown]>([
    ['missing', () => undefined],
    ['a fractional seq', (h) => ({ ...h, seq: 1.5 })],
    ['a negative seq', (h) => ({ ...h, seq: -3 })],
    ['a seq as a string', (h) => ({ ...h, seq: String(h.seq) })],
    ['a sha256 in an array (its string form is 64 hex digits)', (h) => ({ ...h, sha256: [h.sha256] })],
    ['a sha256 with a character before the hex', (h) => ({ ...h, sha256: `x${h.sha256}` })],
    ['a sha256 with a character after the hex', (h) => ({ ...h, sha256: `${h.sha256}x` })],
    ['an upper-case sha256', (h) => ({ ...h, sha256: h.sha256.toUpperCase() })],
  ])('a custody head %s', async (_what, change) => {
    const s = await readSig();
    await writeSig({ ...s, custodyHead: change(s.custodyHead) });
    expect(await problems()).toEqual([`${SIG}: ${HEAD_SHAPE}`]);
  });

  test('a custody head at seq 1 is a valid shape: the line is then compared (re-signed by the same key)', async () => {
    const custody = (await readFile(path.join(copy, 'custody.jsonl'), 'utf8')).split('\n');
    const s = resign({ ...(await readSig()), custodyHead: { seq: 1, sha256: sha(custody[0]!) } });
    await writeSig(s);
    const line = custody.findIndex((l) => l.includes('"action":"signed"')) + 1;
    // Only the custody 'signed' record still tells: the file is not the one it recorded.
    expect(await problems()).toEqual([`${SIG}: SHA-256 ${sha(`${JSON.stringify(s, null, 2)}\n`)} is not the one recorded in custody.jsonl line ${line} ('signed')`]);
  });

  test('every trusted key is named when none of them signed', async () => {
    const keyC = signingKeyFromPem(generateSigningKeyPem());
    expect(await problems([keyB.publicKeyPem, keyC.publicKeyPem])).toEqual([
      `${SIG}: signed by an untrusted key ${KEY_A_FINGERPRINT} (trusted: ${keyB.fingerprint}, ${keyC.fingerprint})`,
    ]);
  });

  test('a manifest deleted is named missing', async () => {
    await rm(path.join(copy, 'MANIFEST.sha256'));
    expect(await problems()).toEqual([`MANIFEST.sha256: missing, not the signed manifest (${(await readSig()).manifestSHA256})`]);
  });

  test('a custody log deleted: the head is missing and no signed record can be compared', async () => {
    const s = await readSig();
    await rm(path.join(copy, 'custody.jsonl'));
    expect(await problems()).toEqual([`custody.jsonl line ${s.custodyHead.seq}: missing, not the signed custody head (${s.custodyHead.sha256})`]);
    // The same with the head at line 1: a missing log has no line 1 either.
    await writeSig(resign({ ...s, custodyHead: { seq: 1, sha256: s.custodyHead.sha256 } }));
    expect(await problems()).toEqual([`custody.jsonl line 1: missing, not the signed custody head (${s.custodyHead.sha256})`]);
  });

  test('a custody log cut right before the signed head line (that line is then empty, not hashed)', async () => {
    const s = await readSig();
    const file = path.join(copy, 'custody.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    await writeFile(file, `${lines.slice(0, s.custodyHead.seq - 1).join('\n')}\n`);
    expect(await problems()).toEqual([`custody.jsonl line ${s.custodyHead.seq}: missing, not the signed custody head (${s.custodyHead.sha256})`]);
  });

  test("a broken custody line before the 'signed' record does not hide it", async () => {
    const file = path.join(copy, 'custody.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    const signedAt = lines.findIndex((l) => l.includes('"action":"signed"'));
    lines.splice(signedAt, 0, '{"broken');
    await writeFile(file, lines.join('\n'));
    const s = resign({ ...(await readSig()), signedAt: '2026-11-21T00:00:00.000Z' });
    await writeSig(s);
    expect(await problems()).toEqual([`${SIG}: SHA-256 ${sha(`${JSON.stringify(s, null, 2)}\n`)} is not the one recorded in custody.jsonl line ${signedAt + 2} ('signed')`]);
  });
});

// Answers to the fourth round's mutation testing of signing.ts (docs/testing.md).
describe('signing edges', () => {
  test('the signed payload is the five-line text docs/verify-by-hand.md rebuilds with jq', () => {
    const fields = { keyFingerprint: KEY_A_FINGERPRINT, manifestSHA256: 'a'.repeat(64), custodyHead: { seq: 7, sha256: 'b'.repeat(64) }, signedAt: '2026-11-20T10:30:00.000Z' };
    expect(signaturePayload(fields).toString('utf8')).toBe(
      `casefile-signature-v1\nkey ${KEY_A_FINGERPRINT}\nmanifest-sha256 ${'a'.repeat(64)}\ncustody-head 7 ${'b'.repeat(64)}\nsigned-at 2026-11-20T10:30:00.000Z\n`,
    );
  });

  test('a public key given as a KeyObject or as PEM, or the private key, has one fingerprint', () => {
    expect(keyFingerprint(createPublicKey(KEY_A_PUBLIC_PEM))).toBe(KEY_A_FINGERPRINT);
    expect(keyFingerprint(keyA.privateKey)).toBe(KEY_A_FINGERPRINT);
    expect(keyFingerprint(KEY_A_PEM)).toBe(KEY_A_FINGERPRINT);
  });

  test('publicKeyFromPem takes an Ed25519 public or private key and refuses another kind', () => {
    expect(keyFingerprint(publicKeyFromPem(KEY_A_PUBLIC_PEM))).toBe(KEY_A_FINGERPRINT);
    expect(keyFingerprint(publicKeyFromPem(KEY_A_PEM))).toBe(KEY_A_FINGERPRINT);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => publicKeyFromPem(rsa)).toThrow('the key is a rsa key, not Ed25519');
  });

  test('signCase returns the SHA-256 and size of the file it wrote, and the file verifies', async () => {
    const c = await sealedCase('returned');
    const { sha256, bytes, signature } = await signCase(c.dir, keyA);
    const written = await readFile(path.join(c.dir, SIG));
    expect({ sha256, bytes }).toEqual({ sha256: sha(written), bytes: written.length });
    expect(signature).toEqual(JSON.parse(written.toString('utf8')));
    expect((await verifySignature(c.dir)).problems).toEqual([]);
    expect((await readdir(path.join(c.dir, '.partial'))).filter((n) => n.startsWith(SIG))).toEqual([]);
    await rm(c.root, { recursive: true, force: true });
  });

  test('signCase again with the same key returns the existing file unchanged, with its size', async () => {
    const before = await readFile(path.join(copy, SIG));
    expect(await signCase(copy, keyA, new Date('2030-01-01T00:00:00Z'))).toEqual({ signature: JSON.parse(before.toString('utf8')), sha256: sha(before), bytes: before.length });
  });

  test.each<[string, (s: SignatureFile) => unknown]>([
    ['another manifest', (s) => ({ ...s, manifestSHA256: 'c'.repeat(64) })],
    ['another custody head', (s) => ({ ...s, custodyHead: { ...s.custodyHead, sha256: 'c'.repeat(64) } })],
    ['no custody head', (s) => ({ ...s, custodyHead: undefined })],
  ])('signCase refuses an existing signature file by the same key for %s, and leaves it', async (_what, change) => {
    await writeSig(change(await readSig()));
    const before = await readFile(path.join(copy, SIG));
    await expect(signCase(copy, keyA)).rejects.toThrow(`cannot sign ${copy}: ${SIG} already exists for another key or seal and is never overwritten`);
    expect(await readFile(path.join(copy, SIG))).toEqual(before);
  });

  test('signCase refuses a case whose custody chain is broken, naming the line', async () => {
    await rm(path.join(copy, SIG));
    const file = path.join(copy, 'custody.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[1] = lines[1]!.replace('"actor":"test"', '"actor":"evil"');
    await writeFile(file, lines.join('\n'));
    await expect(signCase(copy, keyA)).rejects.toThrow(new RegExp(`^cannot sign ${copy}: custody\\.jsonl line 3: prev [0-9a-f]{64} is not the SHA-256 of line 2`));
  });
});
