import { describe, expect, it } from '@jest/globals';
import { discoveryDocument, parseCaseApiPath } from '../../../src/caseapi/routes.js';
import { identityFromHeaders, proxyCertificateProblem, requestHeaderConfig } from '../../../src/caseapi/front-proxy.js';
import { caseFilePath } from '../../../src/cli/plugin/view.js';

const BASE = '/apis/cases.casefile.dev/v1alpha1';

describe('case-file API paths', () => {
  it('parses discovery, a case, and its bundle and report', () => {
    expect(parseCaseApiPath(BASE)).toEqual({ kind: 'discovery' });
    expect(parseCaseApiPath(`${BASE}/`)).toEqual({ kind: 'discovery' });
    expect(parseCaseApiPath(`${BASE}/namespaces/team-a/casefiles/web-1`)).toEqual({ kind: 'case', namespace: 'team-a', name: 'web-1' });
    expect(parseCaseApiPath(`${BASE}/namespaces/team-a/casefiles/web-1/bundle`)).toEqual({ kind: 'case', namespace: 'team-a', name: 'web-1', subresource: 'bundle' });
    expect(parseCaseApiPath(`${BASE}/namespaces/team-a/casefiles/web.1/report`)).toEqual({ kind: 'case', namespace: 'team-a', name: 'web.1', subresource: 'report' });
  });

  it.each([
    ['another group', '/apis/casefile.dev/v1alpha1/namespaces/a/casefiles/b'],
    ['another resource', `${BASE}/namespaces/a/secrets/b`],
    ['an unknown subresource', `${BASE}/namespaces/a/casefiles/b/custody`],
    ['a path below a subresource', `${BASE}/namespaces/a/casefiles/b/bundle/x`],
    ['a parent directory as the name', `${BASE}/namespaces/a/casefiles/..`],
    ['a parent directory as the namespace', `${BASE}/namespaces/../casefiles/b`],
    ['an encoded slash', `${BASE}/namespaces/a/casefiles/b%2F..%2F..`],
    ['upper case', `${BASE}/namespaces/A/casefiles/b`],
    ['a dot in a namespace', `${BASE}/namespaces/a.b/casefiles/b`],
    ['no namespace', `${BASE}/casefiles/b`],
    ['an empty name', `${BASE}/namespaces/a/casefiles/`],
  ])('refuses %s', (_what, p) => {
    expect(parseCaseApiPath(p)).toEqual({ kind: 'not-found' });
  });

  it('publishes one namespaced get-only resource and its two subresources', () => {
    const doc = discoveryDocument() as { groupVersion: string; resources: { name: string; namespaced: boolean; verbs: string[] }[] };
    expect(doc.groupVersion).toBe('cases.casefile.dev/v1alpha1');
    expect(doc.resources.map((r) => r.name)).toEqual(['casefiles', 'casefiles/bundle', 'casefiles/report']);
    expect(doc.resources.every((r) => r.namespaced && r.verbs.join() === 'get')).toBe(true);
  });

  it('is what the plugin asks for', () => {
    for (const sub of ['bundle', 'report'] as const) {
      expect(parseCaseApiPath(caseFilePath('team-a', 'web-1', sub))).toEqual({ kind: 'case', namespace: 'team-a', name: 'web-1', subresource: sub });
    }
    expect(caseFilePath('team-a', 'web-1', 'report', 'a1b2c3d4', 'html')).toBe(`${BASE}/namespaces/team-a/casefiles/web-1/report?uid=a1b2c3d4&format=html`);
  });
});

const CLUSTER = {
  'requestheader-client-ca-file': '-----BEGIN CERTIFICATE-----\n...',
  'requestheader-allowed-names': '["front-proxy-client"]',
  'requestheader-username-headers': '["X-Remote-User"]',
  'requestheader-group-headers': '["X-Remote-Group"]',
  'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
};

describe('the front proxy', () => {
  const config = requestHeaderConfig(CLUSTER)!;

  it('reads the cluster settings, header names lower-cased as Node delivers them', () => {
    expect(config).toEqual({
      clientCA: CLUSTER['requestheader-client-ca-file'],
      allowedNames: ['front-proxy-client'],
      usernameHeaders: ['x-remote-user'],
      groupHeaders: ['x-remote-group'],
      extraHeaderPrefixes: ['x-remote-extra-'],
    });
    expect(requestHeaderConfig({})).toBeUndefined();
    expect(requestHeaderConfig(undefined)).toBeUndefined();
  });

  it('believes identity headers only from a verified certificate with an allowed name', () => {
    const cert = (cn: string) => ({ subject: { CN: cn } }) as never;
    expect(proxyCertificateProblem(true, cert('front-proxy-client'), config)).toBeUndefined();
    expect(proxyCertificateProblem(false, cert('front-proxy-client'), config)).toMatch(/not signed by the cluster request-header CA/);
    expect(proxyCertificateProblem(true, cert('kube-apiserver'), config)).toMatch(/"kube-apiserver" is not one of requestheader-allowed-names/);
    expect(proxyCertificateProblem(true, {} as never, config)).toMatch(/no client certificate/);
    expect(proxyCertificateProblem(true, undefined, config)).toMatch(/no client certificate/);
    // With no names configured, any certificate of the CA will do (as the API server itself allows).
    expect(proxyCertificateProblem(true, cert('anyone'), { ...config, allowedNames: [] })).toBeUndefined();
  });

  it('takes the user, every group and the percent-decoded extras', () => {
    const who = identityFromHeaders(
      {
        'x-remote-user': ['alice'],
        'x-remote-group': ['ir-team', 'system:authenticated'],
        'x-remote-extra-authentication.kubernetes.io%2fpod-name': ['web-0'],
        'x-remote-extra-scopes': ['a', 'b'],
        'x-forwarded-for': ['10.0.0.1'],
      },
      config,
    );
    expect(who).toEqual({ user: 'alice', groups: ['ir-team', 'system:authenticated'], extra: { 'authentication.kubernetes.io/pod-name': ['web-0'], scopes: ['a', 'b'] } });
  });

  it('has no identity without a user header, or with an empty one', () => {
    expect(identityFromHeaders({ 'x-remote-group': ['system:masters'] }, config)).toBeUndefined();
    expect(identityFromHeaders({ 'x-remote-user': [''] }, config)).toBeUndefined();
  });
});
