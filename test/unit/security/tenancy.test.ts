import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { parse as parseYAML } from 'yaml';
import { IMAGE_REFUSAL, parseSpec } from '../../../src/api/investigation.js';
import { NAMESPACED_NODE_ACTION_REFUSAL, parsePolicySpec, type ResponsePolicy } from '../../../src/api/response-policy.js';
import { parseAlert, type FalcoAlert } from '../../../src/intake/alert-schema.js';
import { inScope, PolicyCache } from '../../../src/intake/policy-cache.js';
import { fixture, silent } from '../intake/helpers.js';

const target = { pod: 'web-0' };

describe('a spec cannot choose the image of casefile\'s containers', () => {
  it('spec.evidence.live.image is refused with a message naming the allowed setting', () => {
    const r = parseSpec({ target, evidence: { live: { enabled: true, image: 'evil.example/root-shell:latest' } } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.message).toContain('spec.evidence.live.image');
    expect(r.message).toContain('ConfigMap casefile-system/casefile-containers');
    expect(r.message).toContain('--debug-image');
  });

  it('a spec without an image (or with null from an older client) parses', () => {
    expect(parseSpec({ target, evidence: { live: { enabled: true } } }).ok).toBe(true);
    expect(parseSpec({ target, evidence: { live: { enabled: true, image: null } } }).ok).toBe(true);
  });

  it('a policy template cannot choose one either', () => {
    for (const kind of ['ResponsePolicy', 'ClusterResponsePolicy'] as const) {
      const r = parsePolicySpec({ investigation: { evidence: { live: { enabled: true, image: 'evil:1' } } } }, kind);
      expect(r).toMatchObject({ ok: false });
      expect(!r.ok && r.message).toContain(IMAGE_REFUSAL);
    }
  });
});

describe('node-level actions in policy templates', () => {
  it.each([
    ['spec.investigation.evidence.node.enabled', { evidence: { node: { enabled: true } } }],
    ['spec.investigation.containment.cordonNode', { containment: { cordonNode: true } }],
    ['spec.investigation.containment.rbac.narrow', { containment: { rbac: { narrow: true } } }],
  ])('a namespaced ResponsePolicy asking for %s is refused; a ClusterResponsePolicy may ask', (field, investigation) => {
    const namespaced = parsePolicySpec({ investigation }, 'ResponsePolicy');
    expect(namespaced.ok).toBe(false);
    expect(!namespaced.ok && namespaced.message).toBe(`${field}: ${NAMESPACED_NODE_ACTION_REFUSAL}`);
    expect(parsePolicySpec({ investigation }, 'ClusterResponsePolicy').ok).toBe(true);
  });

  it('a namespaced policy without node-level actions parses', () => {
    expect(parsePolicySpec({ investigation: { containment: { network: { isolate: true } }, evidence: { live: { enabled: true } } } }, 'ResponsePolicy').ok).toBe(true);
  });
});

describe('ResponsePolicy scope (Issuer/ClusterIssuer)', () => {
  const alert = (): FalcoAlert => {
    const r = parseAlert(fixture('falcosidekick-webhook-drop-and-execute.json'));
    if (!r.ok) throw new Error(r.message);
    return r.value.alert;
  };
  const policy = (kind: ResponsePolicy['kind'], namespace: string | undefined, name: string, spec: Record<string, unknown>): ResponsePolicy => ({
    apiVersion: 'casefile.dev/v1alpha1',
    kind,
    metadata: { ...(namespace ? { namespace } : {}), name, uid: name, resourceVersion: '1' },
    spec,
  });

  it('a namespaced policy matches only pods in its own namespace, whatever match.namespaces says', () => {
    const cache = new PolicyCache({
      namespaced: { list: () => [policy('ResponsePolicy', 'team-a', 'reach-out', { match: { namespaces: ['team-b'] } }), policy('ResponsePolicy', 'team-b', 'own', {})] },
      cluster: { list: () => [policy('ClusterResponsePolicy', undefined, 'everywhere', { match: { excludeNamespaces: ['kube-system'] } })] },
    }, silent);
    const names = (ns: string) => cache.matching(alert(), ns).map((p) => `${p.kind}:${p.namespace}/${p.name}`);
    expect(names('team-b')).toEqual(['ClusterResponsePolicy:/everywhere', 'ResponsePolicy:team-b/own']);
    // team-a's policy asked for team-b: out of its scope there, and its own match excludes team-a.
    expect(names('team-a')).toEqual(['ClusterResponsePolicy:/everywhere']);
    expect(cache.matching(alert(), 'kube-system')).toEqual([]);
  });

  it('a namespaced policy asking for node-level actions is never matched', () => {
    const cache = new PolicyCache({ namespaced: { list: () => [policy('ResponsePolicy', 'team-a', 'cordoner', { investigation: { containment: { cordonNode: true } } })] } }, silent);
    expect(cache.matching(alert(), 'team-a')).toEqual([]);
  });

  it('inScope', () => {
    expect(inScope({ kind: 'ResponsePolicy', namespace: 'a' }, 'a')).toBe(true);
    expect(inScope({ kind: 'ResponsePolicy', namespace: 'a' }, 'b')).toBe(false);
    expect(inScope({ kind: 'ClusterResponsePolicy', namespace: '' }, 'b')).toBe(true);
  });
});

// The API server enforces the same refusals first (CEL in the CRDs; the e2e suite e2e/security proves
// them against a real API server). Here: the rules are where they must be, with the same words.
describe('the CRDs carry the refusals', () => {
  type Schema = { properties?: Record<string, Schema>; 'x-kubernetes-validations'?: { rule: string; message: string }[] };
  const crdSchema = (file: string): Schema => (parseYAML(readFileSync(`crds/${file}`, 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }).spec.versions[0]!.schema.openAPIV3Schema;
  const at = (schema: Schema, path: string[]): Schema => path.reduce((s, p) => s.properties![p]!, schema);
  const rules = (schema: Schema) => (schema['x-kubernetes-validations'] ?? []).map((v) => v.rule);

  it('Investigation: spec.evidence.live.image is refused with the configured setting named', () => {
    const live = at(crdSchema('investigations.casefile.dev.yaml'), ['spec', 'evidence', 'live']);
    expect(live['x-kubernetes-validations']).toEqual([expect.objectContaining({ rule: '!has(self.image)', message: expect.stringContaining('ConfigMap casefile-system/casefile-containers') })]);
  });

  it('ResponsePolicy refuses the image and every node-level action; ClusterResponsePolicy only the image', () => {
    for (const [file, nodeRules] of [['responsepolicies.casefile.dev.yaml', true], ['clusterresponsepolicies.casefile.dev.yaml', false]] as const) {
      const template = at(crdSchema(file), ['spec', 'investigation']);
      expect(rules(at(template, ['evidence', 'live']))).toEqual(['!has(self.image)']);
      const expected = (rule: string) => (nodeRules ? [rule] : []);
      expect(rules(at(template, ['evidence', 'node']))).toEqual(expected('!has(self.enabled) || !self.enabled'));
      expect(rules(at(template, ['containment']))).toEqual(expected('!has(self.cordonNode) || !self.cordonNode'));
      expect(rules(at(template, ['containment', 'rbac']))).toEqual(expected('!has(self.narrow) || !self.narrow'));
    }
  });
});
