import { parseSpec, type Condition, type InvestigationSpec } from '../../../src/api/investigation.js';
import { overallPhase, readiness } from '../../../src/engine/case-status.js';
import { phases, phasesInOrder } from '../../../src/phases/index.js';
import type { Phase } from '../../../src/phases/phase.js';

const spec = (raw: object): InvestigationSpec => {
  const r = parseSpec({ target: { pod: 'p' }, ...raw });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
};
const fake = (condition: Phase['condition'], containment = false): Phase => ({
  condition,
  containment,
  run: async () => ({ status: 'True', reason: 'Done', message: '' }),
});
const cond = (type: Condition['type'], status: Condition['status'], reason = 'R'): Condition => ({
  type, status, reason, message: `${type} ${reason}`, lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1,
});

describe('phase order', () => {
  const all = [fake('TargetResolved'), fake('ManifestCaptured'), fake('NetworkIsolated', true), fake('LogsCaptured'), fake('RBACNarrowed', true), fake('EvidenceSealed')];

  test('EvidenceFirst keeps the runbook order', () => {
    expect(phasesInOrder(spec({}), all).map((p) => p.condition)).toEqual(all.map((p) => p.condition));
  });

  test('ContainFirst moves containment right after TargetResolved and keeps the rest in order', () => {
    expect(phasesInOrder(spec({ containment: { order: 'ContainFirst' } }), all).map((p) => p.condition)).toEqual([
      'TargetResolved', 'NetworkIsolated', 'RBACNarrowed', 'ManifestCaptured', 'LogsCaptured', 'EvidenceSealed',
    ]);
  });

  test('the registered runbook starts with identity and ends with the seal', () => {
    expect(phases[0]!.condition).toBe('TargetResolved');
    expect(phases[phases.length - 1]!.condition).toBe('EvidenceSealed');
    expect(new Set(phases.map((p) => p.condition)).size).toBe(phases.length);
  });
});

describe('readiness and phase', () => {
  const list = [fake('TargetResolved'), fake('LogsCaptured'), fake('EvidenceSealed')];

  test('Unknown while any phase is not done, naming what it waits for', () => {
    const r = readiness([cond('TargetResolved', 'True')], list);
    expect(r.status).toBe('Unknown');
    expect(r.message).toContain('LogsCaptured');
  });

  test('False with the first failure in runbook order', () => {
    const r = readiness([cond('TargetResolved', 'False', 'TargetNotFound'), cond('LogsCaptured', 'False', 'TargetUnavailable'), cond('EvidenceSealed', 'True')], list);
    expect(r).toMatchObject({ status: 'False', reason: 'TargetNotFound' });
  });

  test('True only when every phase is True', () => {
    const done = list.map((p) => cond(p.condition, 'True'));
    expect(readiness(done, list).status).toBe('True');
    expect(overallPhase([...done, cond('Ready', 'True')], spec({}))).toBe('Completed');
    expect(overallPhase([...done, cond('Ready', 'False')], spec({}))).toBe('Failed');
  });
});
