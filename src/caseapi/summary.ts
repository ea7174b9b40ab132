// The CaseFile object the API returns for GET .../casefiles/<name>: what the case holds and the hashes a
// reviewer checks a downloaded bundle against. Built from the sealed files themselves.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { CASE_API_GROUP, CASE_API_VERSION } from './routes.js';

const MANIFEST_LINE = /^([0-9a-f]{64}) {2}(.+)$/;

export async function caseFileSummary(namespace: string, name: string, dir: string, read: (file: string) => Promise<string>): Promise<Record<string, unknown>> {
  const manifest = await read('MANIFEST.sha256');
  const artifacts = manifest
    .split('\n')
    .map((line) => MANIFEST_LINE.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ path: m[2], sha256: m[1] }));
  return {
    apiVersion: `${CASE_API_GROUP}/${CASE_API_VERSION}`,
    kind: 'CaseFile',
    metadata: { namespace, name },
    caseDir: path.basename(dir),
    manifestSHA256: createHash('sha256').update(manifest).digest('hex'),
    artifacts,
  };
}
