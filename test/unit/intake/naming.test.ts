import { describe, expect, it } from '@jest/globals';
import { investigationName, policyLabelValue } from '../../../src/intake/naming.js';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('Investigation names', () => {
  it('are DNS labels of at most 63 characters', () => {
    const cases: [string, string, string, string][] = [
      ['casefile-system', 'shells-and-droppers', 'web-7d96c8f4d9-r2x5b', 'uid-1'],
      ['ns', 'A_Policy.With.Dots', 'pod.with.dots-0', 'uid-2'],
      ['ns', 'p'.repeat(253), 'x'.repeat(253), 'uid-3'],
      ['ns', '---', 'web---0--', 'uid-4'],
    ];
    for (const c of cases) {
      const name = investigationName(...c);
      expect(name).toMatch(LABEL);
      expect(name.length).toBeLessThanOrEqual(63);
    }
  });

  it('are stable, and differ per pod UID and per policy', () => {
    const a = investigationName('casefile-system', 'shells', 'web-0', '6f1c-1');
    expect(investigationName('casefile-system', 'shells', 'web-0', '6f1c-1')).toBe(a);
    expect(investigationName('casefile-system', 'shells', 'web-0', '6f1c-2')).not.toBe(a);
    expect(investigationName('other', 'shells', 'web-0', '6f1c-1')).not.toBe(a);
    expect(investigationName('casefile-system', 'droppers', 'web-0', '6f1c-1')).not.toBe(a);
    expect(a).toMatch(/^shells-web-0-[0-9a-f]{8}$/);
  });

  it('policy label values fit a label', () => {
    expect(policyLabelValue('shells')).toBe('shells');
    expect(policyLabelValue(`${'a'.repeat(62)}.b`)).toBe('a'.repeat(62));
  });
});
