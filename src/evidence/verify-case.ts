// The independent check of a sealed case directory: custody chain, manifest against files, manifest
// against custody, and no file the seal does not account for. The signature is signing.ts's.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { verifyCustodyChain } from './custody.js';
import { errnoCode, errorMessage, hashFile, readIfExists, sha256Hex } from './io.js';
import { ARTIFACT_ACTIONS, CUSTODY_FILE, MANIFEST_FILE, SEALED_ACTION, SIGNATURE_FILE, TORN_TAIL_ACTION } from './layout.js';
import { resolveInside } from './paths.js';

export interface CaseVerification {
  ok: boolean;
  problems: string[];
  artifacts: number;
}

/** Every entry under `dir` that is not a directory, as relative '/' paths; `other` collects what is not a regular file. */
async function walk(root: string, rel = '', out: { files: string[]; other: string[] } = { files: [], other: [] }): Promise<{ files: string[]; other: string[] }> {
  for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const child = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) await walk(root, child, out);
    else (e.isFile() ? out.files : out.other).push(child);
  }
  return out;
}

/** Independent check of a case directory: custody chain, manifest against files, manifest against custody, unlisted files. */
export async function verifyCaseDir(dir: string): Promise<CaseVerification> {
  const root = path.resolve(dir);
  const problems: string[] = [];
  const recorded = new Map<string, string>();
  // Files the store writes beside the artifacts; torn custody tails are named by their custody record.
  const accounted = new Set([CUSTODY_FILE, MANIFEST_FILE, SIGNATURE_FILE]);
  let sealedSHA256: string | undefined;
  let chainOk = false;

  const custodyText = (await readIfExists(path.join(root, CUSTODY_FILE)))?.toString('utf8');
  if (custodyText === undefined) {
    problems.push(`${CUSTODY_FILE} is missing`);
  } else {
    const chain = verifyCustodyChain(custodyText);
    if (!chain.ok) {
      problems.push(`${CUSTODY_FILE} line ${chain.line}: ${chain.reason}`);
    } else {
      chainOk = true;
      for (const r of chain.records) {
        if (ARTIFACT_ACTIONS.has(r.action) && r.artifact !== undefined && r.sha256 !== undefined && !recorded.has(r.artifact)) recorded.set(r.artifact, r.sha256);
        if (r.action === SEALED_ACTION) sealedSHA256 ??= r.sha256;
        if (r.action === TORN_TAIL_ACTION && typeof r.detail?.savedAs === 'string') accounted.add(r.detail.savedAs);
      }
      if (sealedSHA256 === undefined) problems.push(`${CUSTODY_FILE} has no '${SEALED_ACTION}' record`);
    }
  }

  const manifest = (await readIfExists(path.join(root, MANIFEST_FILE)))?.toString('utf8');
  if (manifest === undefined) {
    problems.push(`${MANIFEST_FILE} is missing: the case is not sealed`);
    return { ok: false, problems, artifacts: 0 };
  }
  if (sealedSHA256 !== undefined && sha256Hex(manifest) !== sealedSHA256) {
    problems.push(`${MANIFEST_FILE} does not match the SHA-256 in the custody '${SEALED_ACTION}' record`);
  }

  const lines = manifest.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const listed = new Set<string>();
  for (const [i, line] of lines.entries()) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!m) {
      problems.push(`${MANIFEST_FILE} line ${i + 1} is malformed`);
      continue;
    }
    const [, expected, rel] = m as unknown as [string, string, string];
    listed.add(rel);
    let file: string;
    try {
      file = resolveInside(root, rel);
    } catch {
      problems.push(`${rel}: escapes the case directory`);
      continue;
    }
    try {
      const { sha256 } = await hashFile(file);
      if (sha256 !== expected) problems.push(`${rel}: SHA-256 ${sha256} does not match the manifest (${expected})`);
    } catch (err) {
      problems.push(`${rel}: ${errnoCode(err) === 'ENOENT' ? 'missing' : errorMessage(err)}`);
    }
    if (chainOk && recorded.get(rel) !== expected) problems.push(`${rel}: manifest entry does not match the custody log`);
  }
  for (const rel of recorded.keys()) {
    if (!listed.has(rel)) problems.push(`${rel}: recorded in ${CUSTODY_FILE} but not in ${MANIFEST_FILE} (written after sealing?)`);
  }
  // A file nobody recorded (planted in a copy or a bundle) would otherwise pass unseen beside the evidence.
  const { files, other } = await walk(root);
  for (const rel of files) {
    if (!listed.has(rel) && !recorded.has(rel) && !accounted.has(rel)) problems.push(`${rel}: not in ${MANIFEST_FILE} nor recorded in ${CUSTODY_FILE} (added after sealing?)`);
  }
  for (const rel of other) problems.push(`${rel}: not a regular file or directory (a case holds only those)`);
  return { ok: problems.length === 0, problems, artifacts: listed.size };
}
