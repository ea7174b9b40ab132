import { describe, expect, it } from '@jest/globals';
import {
  MAX_CONDITION_MESSAGE_LENGTH,
  getCondition,
  isTrue,
  setCondition,
  statusChanged,
} from '../../../src/api/conditions.js';
import type { Condition } from '../../../src/api/investigation.js';

const t0 = new Date('2026-11-20T10:00:00.123Z');
const t1 = new Date('2026-11-20T10:05:00.456Z');

describe('setCondition', () => {
  it('adds a new condition with second-precision transition time and observedGeneration', () => {
    const out = setCondition(undefined, { type: 'TargetResolved', status: 'True', reason: 'Resolved', message: 'ok' }, 3, t0);
    expect(out).toEqual([
      {
        type: 'TargetResolved',
        status: 'True',
        reason: 'Resolved',
        message: 'ok',
        lastTransitionTime: '2026-11-20T10:00:00Z',
        observedGeneration: 3,
      },
    ]);
  });

  it('keeps lastTransitionTime when the status is unchanged, updating reason, message and generation', () => {
    const first = setCondition([], { type: 'LogsCaptured', status: 'Unknown', reason: 'Streaming', message: 'a' }, 1, t0);
    const second = setCondition(first, { type: 'LogsCaptured', status: 'Unknown', reason: 'StillStreaming', message: 'b' }, 2, t1);
    expect(second[0]).toMatchObject({ reason: 'StillStreaming', message: 'b', observedGeneration: 2 });
    expect(second[0]!.lastTransitionTime).toBe('2026-11-20T10:00:00Z');
  });

  it('moves lastTransitionTime when the status changes', () => {
    const first = setCondition([], { type: 'LogsCaptured', status: 'Unknown', reason: 'Streaming', message: '' }, 1, t0);
    const second = setCondition(first, { type: 'LogsCaptured', status: 'True', reason: 'Captured', message: '' }, 1, t1);
    expect(second[0]!.lastTransitionTime).toBe('2026-11-20T10:05:00Z');
  });

  it('keeps existing order, appends new types, and does not mutate its input', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'InProgress', message: '' }, 1, t0);
    const b = setCondition(a, { type: 'TargetResolved', status: 'True', reason: 'Resolved', message: '' }, 1, t0);
    const snapshot = structuredClone(b);
    const c = setCondition(b, { type: 'Ready', status: 'True', reason: 'Done', message: '' }, 1, t1);
    expect(c.map((x) => x.type)).toEqual(['Ready', 'TargetResolved']);
    expect(b).toEqual(snapshot);
    expect(c).not.toBe(b);
    expect(c[1]).not.toBe(b[1]);
  });

  it('collapses duplicate types into the first', () => {
    const dup: Condition[] = [
      { type: 'Ready', status: 'False', reason: 'A', message: '', lastTransitionTime: 'x', observedGeneration: 1 },
      { type: 'Ready', status: 'True', reason: 'B', message: '', lastTransitionTime: 'y', observedGeneration: 1 },
    ];
    const out = setCondition(dup, { type: 'Ready', status: 'False', reason: 'C', message: '' }, 2, t0);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ reason: 'C', lastTransitionTime: 'x' });
  });

  it.each(['', 'lowerCamel', 'With Space', 'Snake_Case', 'Dash-Case', 'Punct.'])('rejects reason %j', (reason) => {
    expect(() => setCondition([], { type: 'Ready', status: 'True', reason, message: '' }, 1)).toThrow(/UpperCamelCase/);
  });

  it('rejects an invalid generation', () => {
    expect(() => setCondition([], { type: 'Ready', status: 'True', reason: 'Done', message: '' }, -1)).toThrow();
    expect(() => setCondition([], { type: 'Ready', status: 'True', reason: 'Done', message: '' }, 1.5)).toThrow();
  });

  it('truncates long messages to the API limit without splitting a character', () => {
    const long = 'x'.repeat(MAX_CONDITION_MESSAGE_LENGTH + 10);
    const out = setCondition([], { type: 'Ready', status: 'True', reason: 'Done', message: long }, 1);
    expect(out[0]!.message).toHaveLength(MAX_CONDITION_MESSAGE_LENGTH);

    const emoji = '😀'.repeat(MAX_CONDITION_MESSAGE_LENGTH + 1); // 2 UTF-16 units each
    const e = setCondition([], { type: 'Ready', status: 'True', reason: 'Done', message: emoji }, 1)[0]!.message;
    expect([...e]).toHaveLength(MAX_CONDITION_MESSAGE_LENGTH);
    expect(e.endsWith('😀')).toBe(true);
  });
});

describe('getCondition / isTrue', () => {
  const list = setCondition(
    setCondition([], { type: 'Ready', status: 'True', reason: 'Done', message: '' }, 1),
    { type: 'NetworkIsolated', status: 'False', reason: 'Refused', message: '' },
    1,
  );
  it('finds by type', () => {
    expect(getCondition(list, 'NetworkIsolated')?.reason).toBe('Refused');
    expect(getCondition(list, 'Released')).toBeUndefined();
    expect(getCondition(undefined, 'Ready')).toBeUndefined();
  });
  it('isTrue only for status True', () => {
    expect(isTrue(list, 'Ready')).toBe(true);
    expect(isTrue(list, 'NetworkIsolated')).toBe(false);
    expect(isTrue(list, 'Released')).toBe(false);
    expect(isTrue(undefined, 'Ready')).toBe(false);
  });
});

describe('statusChanged', () => {
  it('ignores key order at any depth', () => {
    expect(statusChanged({ a: 1, b: { c: [1, { d: 2, e: 3 }] } }, { b: { c: [1, { e: 3, d: 2 }] }, a: 1 })).toBe(false);
  });
  it('treats undefined properties as absent, as JSON does', () => {
    expect(statusChanged({ phase: 'Pending', target: undefined }, { phase: 'Pending' })).toBe(false);
  });
  it('detects changed values, array order, added keys, and type differences', () => {
    expect(statusChanged({ a: 1 }, { a: 2 })).toBe(true);
    expect(statusChanged({ a: [1, 2] }, { a: [2, 1] })).toBe(true);
    expect(statusChanged({ a: 1 }, { a: 1, b: null })).toBe(true);
    expect(statusChanged({ a: [] }, { a: {} })).toBe(true);
    expect(statusChanged({ a: '1' }, { a: 1 })).toBe(true);
    expect(statusChanged(undefined, {})).toBe(true);
  });
  it('is false for a condition list recomputed without change', () => {
    const before = setCondition([], { type: 'Ready', status: 'True', reason: 'Done', message: 'm' }, 1, t0);
    const after = setCondition(structuredClone(before), { type: 'Ready', status: 'True', reason: 'Done', message: 'm' }, 1, t1);
    expect(statusChanged({ conditions: before }, { conditions: after })).toBe(false);
  });
});
