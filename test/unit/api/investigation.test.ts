import { isCIDR, parseSpec } from '../../../src/api/investigation.js';

describe('parseSpec', () => {
  test('fills every default the design document promises', () => {
    const result = parseSpec({ target: { pod: 'web-1' } });
    if (!result.ok) throw new Error(result.message);
    expect(result.spec.containment.order).toBe('EvidenceFirst');
    expect(result.spec.containment.network.isolate).toBe(false);
    expect(result.spec.evidence.logs).toEqual({ previous: true, sinceSeconds: null, limitBytes: 52428800 });
    expect(result.spec.evidence.live.paths).toEqual(['/tmp', '/var/tmp', '/dev/shm']);
    expect(result.spec.release).toBe(false);
  });

  test('names the field and what to fix', () => {
    const result = parseSpec({ target: { pod: 'Web_1' }, containment: { order: 'Sometimes' } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.message).toContain('spec.target.pod');
    expect(result.message).toContain('spec.containment.order');
  });

  test('refuses a missing target and non-CIDR allowances', () => {
    expect(parseSpec({}).ok).toBe(false);
    const bad = parseSpec({ target: { pod: 'a' }, containment: { network: { allowCIDRs: ['10.0.0.0/33'] } } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.message).toContain('spec.containment.network.allowCIDRs.0');
  });

  test('refuses live paths that are relative or climb out', () => {
    expect(parseSpec({ target: { pod: 'a' }, evidence: { live: { paths: ['tmp'] } } }).ok).toBe(false);
    expect(parseSpec({ target: { pod: 'a' }, evidence: { live: { paths: ['/tmp/../etc'] } } }).ok).toBe(false);
  });
});

describe('isCIDR', () => {
  test.each(['10.0.0.0/8', '192.168.1.7/32', '0.0.0.0/0', 'fd00::/8', '2001:db8::/32'])('accepts %s', (c) => expect(isCIDR(c)).toBe(true));
  test.each(['10.0.0.0', '10.0.0.0/33', '300.1.1.1/8', 'fd00::/129', 'not-a-cidr', '1.2.3.4/8/9', '::1::2/64'])('rejects %s', (c) =>
    expect(isCIDR(c)).toBe(false));
});
