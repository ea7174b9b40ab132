// AuditCorrelated on a fake context: a real case file and a real rolling store in a temp dir.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { toAuditRecord, type AuditRecord } from '../../../src/audit/record.js';
import { AuditStoreReader } from '../../../src/audit/store-reader.js';
import { AuditStoreWriter } from '../../../src/audit/store.js';
import { parseSpec, type Investigation, type InvestigationStatus } from '../../../src/api/investigation.js';
import type { OperatorConfig } from '../../../src/config.js';
import { RequeueAfter } from '../../../src/errors.js';
import { CaseFile } from '../../../src/evidence/store.js';
import type { Kube } from '../../../src/kube/client.js';
import { logger } from '../../../src/log.js';
import { auditCorrelated } from '../../../src/phases/audit-correlated/index.js';
import type { AuditTrailSource, PhaseContext } from '../../../src/phases/phase.js';
import { auditEvent, type EventShape } from '../audit/fixtures.js';

const SA = 'system:serviceaccount:shop:web';
const OPERATOR = 'system:serviceaccount:casefile-system:casefile-operator';
let root: string;
let caseFile: CaseFile;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-audit-phase-'));
  caseFile = await CaseFile.open({ root: path.join(root, 'cases'), namespace: 'shop', name: 'case-1', uid: '0a1b2c3d-0000', actor: 'test' });
});
afterEach(async () => {
  await caseFile.close();
  await rm(root, { recursive: true, force: true });
});

const record = (shape: EventShape) => toAuditRecord(auditEvent({ namespace: 'shop', ...shape })) as AuditRecord;
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

function context(audit: AuditTrailSource | undefined, spec: Record<string, unknown> = {}): PhaseContext {
  const parsed = parseSpec({ target: { pod: 'web-1' }, ...spec });
  if (!parsed.ok) throw new Error(parsed.message);
  const investigation: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: 'shop', uid: '0a1b2c3d-0000', creationTimestamp: ago(60_000) }, spec: {} };
  const status: InvestigationStatus = { target: { podUID: 'uid-web-1', serviceAccount: 'web' } as InvestigationStatus['target'] };
  return {
    investigation,
    spec: parsed.spec,
    kube: {} as Kube,
    caseFile,
    config: {} as OperatorConfig,
    log: logger.child({}, { level: 'silent' }),
    status,
    livePod: async () => ({ metadata: { name: 'web-1', uid: 'uid-web-1', creationTimestamp: new Date(Date.now() - 600_000) } }),
    importJournaledAlerts: async () => undefined,
    signingKey: async () => Promise.reject(new Error('none')),
    audit,
  };
}

async function storeWith(records: AuditRecord[], flushWaitMs = 0): Promise<AuditTrailSource> {
  const limits = { maxBytes: 1 << 20, maxAgeMs: 86_400_000 };
  await (await AuditStoreWriter.open(root, limits)).append(records);
  return { reader: new AuditStoreReader(root), limits, flushWaitMs, operatorUsername: async () => OPERATOR };
}

const artifact = async (name: string) => readFile(path.join(caseFile.dir, name), 'utf8');
const lines = async (name: string) => (await artifact(name)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord);

describe('AuditCorrelated', () => {
  test('without an audit source, says so in the condition and as a negative finding', async () => {
    const ctx = context(undefined);
    expect(await auditCorrelated.run(ctx)).toMatchObject({ status: 'True', reason: 'NotConfigured' });
    expect(caseFile.custodyRecords().some((r) => r.action === 'negative-finding' && String(r.detail?.finding).includes('no audit trail'))).toBe(true);
    expect(caseFile.has('audit/pod-requests.jsonl')).toBe(false);
  });

  test("copies the pod's requests and its own token's, in the window, once each; derives the findings", async () => {
    const exec = record({ user: 'mallory', verb: 'create', resource: 'pods', subresource: 'exec', name: 'web-1', time: ago(300_000), requestURI: '/api/v1/namespaces/shop/pods/web-1/exec?command=id' });
    const list = record({ user: SA, podUID: 'uid-web-1', podName: 'web-1', verb: 'list', resource: 'secrets', time: ago(200_000) });
    const audit = await storeWith([
      exec,
      exec, // a retried batch
      list,
      record({ user: SA, podUID: 'uid-web-2', podName: 'web-2', verb: 'list', resource: 'secrets', time: ago(200_000) }), // the sibling
      record({ user: SA, verb: 'get', resource: 'configmaps', time: ago(200_000) }), // a legacy token: unattributed
      record({ user: 'mallory', verb: 'create', resource: 'pods', subresource: 'exec', name: 'web-1', time: ago(3_600_000) }), // before the pod started
      record({ user: 'mallory', verb: 'create', resource: 'pods', subresource: 'exec', name: 'web-1', namespace: 'other', time: ago(100_000) }),
      record({ user: 'system:kube-scheduler', verb: 'get', resource: 'configmaps', time: ago(1000) }),
      record({ user: OPERATOR, verb: 'get', resource: 'leases', time: new Date(Date.now() + 5000).toISOString() }),
    ]);
    const ctx = context(audit);
    const outcome = await auditCorrelated.run(ctx);
    expect(outcome).toMatchObject({ status: 'True', reason: 'Correlated' });
    expect(outcome.message).toMatch(/^1 request\(s\) on the pod, 1 with its token, 2 finding\(s\)/);
    expect(await lines('audit/pod-requests.jsonl')).toEqual([exec]);
    expect(await lines('audit/token-requests.jsonl')).toEqual([list]);
    const findings = JSON.parse(await artifact('audit/findings.json')) as { summary: string }[];
    expect(findings.map((f) => f.summary)).toEqual([`mallory exec'd into the pod at ${exec.time}: id`, "the pod's token read or listed secrets 1 time(s) in 1 namespace(s): shop"]);
    const summary = JSON.parse(await artifact('audit/summary.json'));
    expect(summary).toMatchObject({ window: { fromSource: 'pod-start' }, podRequests: 1, tokenRequests: 1, unattributedTokenRequests: 1, incomplete: null });
    expect(summary.store.scans.pod).toMatchObject({ copied: 1, duplicates: 1 });
    expect(ctx.status.findings?.map((f) => f.kind)).toEqual(['audit-exec', 'audit-token-secrets']);
  });

  test('waits for the API server to deliver up to the window end, then copies what came, saying it is incomplete', async () => {
    const audit = await storeWith([record({ user: 'mallory', verb: 'create', resource: 'pods', subresource: 'exec', name: 'web-1', time: ago(100_000) })], 60_000);
    const ctx = context(audit);
    await expect(auditCorrelated.run(ctx)).rejects.toBeInstanceOf(RequeueAfter);
    const window = caseFile.custodyRecords().find((r) => r.action === 'audit-window');
    expect(window).toBeDefined();
    // The same window on the rerun, whatever the time is then; past the wait, the case says what may be missing.
    const outcome = await auditCorrelated.run({ ...ctx, audit: { ...audit, flushWaitMs: 0 } });
    expect(outcome.reason).toBe('CorrelatedIncomplete');
    expect(caseFile.custodyRecords().filter((r) => r.action === 'audit-window')).toHaveLength(1);
    expect(JSON.parse(await artifact('audit/summary.json')).window.until).toBe((window!.detail as { until: string }).until);
    expect(caseFile.custodyRecords().some((r) => r.action === 'negative-finding' && String(r.detail?.finding).includes('later requests in the window are missing'))).toBe(true);
  });

  test('writes down silence: no request on the pod, none with its token', async () => {
    const audit = await storeWith([record({ user: OPERATOR, verb: 'get', resource: 'leases', time: new Date(Date.now() + 5000).toISOString() })]);
    expect(await auditCorrelated.run(context(audit))).toMatchObject({ status: 'True', reason: 'Correlated' });
    const notes = caseFile.custodyRecords().filter((r) => r.action === 'negative-finding').map((r) => String(r.detail?.finding));
    expect(notes).toEqual(expect.arrayContaining([expect.stringContaining('no request on the pod'), expect.stringContaining("no request made with the pod's own ServiceAccount token")]));
    expect(await artifact('audit/pod-requests.jsonl')).toBe('');
  });

  test('a lookback opens the window that long before it closes', async () => {
    const audit = await storeWith([record({ user: OPERATOR, verb: 'get', resource: 'leases', time: new Date(Date.now() + 5000).toISOString() })]);
    await auditCorrelated.run(context(audit, { evidence: { audit: { lookbackSeconds: 120 } } }));
    const { window } = JSON.parse(await artifact('audit/summary.json'));
    expect(window.fromSource).toBe('lookback');
    expect(Date.parse(window.until) - Date.parse(window.from)).toBe(120_000);
  });

  test('is off by the spec', () => {
    const parsed = parseSpec({ target: { pod: 'web-1' }, evidence: { audit: { enabled: false } } });
    expect(parsed.ok && auditCorrelated.enabled!(parsed.spec)).toBe(false);
    expect(parseSpec({ target: { pod: 'web-1' }, evidence: { audit: { lookbackSeconds: 5 } } })).toMatchObject({ ok: false });
  });
});
