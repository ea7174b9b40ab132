import { describe, expect, test } from '@jest/globals';
import { eventListItems, toAuditRecord } from '../../../src/audit/record.js';
import { auditEvent, eventList } from './fixtures.js';

describe('toAuditRecord', () => {
  test('keeps who, what, on which object, when, from where and how it ended', () => {
    const record = toAuditRecord(auditEvent({ verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'shop', name: 'web-1', time: '2026-12-03T10:00:01.5Z', code: 101 }));
    expect(record).toEqual({
      time: '2026-12-03T10:00:01.500Z',
      auditID: expect.any(String),
      user: { username: 'mallory', groups: ['system:authenticated'] },
      verb: 'create',
      resource: 'pods',
      subresource: 'exec',
      namespace: 'shop',
      name: 'web-1',
      sourceIPs: ['10.0.0.7'],
      userAgent: 'kubectl/v1.33.0',
      code: 101,
      requestURI: '/api/v1/namespaces/shop/pods',
      decision: 'allow: RBAC: allowed by RoleBinding',
    });
  });

  test("keeps a bound token's pod name and UID, and drops every other extra", () => {
    const event = auditEvent({ user: 'system:serviceaccount:shop:web', podUID: 'uid-1', podName: 'web-1' });
    (event.user as { extra: Record<string, string[]> }).extra.secret = ['do-not-keep'];
    const record = toAuditRecord(event);
    expect('skip' in record).toBe(false);
    expect((record as { user: unknown }).user).toEqual({
      username: 'system:serviceaccount:shop:web',
      groups: ['system:authenticated'],
      extra: { 'authentication.kubernetes.io/pod-name': ['web-1'], 'authentication.kubernetes.io/pod-uid': ['uid-1'] },
    });
  });

  test('keeps only the final stage of a request', () => {
    expect(toAuditRecord(auditEvent({ stage: 'RequestReceived' }))).toEqual({ skip: 'stage RequestReceived' });
    expect(toAuditRecord(auditEvent({ stage: 'ResponseStarted' }))).toEqual({ skip: 'stage ResponseStarted' });
    expect('skip' in toAuditRecord(auditEvent({ stage: 'Panic' }))).toBe(false);
  });

  test('refuses events without the fields a record needs, and wrong types', () => {
    expect(toAuditRecord('x')).toEqual({ skip: 'not an object' });
    expect(toAuditRecord({ ...auditEvent(), user: { username: 7 } })).toHaveProperty('skip');
    expect(toAuditRecord({ ...auditEvent(), requestReceivedTimestamp: 'yesterday' })).toHaveProperty('skip');
    expect(toAuditRecord({ ...auditEvent(), auditID: undefined })).toHaveProperty('skip');
    const record = toAuditRecord({ ...auditEvent(), sourceIPs: [1, '10.0.0.8'], responseStatus: { code: '200' } });
    expect(record).toMatchObject({ sourceIPs: ['10.0.0.8'] });
    expect(record).not.toHaveProperty('code');
  });

  test('bounds what an attacker chooses: names, URIs, user agents, lists', () => {
    const long = 'a'.repeat(100_000);
    const record = toAuditRecord({ ...auditEvent({ name: long, requestURI: `/api/${long}` }), userAgent: long, sourceIPs: Array(1000).fill('1.2.3.4') }) as Record<string, unknown>;
    expect(JSON.stringify(record).length).toBeLessThan(4000);
    expect((record.sourceIPs as string[]).length).toBe(16);
  });
});

describe('eventListItems', () => {
  test('reads an audit.k8s.io EventList and refuses anything else', () => {
    expect(eventListItems(eventList([1, 2]))).toEqual([1, 2]);
    expect(eventListItems({ kind: 'EventList', apiVersion: 'v1', items: [] })).toEqual({ error: 'the body is not an audit.k8s.io EventList' });
    expect(eventListItems([])).toEqual({ error: 'the body is not a JSON object' });
  });
});
