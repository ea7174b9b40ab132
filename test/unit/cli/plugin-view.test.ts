import { describe, expect, it } from '@jest/globals';
import type { Condition, Investigation } from '../../../src/api/investigation.js';
import { parseSpec } from '../../../src/api/investigation.js';
import { investigationRequest, listTable, outcome, progress, summary } from '../../../src/cli/plugin/view.js';

const c = (type: string, status: Condition['status'], reason: string, message = ''): Condition =>
  ({ type, status, reason, message, lastTransitionTime: '2026-12-03T07:00:00Z', observedGeneration: 1 }) as Condition;

function inv(conditions: Condition[], extra: Partial<Investigation['status']> = {}): Investigation {
  return {
    apiVersion: 'casefile.dev/v1alpha1',
    kind: 'Investigation',
    metadata: { name: 'web-x1', namespace: 'shop', uid: 'u', generation: 1, creationTimestamp: '2026-12-03T07:00:00Z' },
    spec: { target: { pod: 'web-1' } },
    status: { conditions, observedGeneration: 1, ...extra },
  };
}

describe('investigationRequest (kubectl casefile open)', () => {
  it('a plain case is a manual capture the CRD schema accepts, named after the pod', () => {
    const body = investigationRequest('web-7d96c8f4d9-r2x5b', { contain: false, live: false, node: false });
    expect(body).toMatchObject({ kind: 'Investigation', metadata: { generateName: 'web-7d96c8f4d9-r2x5b-' } });
    const parsed = parseSpec((body as { spec: unknown }).spec);
    expect(parsed.ok && parsed.spec).toMatchObject({ target: { pod: 'web-7d96c8f4d9-r2x5b' }, alert: { source: 'manual' }, containment: { network: { isolate: false } } });
  });

  it('--contain isolates first, --live and --node turn their capture on; --name names it', () => {
    const body = investigationRequest('web-1', { contain: true, live: true, node: true, name: 'ir-42' }) as { metadata: unknown; spec: unknown };
    expect(body.metadata).toEqual({ name: 'ir-42' });
    const parsed = parseSpec(body.spec);
    expect(parsed.ok && parsed.spec).toMatchObject({
      containment: { order: 'ContainFirst', network: { isolate: true } },
      evidence: { live: { enabled: true }, node: { enabled: true } },
    });
  });

  it('keeps a generated name within 63 characters and never ending in a dot or dash before the suffix', () => {
    const pod = `a${'-b'.repeat(40)}`;
    const { metadata } = investigationRequest(pod, { contain: false, live: false, node: false }) as { metadata: { generateName: string } };
    expect(metadata.generateName.length + 5).toBeLessThanOrEqual(63);
    expect(metadata.generateName).toMatch(/[a-z0-9]-$/);
  });
});

describe('outcome, list and summary', () => {
  it('done only when Ready=True for the current generation; failed on Ready=False; else running', () => {
    expect(outcome(inv([c('Ready', 'True', 'CaseSealed')]))).toBe('done');
    const stale = inv([c('Ready', 'True', 'CaseSealed')]);
    stale.metadata.generation = 2;
    expect(outcome(stale)).toBe('running');
    expect(outcome(inv([c('Ready', 'False', 'NotEnforced')]))).toBe('failed');
    expect(outcome(inv([c('TargetResolved', 'Unknown', 'InProgress')]))).toBe('running');
  });

  it('lists name, phase, pod, readiness, reason and age in aligned columns', () => {
    const table = listTable([inv([c('Ready', 'False', 'NotEnforced')], { phase: 'Failed' })], new Date('2026-12-03T07:05:00Z'), true);
    const [header, row] = table.split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAMESPACE', 'NAME', 'PHASE', 'POD', 'READY', 'REASON', 'AGE']);
    expect(row!.split(/\s+/)).toEqual(['shop', 'web-x1', 'Failed', 'web-1', 'False', 'NotEnforced', '5m']);
  });

  it('summarises readiness, containment, the case file, findings and every phase (kstatus pair left out)', () => {
    const text = summary(
      inv([c('TargetResolved', 'True', 'Resolved', 'pod found'), c('NetworkIsolated', 'False', 'NotEnforced', 'probe got through'), c('Ready', 'False', 'NotEnforced', 'NetworkIsolated failed'), c('Stalled', 'True', 'NotEnforced')], {
        phase: 'Failed',
        containment: { networkPolicy: 'casefile-0a1b2c3d', label: 'incident.casefile.dev/0a1b2c3d=isolated' },
        evidence: { path: 'shop/web-x1-0a1b2c3d', artifacts: 12, bytes: 3456 },
        findings: [{ severity: 'high', kind: 'dropped-file', summary: '/tmp/x is an ELF binary', artifact: 'live/files.json' }],
      }),
    );
    expect(text).toContain('Investigation shop/web-x1: Failed');
    expect(text).toContain('ready      False (NotEnforced): NetworkIsolated failed');
    expect(text).toContain('isolated   NetworkPolicy casefile-0a1b2c3d');
    expect(text).toContain('case file  shop/web-x1-0a1b2c3d: 12 artifacts, 3456 bytes');
    expect(text).not.toContain('signed  ');
    expect(text).toContain('[high] dropped-file: /tmp/x is an ELF binary');
    expect(text).toMatch(/NetworkIsolated\s+FAILED\s+NotEnforced: probe got through/);
    expect(text).not.toMatch(/^\s+Stalled/m);
  });
});

describe('progress (kubectl casefile open --wait, not a terminal)', () => {
  it('announces each phase once as it starts and once as it ends, with its outcome', () => {
    const first = inv([c('TargetResolved', 'Unknown', 'InProgress')]);
    const second = inv([c('TargetResolved', 'True', 'Resolved', 'pod found'), c('NetworkIsolated', 'True', 'Disabled', 'turned off by the spec'), c('ManifestCaptured', 'False', 'Forbidden', 'no access')]);
    expect(progress(undefined, first)).toEqual(['  TargetResolved: started']);
    expect(progress(first, first)).toEqual([]);
    expect(progress(first, second)).toEqual([
      '  TargetResolved: done (Resolved) pod found',
      '  NetworkIsolated: skipped (turned off) (Disabled) turned off by the spec',
      '  ManifestCaptured: FAILED (Forbidden) no access',
    ]);
  });

  it('says who signed a sealed case, or that it is not signed', () => {
    const sealed = { path: 'shop/web-x1-0a1b2c3d', artifacts: 1, bytes: 2, manifestSHA256: 'f'.repeat(64) };
    const signed = summary(inv([], { evidence: { ...sealed, signature: { keyFingerprint: 'sha256:abc', file: 'MANIFEST.sha256.sig', signedAt: '2026-12-03T07:00:00Z' } } }));
    expect(signed).toContain('signed     by sha256:abc at 2026-12-03T07:00:00Z');
    expect(summary(inv([], { evidence: sealed }))).toContain('signed     no (see EvidenceSealed)');
  });
});
