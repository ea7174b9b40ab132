// The signature half of `casefile verify`: the signature file against its key, the real manifest and
// the custody line it names, and (with trusted keys) who signed. verifyCaseDir checks the rest.
import type { KeyObject } from 'node:crypto';
import path from 'node:path';
import { errorMessage, readIfExists, sha256Hex } from './io.js';
import { CUSTODY_FILE, MANIFEST_FILE, SIGNATURE_FILE, SIGNED_ACTION } from './layout.js';
import { keyFingerprint, publicKeyFromPem, SIGNATURE_FORMAT, signatureMatches, type SignatureFile } from './signing.js';

export interface SignatureVerification {
  /** False when there is no signature file: the caller decides whether that is a problem. */
  signed: boolean;
  keyFingerprint?: string;
  signedAt?: string;
  problems: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

function shapeProblem(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const s = v as Record<string, unknown>;
  if (s.format !== SIGNATURE_FORMAT) return `format ${JSON.stringify(s.format)} is not ${SIGNATURE_FORMAT}`;
  if (s.algorithm !== 'ed25519') return `algorithm ${JSON.stringify(s.algorithm)} is not ed25519`;
  for (const k of ['keyFingerprint', 'publicKey', 'manifestSHA256', 'signedAt', 'signature'] as const) {
    if (typeof s[k] !== 'string' || s[k] === '') return `${k} must be a non-empty string`;
  }
  const head = s.custodyHead as { seq?: unknown; sha256?: unknown } | undefined;
  if (!Number.isSafeInteger(head?.seq) || (head!.seq as number) < 1 || typeof head!.sha256 !== 'string' || !HEX64.test(head!.sha256)) {
    return 'custodyHead must be { seq: a positive integer, sha256: 64 hex digits }';
  }
  return undefined;
}

/** The custody record `action` if the log has one (no chain check here: verifyCaseDir's). */
function recordOf(custody: string, action: string): { line: number; sha256?: unknown } | undefined {
  for (const [i, line] of custody.split('\n').entries()) {
    try {
      const r = JSON.parse(line) as { action?: unknown; sha256?: unknown };
      if (r.action === action) return { line: i + 1, sha256: r.sha256 };
    } catch {
      // a broken line is verifyCaseDir's to report
    }
  }
  return undefined;
}

/**
 * Checks the signature file of a case directory. `trustedKeys`: when given, the signing key must be
 * one of them. Each problem names the file (and custody line) that fails.
 */
export async function verifySignature(dir: string, trustedKeys?: readonly KeyObject[]): Promise<SignatureVerification> {
  const root = path.resolve(dir);
  const raw = await readIfExists(path.join(root, SIGNATURE_FILE));
  if (raw === undefined) return { signed: false, problems: [] };
  const fail = (problem: string, s?: SignatureFile): SignatureVerification => ({ signed: true, keyFingerprint: s?.keyFingerprint, problems: [problem] });

  let s: SignatureFile;
  try {
    s = JSON.parse(raw.toString('utf8')) as SignatureFile;
  } catch {
    return fail(`${SIGNATURE_FILE}: not valid JSON`);
  }
  const shape = shapeProblem(s);
  if (shape) return fail(`${SIGNATURE_FILE}: ${shape}`);
  let key: KeyObject;
  try {
    key = publicKeyFromPem(s.publicKey);
  } catch (err) {
    return fail(`${SIGNATURE_FILE}: publicKey: ${errorMessage(err)}`, s);
  }
  const actualFingerprint = keyFingerprint(key);
  if (actualFingerprint !== s.keyFingerprint) return fail(`${SIGNATURE_FILE}: keyFingerprint ${s.keyFingerprint} is not its publicKey's (${actualFingerprint})`, s);
  if (!signatureMatches(s, key)) return fail(`${SIGNATURE_FILE}: the signature does not verify with key ${s.keyFingerprint}: the file was changed after signing`, s);

  const problems: string[] = [];
  const trusted = trustedKeys?.map(keyFingerprint);
  if (trusted && !trusted.includes(s.keyFingerprint)) problems.push(`${SIGNATURE_FILE}: signed by an untrusted key ${s.keyFingerprint} (trusted: ${trusted.join(', ')})`);

  const manifest = await readIfExists(path.join(root, MANIFEST_FILE));
  const manifestSHA256 = manifest && sha256Hex(manifest);
  if (manifestSHA256 !== s.manifestSHA256) problems.push(`${MANIFEST_FILE}: ${manifestSHA256 ? `SHA-256 ${manifestSHA256}` : 'missing'}, not the signed manifest (${s.manifestSHA256})`);

  const custody = (await readIfExists(path.join(root, CUSTODY_FILE)))?.toString('utf8') ?? '';
  const headLine = custody.split('\n')[s.custodyHead.seq - 1];
  const headSHA256 = headLine ? sha256Hex(headLine) : undefined;
  if (headSHA256 !== s.custodyHead.sha256) {
    problems.push(`${CUSTODY_FILE} line ${s.custodyHead.seq}: ${headSHA256 ? `SHA-256 ${headSHA256}` : 'missing'}, not the signed custody head (${s.custodyHead.sha256})`);
  }
  const signedRecord = recordOf(custody, SIGNED_ACTION);
  if (signedRecord && signedRecord.sha256 !== sha256Hex(raw)) {
    problems.push(`${SIGNATURE_FILE}: SHA-256 ${sha256Hex(raw)} is not the one recorded in ${CUSTODY_FILE} line ${signedRecord.line} ('${SIGNED_ACTION}')`);
  }
  return { signed: true, keyFingerprint: s.keyFingerprint, signedAt: s.signedAt, problems };
}
