// `casefile verify` and `kubectl casefile verify`: one check, one report, one exit code.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { extractBundle } from '../evidence/bundle-extract.js';
import { errorMessage } from '../evidence/io.js';
import { SIGNATURE_FILE } from '../evidence/layout.js';
import { publicKeyFromPem } from '../evidence/signing.js';
import { verifyCaseDir } from '../evidence/verify-case.js';
import { verifySignature } from '../evidence/verify-signature.js';

export interface VerifyOptions {
  /** PEM files of the keys the case must be signed by (any one); implies requireSignature. */
  keys?: string[];
  /** An unsigned case fails instead of passing with a warning. */
  requireSignature?: boolean;
}

async function verifyDir(dir: string, shown: string, trusted: KeyObject[] | undefined, requireSignature: boolean): Promise<number> {
  const result = await verifyCaseDir(dir);
  const signature = await verifySignature(dir, trusted);
  const problems = [...result.problems, ...signature.problems];
  if (!signature.signed && requireSignature) problems.push(`${SIGNATURE_FILE} is missing: the case is not signed`);
  for (const problem of problems) console.error(`FAIL ${problem}`);
  // Warnings go to stdout with the verdict: stderr carries only what failed.
  if (!signature.signed && !requireSignature) console.log(`WARN not signed: no ${SIGNATURE_FILE} (--key or --require-signature make this a failure)`);
  if (signature.signed && problems.length === 0) {
    console.log(`OK signed by ${signature.keyFingerprint} at ${signature.signedAt}`);
    if (!trusted) console.log(`WARN the signature was checked with the key written in ${SIGNATURE_FILE} only: pass --key <public key PEM> to check who signed`);
  }
  console.log(problems.length === 0 ? `OK ${result.artifacts} artifact(s) verified in ${shown}` : `FAILED ${problems.length} problem(s) in ${shown}`);
  return problems.length === 0 ? 0 : 1;
}

/**
 * Verifies a case directory or a bundle (.tar.gz, unpacked into a temporary directory that is removed
 * afterwards): custody chain, manifest, signature. Prints each problem and the verdict; resolves with
 * the exit code (0 ok, 1 failed).
 */
export async function verifyAndReport(target: string, opts: VerifyOptions = {}): Promise<number> {
  let trusted: KeyObject[] | undefined;
  try {
    trusted = opts.keys?.length ? await Promise.all(opts.keys.map(async (f) => publicKeyFromPem(await readFile(f, 'utf8')))) : undefined;
  } catch (err) {
    console.error(`FAIL --key: ${errorMessage(err)}`);
    return 1;
  }
  const requireSignature = Boolean(opts.requireSignature || trusted);
  let isFile: boolean;
  try {
    isFile = (await stat(target)).isFile();
  } catch (err) {
    console.error(`FAIL ${errorMessage(err)}`);
    return 1;
  }
  if (!isFile) return verifyDir(target, target, trusted, requireSignature);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-verify-'));
  try {
    let dir: string;
    try {
      dir = await extractBundle(target, tmp);
    } catch (err) {
      console.error(`FAIL ${errorMessage(err)}`);
      console.log(`FAILED ${target} is not a readable case bundle`);
      return 1;
    }
    return await verifyDir(dir, target, trusted, requireSignature);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
