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

  test('memory: Suspicious within 256 MiB by default; an unknown scope or a negative budget is refused with what to write', () => {
    expect(parseSpec({ target: { pod: 'web-1' } })).toMatchObject({ ok: true, spec: { evidence: { live: { memory: { scope: 'Suspicious', maxBytes: 268435456 } } } } });
    expect(parseSpec({ target: { pod: 'web-1' }, evidence: { live: { memory: { scope: 'None' } } } })).toMatchObject({ ok: true, spec: { evidence: { live: { memory: { scope: 'None', maxBytes: 268435456 } } } } });
    const scope = parseSpec({ target: { pod: 'web-1' }, evidence: { live: { memory: { scope: 'All' } } } });
    expect(scope).toMatchObject({ ok: false, message: expect.stringContaining('spec.evidence.live.memory.scope: must be one of Suspicious, Anonymous, None') });
    const budget = parseSpec({ target: { pod: 'web-1' }, evidence: { live: { memory: { maxBytes: -1 } } } });
    expect(budget).toMatchObject({ ok: false, message: expect.stringContaining('spec.evidence.live.memory.maxBytes') });
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

  test('spec.evidence.live.memory: the same scopes and default budget as parseSpec, in every CRD that carries a spec', () => {
    const fromParse = parseSpec({ target: { pod: 'web-1' } });
    if (!fromParse.ok) throw new Error(fromParse.message);
    const memoryOf = (file: string, path: string[]): any => {
      let node = parse(readFileSync(new URL(`../../../crds/${file}`, import.meta.url), 'utf8')).spec.versions[0].schema.openAPIV3Schema;
      for (const key of path) node = node.properties[key];
      return node.properties.evidence.properties.live.properties.memory.properties;
    };
    for (const memory of [memoryOf('investigations.casefile.dev.yaml', ['spec']), memoryOf('responsepolicies.casefile.dev.yaml', ['spec', 'investigation']), memoryOf('clusterresponsepolicies.casefile.dev.yaml', ['spec', 'investigation'])]) {
      expect(memory.scope.enum).toEqual(['Suspicious', 'Anonymous', 'None']);
      expect(memory.scope.default).toBe(fromParse.spec.evidence.live.memory.scope);
      expect(memory.maxBytes.default).toBe(fromParse.spec.evidence.live.memory.maxBytes);
    }
  });

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
