// Ed25519 signatures over a sealed case: node:crypto only. The signature file sits beside the
// manifest (layout.ts SIGNATURE_FILE) and signs a short text payload that bash, jq and openssl can
// rebuild (docs/verify-by-hand.md):
//
//   casefile-signature-v1\n
//   key <keyFingerprint>\n
//   manifest-sha256 <hex SHA-256 of MANIFEST.sha256>\n
//   custody-head <seq> <hex SHA-256 of that custody line, without its newline>\n
//   signed-at <ISO 8601 time>\n
//
// The custody head is the 'sealed' record: lines after it (the 'signed' record, a release) chain from
// it but are not signed; the manifest lists no signature because it was sealed before one existed.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { verifyCustodyChain } from './custody.js';
import { readIfExists, sha256Hex, writeOnce } from './io.js';
import { CUSTODY_FILE, MANIFEST_FILE, PARTIAL_DIR, SEALED_ACTION, SIGNATURE_FILE } from './layout.js';

export const SIGNATURE_FORMAT = 'casefile-signature-v1';

export interface SignatureFile {
  format: typeof SIGNATURE_FORMAT;
  algorithm: 'ed25519';
  keyFingerprint: string;
  /** SPKI PEM: lets anyone check the signature; trust comes from comparing the fingerprint. */
  publicKey: string;
  manifestSHA256: string;
  custodyHead: { seq: number; sha256: string };
  signedAt: string;
  /** Base64 Ed25519 signature over signaturePayload(). */
  signature: string;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  fingerprint: string;
}

/** `sha256:` + hex SHA-256 of the SPKI DER public key (a private key gives its public key's). */
export function keyFingerprint(key: KeyObject | string): string {
  const pub = typeof key !== 'string' && key.type === 'public' ? key : createPublicKey(key);
  return `sha256:${createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? 'symmetric'} key, not Ed25519`);
  return key;
}

export function signingKeyFromPem(privateKeyPem: string): SigningKey {
  const privateKey = requireEd25519(createPrivateKey(privateKeyPem), 'the signing key');
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  return { privateKey, publicKeyPem, fingerprint: keyFingerprint(privateKey) };
}

/** A fresh key as PKCS#8 PEM (what the operator stores in its Secret). */
export function generateSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** An Ed25519 public key from a PEM file (SPKI, or a private key whose public half is meant). */
export function publicKeyFromPem(pem: string): KeyObject {
  return requireEd25519(createPublicKey(pem), 'the key');
}

export function signaturePayload(s: Pick<SignatureFile, 'keyFingerprint' | 'manifestSHA256' | 'custodyHead' | 'signedAt'>): Buffer {
  return Buffer.from(
    `${SIGNATURE_FORMAT}\nkey ${s.keyFingerprint}\nmanifest-sha256 ${s.manifestSHA256}\ncustody-head ${s.custodyHead.seq} ${s.custodyHead.sha256}\nsigned-at ${s.signedAt}\n`,
    'utf8',
  );
}

/** The first 'sealed' custody record's seq and the SHA-256 of its line, from a custody log that must be unbroken. */
function sealedHead(custodyText: string): { seq: number; sha256: string; manifestSHA256: string | undefined } | string {
  const chain = verifyCustodyChain(custodyText);
  if (!chain.ok) return `${CUSTODY_FILE} line ${chain.line}: ${chain.reason}`;
  const sealed = chain.records.find((r) => r.action === SEALED_ACTION);
  if (!sealed) return `${CUSTODY_FILE} has no '${SEALED_ACTION}' record`;
  return { seq: sealed.seq, sha256: sha256Hex(custodyText.split('\n')[sealed.seq - 1]!), manifestSHA256: sealed.sha256 };
}

/**
 * Signs a sealed case: writes SIGNATURE_FILE once (temp, fsync, link: never over an existing file).
 * A repeat after a crash finds the file; it is returned if this key signed this seal, refused otherwise.
 */
export async function signCase(caseDir: string, key: SigningKey, now = new Date()): Promise<{ signature: SignatureFile; sha256: string; bytes: number }> {
  const [manifest, custody] = await Promise.all([readFile(path.join(caseDir, MANIFEST_FILE)), readFile(path.join(caseDir, CUSTODY_FILE), 'utf8')]);
  const head = sealedHead(custody);
  if (typeof head === 'string') throw new Error(`cannot sign ${caseDir}: ${head}`);
  const manifestSHA256 = sha256Hex(manifest);
  if (manifestSHA256 !== head.manifestSHA256) throw new Error(`cannot sign ${caseDir}: ${MANIFEST_FILE} is not the sealed manifest`);
  const target = path.join(caseDir, SIGNATURE_FILE);
  const existing = await readIfExists(target);
  if (existing) {
    const found = JSON.parse(existing.toString('utf8')) as SignatureFile;
    if (found.keyFingerprint !== key.fingerprint || found.manifestSHA256 !== manifestSHA256 || found.custodyHead?.sha256 !== head.sha256) {
      throw new Error(`cannot sign ${caseDir}: ${SIGNATURE_FILE} already exists for another key or seal and is never overwritten`);
    }
    return { signature: found, sha256: sha256Hex(existing), bytes: existing.length };
  }
  const fields = { keyFingerprint: key.fingerprint, manifestSHA256, custodyHead: { seq: head.seq, sha256: head.sha256 }, signedAt: now.toISOString() };
  const signature: SignatureFile = {
    format: SIGNATURE_FORMAT,
    algorithm: 'ed25519',
    ...fields,
    publicKey: key.publicKeyPem,
    signature: sign(null, signaturePayload(fields), key.privateKey).toString('base64'),
  };
  const content = Buffer.from(`${JSON.stringify(signature, null, 2)}\n`, 'utf8');
  await writeOnce(path.join(caseDir, PARTIAL_DIR, `${SIGNATURE_FILE}.${randomBytes(6).toString('hex')}.partial`), target, content);
  return { signature, sha256: sha256Hex(content), bytes: content.length };
}

/** True when `signature` (base64) is `key`'s Ed25519 signature of the payload. */
export function signatureMatches(s: SignatureFile, key: KeyObject): boolean {
  return verify(null, signaturePayload(s), key, Buffer.from(s.signature, 'base64'));
}
