// Which directory on the evidence volume a case-file request means. The path is computed from the
// namespace, the name and the Investigation's UID, never read from status (which a status writer could
// point anywhere). A deleted Investigation's case stays readable: casefile never deletes evidence.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { GROUP, INVESTIGATION_PLURAL, VERSION } from '../api/investigation.js';
import { caseRelativeDir, resolveInside, sanitizeSegment } from '../evidence/paths.js';
import { type Kube } from '../kube/client.js';
import { isNotFound } from '../kube/errors.js';

export type CaseLookup =
  | { found: true; dir: string; relativeDir: string }
  | { found: false; code: 404 | 409; reason: 'NotFound' | 'Conflict'; message: string };

const UID8 = /^[0-9a-f]{8}$/;

export async function findCaseDir(kube: Kube, evidenceDir: string, namespace: string, name: string, uid?: string): Promise<CaseLookup> {
  if (uid !== undefined && !UID8.test(uid)) {
    return { found: false, code: 404, reason: 'NotFound', message: `uid must be the first 8 hex digits of the Investigation's UID, got ${JSON.stringify(uid)}` };
  }
  const current = await currentUid(kube, namespace, name);
  let relativeDir: string | undefined;
  if (current && (uid === undefined || current.replace(/-/g, '').startsWith(uid))) {
    relativeDir = caseRelativeDir(namespace, name, current);
  } else {
    const earlier = await earlierCases(evidenceDir, namespace, name);
    const chosen = uid === undefined ? earlier : earlier.filter((u) => u === uid);
    if (chosen.length > 1) {
      return { found: false, code: 409, reason: 'Conflict', message: `${chosen.length} case files for ${namespace}/${name} (Investigations since deleted): choose one with ?uid=${chosen.join(' or ?uid=')}` };
    }
    if (chosen.length === 1) relativeDir = caseRelativeDir(namespace, name, chosen[0]!);
  }
  const what = uid ? `${namespace}/${name} (uid ${uid})` : `${namespace}/${name}`;
  if (!relativeDir) return { found: false, code: 404, reason: 'NotFound', message: `no case file for Investigation ${what}` };
  const dir = resolveInside(evidenceDir, relativeDir);
  if (!(await isFile(path.join(dir, 'MANIFEST.sha256')))) {
    const exists = await stat(dir).then(() => true, () => false);
    return exists
      ? { found: false, code: 409, reason: 'Conflict', message: `the case file of ${what} is not sealed yet: its Investigation has not reached EvidenceSealed` }
      : { found: false, code: 404, reason: 'NotFound', message: `no case file for Investigation ${what} on the evidence volume` };
  }
  return { found: true, dir, relativeDir };
}

async function currentUid(kube: Kube, namespace: string, name: string): Promise<string | undefined> {
  try {
    const inv = (await kube.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVESTIGATION_PLURAL, name })) as { metadata?: { uid?: string } };
    return inv.metadata?.uid;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** UID prefixes of the case directories kept for this name. */
async function earlierCases(evidenceDir: string, namespace: string, name: string): Promise<string[]> {
  const prefix = `${sanitizeSegment(name)}-`;
  const entries = await readdir(resolveInside(evidenceDir, sanitizeSegment(namespace))).catch(() => [] as string[]);
  return entries
    .filter((e) => e.startsWith(prefix) && UID8.test(e.slice(prefix.length)))
    .map((e) => e.slice(prefix.length))
    .sort();
}

async function isFile(file: string): Promise<boolean> {
  return stat(file).then((s) => s.isFile(), () => false);
}
