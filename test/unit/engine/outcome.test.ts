import { classify } from '../../../src/engine/outcome.js';
import { RepeatFilter } from '../../../src/engine/repeat-filter.js';
import { during, RequeueAfter, RetryableError, TerminalError } from '../../../src/errors.js';
import { EvidenceStoreFullError } from '../../../src/evidence/store.js';

const api = (code: number, message: string) => Object.assign(new Error(`HTTP ${code}`), { code, body: { message } });

describe('classify: one verdict per error, whoever threw it', () => {
  test('the three signals, also through during() context', () => {
    expect(classify(new TerminalError('policy name taken', 'PolicyNameTaken'))).toEqual({ kind: 'terminal', reason: 'PolicyNameTaken', message: 'policy name taken' });
    expect(classify(during('creating NetworkPolicy x', new RequeueAfter('pod starting', 1500, 'PodStarting')))).toEqual({
      kind: 'wait', reason: 'PodStarting', message: 'creating NetworkPolicy x: pod starting', afterMs: 1500,
    });
    expect(classify(during('a', during('b', new RetryableError('flaky', 'Conflict'))))).toEqual({ kind: 'retry', reason: 'Conflict', message: 'a: b: flaky' });
  });

  test('API answers: 403 and 422 are terminal, 409 and 5xx retried; the server message is kept', () => {
    expect(classify(during('narrowing RBAC', api(403, 'rolebindings is forbidden')))).toMatchObject({ kind: 'terminal', reason: 'Forbidden', message: expect.stringContaining('narrowing RBAC: 403: rolebindings is forbidden') });
    expect(classify(api(422, 'spec.podSelector: Invalid value'))).toMatchObject({ kind: 'terminal', reason: 'Invalid' });
    expect(classify(api(409, 'the object has been modified'))).toMatchObject({ kind: 'retry', reason: 'Conflict' });
    expect(classify(api(503, 'unavailable'))).toMatchObject({ kind: 'retry', reason: 'Retrying' });
    expect(classify(new Error('socket hang up'))).toMatchObject({ kind: 'retry', reason: 'Retrying' });
  });

  test('a full evidence volume is terminal, with the store reason', () => {
    expect(classify(during('writing', new EvidenceStoreFullError('volume full', 'a.txt', 'ENOSPC')))).toMatchObject({ kind: 'terminal', reason: 'EvidenceStoreFull' });
  });
});

describe('RepeatFilter', () => {
  test('the same message for a key is admitted once per interval, with the count held back', () => {
    let t = 0;
    const f = new RepeatFilter(60_000, () => t);
    expect(f.admit('k', 'boom')).toBe(0);
    for (let i = 0; i < 100; i++) {
      t += 100;
      expect(f.admit('k', 'boom')).toBeUndefined();
    }
    expect(f.admit('other', 'boom')).toBe(0); // another key is not held back
    expect(f.admit('k', 'different')).toBe(0); // a new message is news
    t += 60_000;
    expect(f.admit('k', 'different')).toBe(0);
  });
});
