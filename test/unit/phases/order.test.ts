import { FINALIZER, parseSpec, type Condition, type InvestigationSpec } from '../../../src/api/investigation.js';
import { changedForReconcile, isSettled, overallPhase, readiness, settledAsDelivered } from '../../../src/engine/case-status.js';
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

describe('settled cases (isSettled, settledAsDelivered)', () => {
  const list = [fake('TargetResolved'), fake('LogsCaptured'), fake('EvidenceSealed')];
  const done = [...list.map((p) => cond(p.condition, 'True')), cond('Ready', 'True')];

  test('settled only with every phase, Ready and a requested release settled, at this generation', () => {
    expect(isSettled({ conditions: done, observedGeneration: 1 }, 1, spec({}), list)).toBe(true);
    expect(isSettled({ conditions: done, observedGeneration: 1 }, 2, spec({}), list)).toBe(false); // edited since
    expect(isSettled({ conditions: [...done.slice(0, 2), cond('EvidenceSealed', 'Unknown'), done[3]!], observedGeneration: 1 }, 1, spec({}), list)).toBe(false);
    expect(isSettled({ conditions: done.slice(0, 3), observedGeneration: 1 }, 1, spec({}), list)).toBe(false); // no Ready
    expect(isSettled({ conditions: done, observedGeneration: 1 }, 1, spec({ release: true }), list)).toBe(false);
    expect(isSettled({ conditions: [...done, cond('Released', 'True')], observedGeneration: 1 }, 1, spec({ release: true }), list)).toBe(true);
    // A failed phase is settled too: a failed case has nothing left to do either.
    expect(isSettled({ conditions: [cond('TargetResolved', 'False'), ...done.slice(1)], observedGeneration: 1 }, 1, spec({}), list)).toBe(true);
    expect(isSettled(undefined, 1, spec({}), list)).toBe(false);
  });

  test('settledAsDelivered reads the informer\'s object: never for a deletion, a missing finalizer, a spec that does not parse, or a phase not settled', () => {
    const ordered = phasesInOrder(spec({}));
    const all = [...ordered.map((p) => cond(p.condition, 'True')), cond('Ready', 'True')];
    const obj = { metadata: { generation: 1, finalizers: [FINALIZER] }, spec: { target: { pod: 'p' } }, status: { conditions: all, observedGeneration: 1 } };
    expect(settledAsDelivered(obj, phases)).toBe(true);
    expect(settledAsDelivered({ ...obj, metadata: { generation: 1, finalizers: [FINALIZER], deletionTimestamp: 'now' } }, phases)).toBe(false);
    // Someone took the finalizer away: a reconcile puts it back, so release still runs on deletion.
    expect(settledAsDelivered({ ...obj, metadata: { generation: 1, finalizers: [] } }, phases)).toBe(false);
    expect(settledAsDelivered({ ...obj, metadata: { generation: 2, finalizers: [FINALIZER] } }, phases)).toBe(false);
    expect(settledAsDelivered({ ...obj, spec: { target: {} } }, phases)).toBe(false);
    expect(settledAsDelivered({ ...obj, status: { conditions: all.filter((c) => c.type !== ordered.at(-1)!.condition), observedGeneration: 1 } }, phases)).toBe(false);
  });
});

describe('changedForReconcile (which updates queue a case)', () => {
  const base = { metadata: { generation: 3, finalizers: [FINALIZER] } };
  test('a spec change, a deletion or casefile\'s finalizer taken away does; status, labels, annotations and its own finalizer added do not', () => {
    expect(changedForReconcile(undefined, base)).toBe(true);
    expect(changedForReconcile(base, { metadata: { ...base.metadata } })).toBe(false);
    expect(changedForReconcile(base, { metadata: { ...base.metadata, labels: { a: 'b' }, annotations: { c: 'd' } } as never })).toBe(false);
    expect(changedForReconcile(base, { metadata: { ...base.metadata, generation: 4 } })).toBe(true);
    expect(changedForReconcile(base, { metadata: { ...base.metadata, deletionTimestamp: '2026-12-04T00:00:00Z' } })).toBe(true);
    expect(changedForReconcile(base, { metadata: { generation: 3, finalizers: [] } })).toBe(true);
    // The reconcile that added it goes on: the event of its own patch is no reason to run again.
    expect(changedForReconcile({ metadata: { generation: 3 } }, base)).toBe(false);
    expect(changedForReconcile(base, { metadata: { generation: 3, finalizers: [FINALIZER, 'other'] } })).toBe(false);
  });
});
