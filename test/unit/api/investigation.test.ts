import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { isCIDR, parseSpec, type EvidenceSignature, type EvidenceStatus } from '../../../src/api/investigation.js';

describe('parseSpec', () => {
  test('fills every default the design document promises', () => {
    const result = parseSpec({ target: { pod: 'web-1' } });
    if (!result.ok) throw new Error(result.message);
    expect(result.spec.containment.order).toBe('EvidenceFirst');
    expect(result.spec.containment.network.isolate).toBe(false);
    // Isolation is proven by a probe unless the spec opts out.
    expect(result.spec.containment.network.verify).toBe(true);
    expect(parseSpec({ target: { pod: 'web-1' }, containment: { network: { verify: false } } })).toMatchObject({ ok: true, spec: { containment: { network: { verify: false } } } });
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

describe('the CRD', () => {
  const crd = parse(readFileSync(new URL('../../../crds/investigations.casefile.dev.yaml', import.meta.url), 'utf8'));
  const schema = crd.spec.versions[0].schema.openAPIV3Schema;

  test('defaults network.verify to true, as parseSpec does', () => {
    expect(schema.properties.spec.properties.containment.properties.network.properties.verify.default).toBe(true);
  });

  test('describes every field of status.evidence and its signature, as the API types have them', () => {
    const evidence: Required<EvidenceStatus> = { path: '', artifacts: 0, bytes: 0, manifestSHA256: '', sealedAt: '', signature: { keyFingerprint: '', file: '', signedAt: '' } };
    const signature: Required<EvidenceSignature> = evidence.signature;
    const crdEvidence = schema.properties.status.properties.evidence;
    expect(Object.keys(crdEvidence.properties).sort()).toEqual(Object.keys(evidence).sort());
    expect(Object.keys(crdEvidence.properties.signature.properties).sort()).toEqual(Object.keys(signature).sort());
  });

  test('freezes spec.containment once a containment condition exists, unless release is set in the same edit', () => {
    const rules = (schema['x-kubernetes-validations'] ?? []) as { rule: string; message: string }[];
    const freeze = rules.find((r) => r.rule.includes('oldSelf.status.conditions'));
    expect(freeze).toBeDefined();
    for (const type of ['NetworkIsolated', 'RBACNarrowed', 'NodeCordoned']) expect(freeze!.rule).toContain(`'${type}'`);
    expect(freeze!.rule).toContain('self.spec.release');
    expect(freeze!.rule).toContain('self.spec.containment == oldSelf.spec.containment');
    expect(freeze!.message).toContain('spec.release: true');
    // The estimated CEL cost needs a bound on the list it walks.
    expect(schema.properties.status.properties.conditions.maxItems).toBeLessThanOrEqual(64);
  });
});
