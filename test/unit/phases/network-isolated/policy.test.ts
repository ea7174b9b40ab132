// What isolation looks like, as pure functions: the incident label, the deny-all policy that selects
// it (with only the allowances the spec names), which other policies must be patched to exclude the
// label, and the sentence that says what stays open.
import { describe, expect, test } from '@jest/globals';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { parseSpec, type Investigation, type InvestigationSpec } from '../../../../src/api/investigation.js';
import { caseIsolationId, describeAllowances, excludesLabel, incidentLabel, isolationPolicy, needsExclusion, policyName, type PolicyOwner } from '../../../../src/phases/network-isolated/policy.js';

const UID = '0A1B2C3D-0000-1111-2222-333344445555';
const inv: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: 'shop', uid: UID }, spec: {} };
const owner: PolicyOwner = { apiVersion: inv.apiVersion, name: 'case-1', namespace: 'shop', uid: UID };
const ID = caseIsolationId(inv);

function spec(network: Record<string, unknown>): InvestigationSpec {
  const r = parseSpec({ target: { pod: 'web-1' }, containment: { network: { isolate: true, ...network } } });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
}

const DNS_RULE = {
  to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
};

describe('incident label and policy name', () => {
  test('one key per Investigation, from the first 8 hex digits of its UID', () => {
    expect(ID).toBe('0a1b2c3d');
    expect(incidentLabel(ID)).toEqual({ key: 'casefile.dev/incident-0a1b2c3d', value: 'isolated' });
    expect(policyName(ID)).toBe('casefile-0a1b2c3d');
  });
});

const AT = new Date('2026-12-03T17:00:00.123Z');

describe('isolationPolicy', () => {
  test('with no allowance: selects the label, denies all ingress and egress, owned by the Investigation', () => {
    expect(isolationPolicy(owner, ID, spec({}), AT)).toEqual({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: 'casefile-0a1b2c3d',
        namespace: 'shop',
        labels: { 'app.kubernetes.io/managed-by': 'casefile', 'casefile.dev/investigation': 'case-1' },
        annotations: { 'casefile.dev/investigation-uid': UID, 'casefile.dev/applied-at': '2026-12-03T17:00:00.123Z' },
        ownerReferences: [{ apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', name: 'case-1', uid: UID }],
      },
      spec: {
        podSelector: { matchLabels: { 'casefile.dev/incident-0a1b2c3d': 'isolated' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [],
        egress: [],
      },
    });
  });

  test('made ahead of the Investigation (no UID yet): no UID annotation, no owner, the id as a label for the sweep', () => {
    const p = isolationPolicy({ apiVersion: inv.apiVersion, name: 'case-1', namespace: 'shop' }, 'feedc0de', spec({}), AT);
    expect(p.metadata).toEqual({
      name: 'casefile-feedc0de',
      namespace: 'shop',
      labels: { 'app.kubernetes.io/managed-by': 'casefile', 'casefile.dev/investigation': 'case-1', 'casefile.dev/isolated-ahead': 'feedc0de' },
      annotations: { 'casefile.dev/applied-at': '2026-12-03T17:00:00.123Z' },
    });
    expect(p.spec!.podSelector).toEqual({ matchLabels: { 'casefile.dev/incident-feedc0de': 'isolated' } });
  });

  test('allowed CIDRs and namespaces are peers both ways; DNS is egress to kube-dns only', () => {
    const p = isolationPolicy(owner, ID, spec({ allowCIDRs: ['10.0.0.0/8', '192.168.1.0/24'], allowNamespaces: ['monitoring', 'forensics'], allowDNS: true }), AT);
    const peers = [
      { ipBlock: { cidr: '10.0.0.0/8' } },
      { ipBlock: { cidr: '192.168.1.0/24' } },
      { namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['monitoring', 'forensics'] }] } },
    ];
    expect(p.spec!.ingress).toEqual([{ _from: peers }]);
    expect(p.spec!.egress).toEqual([{ to: peers }, DNS_RULE]);
  });

  test('CIDRs alone add no namespace peer; DNS alone opens no ingress', () => {
    expect(isolationPolicy(owner, ID, spec({ allowCIDRs: ['10.0.0.0/8'] }), AT).spec).toMatchObject({ ingress: [{ _from: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }] });
    expect(isolationPolicy(owner, ID, spec({ allowDNS: true }), AT).spec).toMatchObject({ ingress: [], egress: [DNS_RULE] });
  });

  test('a long Investigation name is cut to a valid 63-character label value', () => {
    expect(isolationPolicy({ ...owner, name: 'n'.repeat(80) }, ID, spec({}), AT).metadata!.labels!['casefile.dev/investigation']).toBe('n'.repeat(63));
  });
});

describe('needsExclusion and excludesLabel', () => {
  const labelled = { app: 'web', 'casefile.dev/incident-0a1b2c3d': 'isolated' };
  const policy = (spec: V1NetworkPolicy['spec'], labels?: Record<string, string>): V1NetworkPolicy => ({ metadata: { name: 'p', labels }, spec });

  test("someone else's policy that selects the pod and allows ingress or egress must exclude the label", () => {
    expect(needsExclusion(policy({ podSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }), labelled)).toBe(true);
    expect(needsExclusion(policy({ podSelector: {}, egress: [{}] }), labelled)).toBe(true);
  });

  test('not ours, not a deny-only policy, not one that does not select the pod', () => {
    expect(needsExclusion(policy({ podSelector: {}, ingress: [{}] }, { 'app.kubernetes.io/managed-by': 'casefile' }), labelled)).toBe(false);
    expect(needsExclusion(policy({ podSelector: {}, ingress: [{}] }, { 'app.kubernetes.io/managed-by': 'helm' }), labelled)).toBe(true);
    expect(needsExclusion(policy({ podSelector: {}, ingress: [], egress: [] }), labelled)).toBe(false);
    expect(needsExclusion(policy({ podSelector: {} }), labelled)).toBe(false);
    expect(needsExclusion(policy({ podSelector: { matchLabels: { app: 'db' } }, ingress: [{}] }), labelled)).toBe(false);
    expect(needsExclusion({ metadata: { name: 'no-spec' } }, labelled)).toBe(false);
  });

  test('excludesLabel: any match expression on the key', () => {
    const key = 'casefile.dev/incident-0a1b2c3d';
    expect(excludesLabel(policy({ podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }, { key, operator: 'DoesNotExist' }] } }), key)).toBe(true);
    expect(excludesLabel(policy({ podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] } }), key)).toBe(false);
    expect(excludesLabel(policy({ podSelector: { matchLabels: { [key]: 'x' } } }), key)).toBe(false);
    expect(excludesLabel({ metadata: { name: 'no-spec' } }, key)).toBe(false);
  });
});

describe('describeAllowances', () => {
  test('nothing open: empty; else each allowance in order', () => {
    expect(describeAllowances(spec({}))).toBe('');
    expect(describeAllowances(spec({ allowDNS: true }))).toBe(' except DNS to kube-dns');
    expect(describeAllowances(spec({ allowNamespaces: ['monitoring'] }))).toBe(' except namespaces monitoring');
    expect(describeAllowances(spec({ allowDNS: true, allowCIDRs: ['10.0.0.0/8', '10.1.0.0/16'], allowNamespaces: ['a', 'b'] }))).toBe(
      ' except DNS to kube-dns; CIDRs 10.0.0.0/8, 10.1.0.0/16; namespaces a, b',
    );
  });
});
