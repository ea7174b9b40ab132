import { describe, expect, it } from '@jest/globals';
import { falcoPriorities } from '../../../src/api/investigation.js';
import { normalizePriority, outputField, parseAlert, priorityRank } from '../../../src/intake/alert-schema.js';
import { fixture, fixtureNames } from './helpers.js';

describe('alert parsing', () => {
  it.each(fixtureNames('.json'))('accepts %s', (name) => {
    const result = parseAlert(fixture(name));
    if (!result.ok) throw new Error(result.message);
    const original = JSON.parse(fixture(name)) as { rule: string; output_fields: Record<string, unknown> };
    expect(result.value.alert.rule).toBe(original.rule);
    // output_fields keep their JSON types: numbers stay numbers, null stays null.
    expect(result.value.alert.output_fields).toEqual(original.output_fields);
  });

  it('tells Falco from Falcosidekick by uuid or User-Agent', () => {
    expect(parseAlert(fixture('falco-http-output-terminal-shell.json')).ok && (parseAlert(fixture('falco-http-output-terminal-shell.json')) as any).value.sender).toBe('falco');
    expect((parseAlert(fixture('falcosidekick-webhook-drop-and-execute.json')) as any).value.sender).toBe('falcosidekick');
    const noUuid = JSON.stringify({ ...JSON.parse(fixture('falcosidekick-webhook-outbound-c2.json')), uuid: undefined });
    expect((parseAlert(noUuid, 'Falcosidekick') as any).value.sender).toBe('falcosidekick');
  });

  it('refuses the plain-text fixture as not JSON', () => {
    const result = parseAlert(fixture('falco-http-output-plaintext.txt'));
    expect(result).toMatchObject({ ok: false, field: '(body)' });
  });

  it.each([
    ['rule', { priority: 'Critical', time: '2026-11-20T10:17:03Z' }],
    ['priority', { rule: 'r', time: '2026-11-20T10:17:03Z' }],
    ['time', { rule: 'r', priority: 'Critical' }],
  ])('names the missing field %s', (field, body) => {
    expect(parseAlert(JSON.stringify(body))).toMatchObject({ ok: false, field });
  });

  it('names bad values, output_fields keys included', () => {
    const base = { rule: 'r', priority: 'Critical', time: '2026-11-20T10:17:03Z' };
    expect(parseAlert(JSON.stringify({ ...base, priority: 'Loud' }))).toMatchObject({ ok: false, field: 'priority' });
    expect(parseAlert(JSON.stringify({ ...base, time: 'yesterday' }))).toMatchObject({ ok: false, field: 'time' });
    expect(parseAlert(JSON.stringify({ ...base, tags: 'shell' }))).toMatchObject({ ok: false, field: 'tags' });
    const nested = parseAlert(JSON.stringify({ ...base, output_fields: { 'proc.args': ['a'] } }));
    expect(nested).toMatchObject({ ok: false, field: 'output_fields["proc.args"]' });
    expect(parseAlert('[1,2]')).toMatchObject({ ok: false, field: '(body)' });
  });

  it('needs only rule, priority and time', () => {
    const result = parseAlert(JSON.stringify({ rule: 'r', priority: 'warning', time: '2026-11-20T10:17:03Z' }));
    expect(result).toMatchObject({ ok: true, value: { alert: { priority: 'Warning', tags: [], output_fields: {} } } });
  });
});

describe('priorities', () => {
  it("orders Falco's priorities Emergency > ... > Debug", () => {
    const ranks = falcoPriorities.map(priorityRank);
    expect(ranks).toEqual([...ranks].sort((a, b) => b - a));
    expect(priorityRank('Emergency')).toBeGreaterThan(priorityRank('Alert'));
    expect(priorityRank('Warning')).toBeGreaterThan(priorityRank('Notice'));
    expect(priorityRank('Informational')).toBeGreaterThan(priorityRank('Debug'));
  });

  it('accepts case variants and Info', () => {
    expect(normalizePriority('CRITICAL')).toBe('Critical');
    expect(normalizePriority('critical')).toBe('Critical');
    expect(normalizePriority('Info')).toBe('Informational');
    expect(normalizePriority('informational')).toBe('Informational');
    expect(normalizePriority('Severe')).toBeUndefined();
  });
});

describe('alert parsing: exact messages and fields', () => {
  const base = { rule: 'r', priority: 'Critical', time: '2026-11-20T10:17:03Z' };

  it('a body that is JSON but not one object is refused as such', () => {
    for (const body of ['[1,2]', 'null', '42', '"alert"']) {
      expect(parseAlert(body)).toEqual({ ok: false, field: '(body)', message: 'expected a JSON object (one Falco alert)' });
    }
  });

  it('an unknown priority lists the accepted ones', () => {
    expect(parseAlert(JSON.stringify({ ...base, priority: 'Loud' }))).toEqual({
      ok: false,
      field: 'priority',
      message: `priority: must be one of ${falcoPriorities.join(', ')} (any case, or Info)`,
    });
  });

  it('fields are joined with dots; output_fields keys are quoted whole; a bad output_fields itself is named plainly', () => {
    expect(parseAlert(JSON.stringify({ ...base, tags: ['ok', 5] }))).toMatchObject({ ok: false, field: 'tags.1' });
    expect(parseAlert(JSON.stringify({ ...base, output_fields: 5 }))).toMatchObject({ ok: false, field: 'output_fields' });
    const r = parseAlert(JSON.stringify({ ...base, output_fields: { 'k8s.pod.name': {} } }));
    expect(r).toMatchObject({ ok: false, field: 'output_fields["k8s.pod.name"]' });
    expect(!r.ok && r.message.startsWith('output_fields["k8s.pod.name"]: ')).toBe(true);
  });

  it('only a User-Agent that starts with Falcosidekick marks the sender', () => {
    const body = JSON.stringify(base);
    expect(parseAlert(body, 'falcosidekick/2.31.1')).toMatchObject({ ok: true, value: { sender: 'falcosidekick' } });
    expect(parseAlert(body, 'curl/8.0 (not-falcosidekick)')).toMatchObject({ ok: true, value: { sender: 'falco' } });
    expect(parseAlert(body)).toMatchObject({ ok: true, value: { sender: 'falco' } });
  });

  it('outputField: strings as given, numbers and booleans as strings, null and missing as undefined', () => {
    const r = parseAlert(JSON.stringify({ ...base, output_fields: { 'proc.name': 'sh', 'user.uid': 0, 'evt.is_async': false, 'fd.name': null } }));
    if (!r.ok) throw new Error(r.message);
    const a = r.value.alert;
    expect(['proc.name', 'user.uid', 'evt.is_async', 'fd.name', 'absent'].map((k) => outputField(a, k))).toEqual(['sh', '0', 'false', undefined, undefined]);
  });
});

describe('priorityRank', () => {
  it('runs from Emergency 7 down to Debug 0', () => {
    expect(falcoPriorities.map((p) => priorityRank(p))).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
  });
});
