import { describe, expect, test } from '@jest/globals';
import { execCommand, inWindow, isPodRequest, podRequestFindings, TokenActivity, tokenMatch, type SuspectIdentity } from '../../../src/audit/correlate.js';
import { toAuditRecord, type AuditRecord } from '../../../src/audit/record.js';
import { auditEvent, type EventShape } from './fixtures.js';

const id: SuspectIdentity = {
  namespace: 'shop',
  pod: 'web-1',
  podUID: 'uid-web-1',
  serviceAccount: 'web',
  from: '2026-12-03T09:00:00.000Z',
  until: '2026-12-03T11:00:00.000Z',
  operatorUsername: 'system:serviceaccount:casefile-system:casefile-operator',
};
const record = (shape: EventShape) => toAuditRecord(auditEvent(shape)) as AuditRecord;
const SA = 'system:serviceaccount:shop:web';

describe('which records belong to the case', () => {
  test('requests on the pod: same namespace, name, core group; not its namesakes elsewhere', () => {
    expect(isPodRequest(record({ resource: 'pods', subresource: 'exec', namespace: 'shop', name: 'web-1' }), id)).toBe(true);
    expect(isPodRequest(record({ resource: 'pods', namespace: 'other', name: 'web-1' }), id)).toBe(false);
    expect(isPodRequest(record({ resource: 'pods', namespace: 'shop', name: 'web-2' }), id)).toBe(false);
    expect(isPodRequest(record({ resource: 'pods', apiGroup: 'metrics.k8s.io', namespace: 'shop', name: 'web-1' }), id)).toBe(false);
    expect(isPodRequest(record({ resource: 'secrets', namespace: 'shop', name: 'web-1' }), id)).toBe(false);
  });

  test("the pod's own token by its bound pod UID; a sibling's token is not this pod's; a token naming no pod is unattributed", () => {
    expect(tokenMatch(record({ user: SA, podUID: 'uid-web-1', podName: 'web-1' }), id)).toBe('pod');
    expect(tokenMatch(record({ user: SA, podUID: 'uid-web-2', podName: 'web-2' }), id)).toBeUndefined();
    expect(tokenMatch(record({ user: SA, podName: 'web-1' }), id)).toBeUndefined();
    expect(tokenMatch(record({ user: SA }), id)).toBe('unattributed');
    expect(tokenMatch(record({ user: 'system:serviceaccount:other:web', podUID: 'uid-web-1' }), id)).toBeUndefined();
    expect(tokenMatch(record({ user: SA, podUID: 'uid-web-1' }), { ...id, serviceAccount: undefined })).toBeUndefined();
  });

  test('the window includes both ends and nothing outside', () => {
    expect(inWindow(record({ time: id.from }), id)).toBe(true);
    expect(inWindow(record({ time: id.until }), id)).toBe(true);
    expect(inWindow(record({ time: '2026-12-03T08:59:59.999Z' }), id)).toBe(false);
    expect(inWindow(record({ time: '2026-12-03T11:00:00.001Z' }), id)).toBe(false);
  });
});

describe('findings on the pod', () => {
  const artifact = 'audit/pod-requests.jsonl';
  test("an exec names the user, the time and the command", () => {
    const exec = record({ user: 'mallory', verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'shop', name: 'web-1', time: '2026-12-03T10:00:00Z', code: 101, requestURI: '/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=id&container=app&stdin=true' });
    expect(podRequestFindings(exec, id, artifact)).toEqual({ severity: 'high', kind: 'audit-exec', summary: "mallory exec'd into the pod at 2026-12-03T10:00:00.000Z: sh -c id", artifact });
  });

  test('a refused attach is medium and says it was refused; port-forward is named', () => {
    expect(podRequestFindings(record({ verb: 'create', resource: 'pods', subresource: 'attach', code: 403 }), id, artifact)).toMatchObject({ severity: 'medium', summary: expect.stringContaining('attached to the pod') });
    expect(podRequestFindings(record({ verb: 'create', resource: 'pods', subresource: 'attach', code: 403 }), id, artifact)?.summary).toContain('(refused: 403)');
    expect(podRequestFindings(record({ verb: 'create', resource: 'pods', subresource: 'portforward' }), id, artifact)).toMatchObject({ severity: 'high', kind: 'audit-portforward' });
  });

  test("casefile's own debug container is named as casefile's; a stranger's is high", () => {
    expect(podRequestFindings(record({ user: id.operatorUsername, verb: 'patch', resource: 'pods', subresource: 'ephemeralcontainers' }), id, artifact)).toMatchObject({ severity: 'info', summary: expect.stringContaining('casefile added its debug container') });
    expect(podRequestFindings(record({ user: 'mallory', verb: 'patch', resource: 'pods', subresource: 'ephemeralcontainers' }), id, artifact)).toMatchObject({ severity: 'high', summary: expect.stringContaining('mallory added an ephemeral container') });
  });

  test("casefile's exec into its own debug container is named as casefile's, never as an intrusion", () => {
    const own = record({ user: id.operatorUsername, verb: 'get', resource: 'pods', subresource: 'exec', code: 101, time: '2026-12-03T10:00:00Z', requestURI: '/api/v1/namespaces/shop/pods/web-1/exec?command=node&container=casefile-debug-0a1b2c3d' });
    expect(podRequestFindings(own, id, artifact)).toEqual({ severity: 'info', kind: 'audit-exec', summary: 'casefile ran its collector in its own container casefile-debug-0a1b2c3d at 2026-12-03T10:00:00.000Z', artifact });
  });

  test('reads are not findings; changes by others are', () => {
    expect(podRequestFindings(record({ verb: 'get', resource: 'pods' }), id, artifact)).toBeUndefined();
    expect(podRequestFindings(record({ user: 'bob', verb: 'delete', resource: 'pods' }), id, artifact)).toMatchObject({ kind: 'audit-pod-change', summary: expect.stringContaining('bob ran delete') });
    expect(podRequestFindings(record({ user: id.operatorUsername, verb: 'patch', resource: 'pods' }), id, artifact)).toBeUndefined();
  });

  test('execCommand reads the command parameters only, and survives a broken URI', () => {
    expect(execCommand('/api/v1/namespaces/a/pods/b/exec?container=x&command=cat&command=%2Fetc%2Fshadow')).toEqual(['cat', '/etc/shadow']);
    expect(execCommand('%%%')).toEqual([]);
  });
});

describe("what the pod's token did", () => {
  test('secrets across namespaces, self reviews, token requests, execs and refusals', () => {
    const activity = new TokenActivity();
    activity.add(record({ user: SA, verb: 'list', resource: 'secrets', namespace: 'shop' }));
    activity.add(record({ user: SA, verb: 'list', resource: 'secrets', namespace: 'kube-system' }));
    activity.add(record({ user: SA, verb: 'get', resource: 'secrets', namespace: 'shop', name: 'db' }));
    activity.add(record({ user: SA, verb: 'list', resource: 'secrets', namespace: 'prod', code: 403 }));
    activity.add(record({ user: SA, verb: 'create', apiGroup: 'authorization.k8s.io', resource: 'selfsubjectrulesreviews', time: '2026-12-03T10:00:05Z' }));
    activity.add(record({ user: SA, verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: 'kube-system', name: 'admin' }));
    const findings = activity.findings('audit/token-requests.jsonl');
    expect(findings.map((f) => f.summary)).toEqual([
      "the pod's token read or listed secrets 3 time(s) in 2 namespace(s): kube-system, shop",
      "the pod's token asked what it may do (SelfSubjectRulesReview) at 2026-12-03T10:00:05.000Z",
      "the pod's token requested a token for ServiceAccount kube-system/admin at 2026-12-03T10:00:00.000Z",
      "the API server refused 1 request(s) made with the pod's token: probing beyond its rights",
    ]);
    expect(activity.requests).toBe(6);
    expect(activity.byVerb()[0]).toEqual({ request: 'list secrets', count: 3 });
  });

  test('no activity, no findings', () => {
    expect(new TokenActivity().findings('x')).toEqual([]);
  });
});
