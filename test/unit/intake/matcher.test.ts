import { describe, expect, it } from '@jest/globals';
import { policyMatchSchema, parsePolicySpec } from '../../../src/api/response-policy.js';
import { parseAlert, type FalcoAlert } from '../../../src/intake/alert-schema.js';
import { matches, mismatch } from '../../../src/intake/matcher.js';
import { fixture } from './helpers.js';

const alert = (): FalcoAlert => {
  const r = parseAlert(fixture('falcosidekick-webhook-drop-and-execute.json'));
  if (!r.ok) throw new Error(r.message);
  return r.value.alert;
};
const match = (m: Record<string, unknown>) => policyMatchSchema.parse(m);

describe('policy matching', () => {
  it('an empty match selects everything', () => {
    expect(mismatch(match({}), alert(), 'production')).toBeUndefined();
  });

  it.each([
    ['rules', { rules: ['Drop and execute new binary in container'] }, { rules: ['Terminal shell in container'] }],
    ['minPriority', { minPriority: 'Critical' }, { minPriority: 'Alert' }],
    ['tags', { tags: ['container', 'TA0003'] }, { tags: ['container', 'network'] }],
    ['sources', { sources: ['syscall'] }, { sources: ['k8s_audit'] }],
    ['namespaces', { namespaces: ['production', 'staging'] }, { namespaces: ['staging'] }],
    ['excludeNamespaces', { excludeNamespaces: ['kube-system'] }, { excludeNamespaces: ['production'] }],
    ['outputFields', { outputFields: { 'container.name': 'app', 'user.uid': '1000', cluster: 'prod-eu-1' } }, { outputFields: { 'user.uid': '0' } }],
  ])('%s: positive and negative', (criterion, yes, no) => {
    expect(mismatch(match(yes), alert(), 'production')).toBeUndefined();
    expect(mismatch(match(no), alert(), 'production')).toBe(criterion);
  });

  it('outputFields: every key is checked, whichever one differs', () => {
    const want = { 'container.name': 'app', 'user.uid': '1000', cluster: 'prod-eu-1' };
    expect(mismatch(match({ outputFields: want }), alert(), 'production')).toBeUndefined();
    for (const key of Object.keys(want)) {
      const wrong = { ...want, [key]: 'something else' };
      expect([key, mismatch(match({ outputFields: wrong }), alert(), 'production')]).toEqual([key, 'outputFields']);
    }
    expect(mismatch(match({ outputFields: { ...want, 'absent.field': 'x' } }), alert(), 'production')).toBe('outputFields');
    // A missing field is not the string "undefined".
    expect(mismatch(match({ outputFields: { 'absent.field': 'undefined' } }), alert(), 'production')).toBe('outputFields');
  });

  it('matches is mismatch === undefined', () => {
    expect(matches(match({ namespaces: ['production'] }), alert(), 'production')).toBe(true);
    expect(matches(match({ namespaces: ['staging'] }), alert(), 'production')).toBe(false);
  });

  it('minPriority compares in Falco order, whatever the case the sender wrote', () => {
    const r = parseAlert(JSON.stringify({ rule: 'r', priority: 'warning', time: '2026-11-20T10:17:03Z' }));
    if (!r.ok) throw new Error(r.message);
    const a = r.value.alert;
    expect(mismatch(match({ minPriority: 'Warning' }), a, 'x')).toBeUndefined();
    expect(mismatch(match({ minPriority: 'Notice' }), a, 'x')).toBeUndefined();
    expect(mismatch(match({ minPriority: 'Error' }), a, 'x')).toBe('minPriority');
  });

  it('a missing output field never matches; null compares as "null"', () => {
    const a = { ...alert(), output_fields: { 'k8s.ns.name': null } };
    expect(mismatch(match({ outputFields: { 'proc.name': 'sh' } }), a, 'x')).toBe('outputFields');
    expect(mismatch(match({ outputFields: { 'k8s.ns.name': 'null' } }), a, 'x')).toBeUndefined();
  });

  it('an alert without a source does not match a sources list', () => {
    const { source: _s, ...rest } = alert();
    expect(mismatch(match({ sources: ['syscall'] }), rest as FalcoAlert, 'x')).toBe('sources');
  });

  it('policy specs are validated with field-named messages', () => {
    expect(parsePolicySpec({ match: { minPriority: 'Loud' } })).toMatchObject({ ok: false, message: expect.stringContaining('spec.match.minPriority') });
    expect(parsePolicySpec({ investigation: { target: { pod: 'x' } } })).toMatchObject({ ok: false, message: expect.stringContaining('spec.investigation') });
    const ok = parsePolicySpec({ investigation: { containment: { order: 'ContainFirst' } } });
    expect(ok).toMatchObject({ ok: true, template: { containment: { order: 'ContainFirst' } } });
  });
});
