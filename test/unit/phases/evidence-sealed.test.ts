// EvidenceSealed signs what it sealed; without a key, or when signing fails, the case is still sealed
// (True) but the reason, the message, status and report.md say it is unsigned and why.
import { createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { parseSpec, type Investigation, type InvestigationStatus } from '../../../src/api/investigation.js';
import type { OperatorConfig } from '../../../src/config.js';
import { CaseFile } from '../../../src/evidence/store.js';
import { generateSigningKeyPem, signingKeyFromPem, type SigningKey } from '../../../src/evidence/signing.js';
import { verifyCaseDir } from '../../../src/evidence/verify-case.js';
import { verifySignature } from '../../../src/evidence/verify-signature.js';
import type { Kube } from '../../../src/kube/client.js';
import { logger } from '../../../src/log.js';
import { evidenceSealed } from '../../../src/phases/evidence-sealed.js';
import type { PhaseContext } from '../../../src/phases/phase.js';
import { KEY_A_FINGERPRINT, KEY_A_PEM, KEY_A_PUBLIC_PEM } from '../evidence/sealed-case.js';
import { HOSTILE_NAME, writeCaseArtifacts } from '../report/fixtures/case-artifacts.js';

let root: string;
let caseFile: CaseFile;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-sealed-phase-'));
  caseFile = await CaseFile.open({ root, namespace: 'shop', name: 'case-1', uid: '0a1b2c3d-0000', actor: 'test' });
  await caseFile.writeText('logs/app.log', 'GET / 200\n');
});
afterEach(async () => {
  await caseFile.close();
  await rm(root, { recursive: true, force: true });
});

function context(signingKey: () => Promise<SigningKey>): PhaseContext {
  const parsed = parseSpec({ target: { pod: 'web-1' } });
  if (!parsed.ok) throw new Error(parsed.message);
  const investigation: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: 'shop', uid: '0a1b2c3d-0000' }, spec: {} };
  const status: InvestigationStatus = {};
  return {
    investigation,
    spec: parsed.spec,
    kube: {} as Kube,
    caseFile,
    config: {} as OperatorConfig,
    log: logger.child({}, { level: 'silent' }),
    status,
    livePod: async () => undefined,
    importJournaledAlerts: async () => undefined,
    signingKey,
  };
}

const report = () => readFile(path.join(caseFile.dir, 'report.md'), 'utf8');

describe('EvidenceSealed', () => {
  test('signs the seal, records it in custody, and names the key in status, condition and report', async () => {
    const ctx = context(async () => signingKeyFromPem(KEY_A_PEM));
    const outcome = await evidenceSealed.run(ctx);
    expect(outcome).toMatchObject({ status: 'True', reason: 'Sealed' });
    expect(outcome.message).toMatch(new RegExp(`; signed by ${KEY_A_FINGERPRINT}$`));
    expect(ctx.status.evidence?.signature).toEqual({ keyFingerprint: KEY_A_FINGERPRINT, file: 'MANIFEST.sha256.sig', signedAt: expect.any(String) });
    expect(await report()).toContain(`signed with Ed25519 key \`${KEY_A_FINGERPRINT}\``);
    expect(caseFile.custodyRecords().filter((r) => r.action === 'signed')).toEqual([expect.objectContaining({ artifact: 'MANIFEST.sha256.sig', detail: expect.objectContaining({ keyFingerprint: KEY_A_FINGERPRINT }) })]);
    expect(await verifySignature(caseFile.dir, [createPublicKey(KEY_A_PUBLIC_PEM)])).toMatchObject({ signed: true, problems: [] });
    expect(await verifyCaseDir(caseFile.dir)).toMatchObject({ ok: true, problems: [] });
  });

  test('without a key: sealed (True), reason SealedUnsigned with why, no signature, and the report says so', async () => {
    const ctx = context(() => Promise.reject(new Error('Secret casefile-system/casefile-signing-key: 403: forbidden')));
    const outcome = await evidenceSealed.run(ctx);
    expect(outcome).toMatchObject({ status: 'True', reason: 'SealedUnsigned' });
    expect(outcome.message).toContain('NOT signed (no signing key: Secret casefile-system/casefile-signing-key: 403: forbidden)');
    expect(ctx.status.evidence?.manifestSHA256).toMatch(/^[0-9a-f]{64}$/);
    expect(ctx.status.evidence?.signature).toBeUndefined();
    expect(await report()).toContain('This case is not signed (no signing key: Secret casefile-system/casefile-signing-key: 403: forbidden)');
    expect(await verifySignature(caseFile.dir)).toEqual({ signed: false, problems: [] });
  });

  test('a signing failure after the seal: SealedUnsigned with the failure, the seal kept', async () => {
    // A signature file by another key is already there: it is never overwritten.
    const other = signingKeyFromPem(generateSigningKeyPem());
    await writeFile(path.join(caseFile.dir, 'MANIFEST.sha256.sig'), '{"keyFingerprint":"sha256:other"}\n');
    const ctx = context(async () => other);
    const outcome = await evidenceSealed.run(ctx);
    expect(outcome).toMatchObject({ status: 'True', reason: 'SealedUnsigned' });
    expect(outcome.message).toContain('NOT signed (signing failed: cannot sign');
    expect(ctx.status.evidence?.signature).toBeUndefined();
    expect(caseFile.custodyRecords().some((r) => r.action === 'sealed')).toBe(true);
  });

  test('writes timeline.jsonl before the reports, hashed in the manifest; audit findings reach the report', async () => {
    await writeCaseArtifacts(caseFile);
    const outcome = await evidenceSealed.run(context(async () => signingKeyFromPem(KEY_A_PEM)));
    expect(outcome).toMatchObject({ status: 'True', reason: 'Sealed' });
    const writes = caseFile.custodyRecords().filter((r) => r.action === 'artifact').map((r) => r.artifact);
    expect(writes.slice(-3)).toEqual(['timeline.jsonl', 'report.md', 'report.html']);
    expect(await readFile(path.join(caseFile.dir, 'MANIFEST.sha256'), 'utf8')).toMatch(/^[0-9a-f]{64} {2}timeline\.jsonl$/m);
    const lines = (await readFile(path.join(caseFile.dir, 'timeline.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { time: string; source: string });
    expect(new Set(lines.map((l) => l.source))).toEqual(new Set(['pod', 'container', 'event', 'process', 'file', 'audit', 'finding']));
    const times = lines.map((l) => l.time);
    expect([...times].sort()).toEqual(times);
    const md = await report();
    expect(md).toContain('**high** exec-into-pod: alice exec into shop/web-1 at 2026-11-20T10:04:50Z (`audit/pod-requests.jsonl`)');
    expect(md).toContain('| list | secrets | shop | 2 |');
    expect(await verifyCaseDir(caseFile.dir)).toMatchObject({ ok: true, problems: [] });
  });

  test('artifacts a suspect broke (malformed, hostile names) do not stop the seal: the report says what it could not read', async () => {
    await writeCaseArtifacts(caseFile, { files: [{ path: HOSTILE_NAME, mtime: '2026-11-20T10:00:00Z', ctime: 'never' }] });
    await caseFile.writeText('live/retry-2/processes.json', `{"pid": ${'9'.repeat(400)}, "startTime": [}\n`);
    await caseFile.writeText('k8s/node.yaml', 'not read by the timeline');
    await caseFile.record('collector-started', { prefix: 'live', base: 'live/retry-2' }, 'LiveStateCaptured');
    const outcome = await evidenceSealed.run(context(async () => signingKeyFromPem(KEY_A_PEM)));
    expect(outcome).toMatchObject({ status: 'True', reason: 'Sealed' });
    expect(await report()).toContain('- report: live/retry-2/processes.json: 1 line(s) unreadable');
    expect(await readFile(path.join(caseFile.dir, 'timeline.jsonl'), 'utf8')).toContain(JSON.stringify(HOSTILE_NAME).slice(1, -1));
  });
});
