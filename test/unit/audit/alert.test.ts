// An audit record of someone getting into a pod becomes an alert in the shape of Falco's k8saudit
// plugin: it parses as an alert, a ResponsePolicy written for Falco's rule matches it, and intake's
// pod resolution finds the pod it targets.
import { describe, expect, test } from '@jest/globals';
import { podAccessAlert } from '../../../src/audit/alert.js';
import { toAuditRecord, type AuditRecord } from '../../../src/audit/record.js';
import { parsePolicySpec } from '../../../src/api/response-policy.js';
import { parseAlert } from '../../../src/intake/alert-schema.js';
import { matches } from '../../../src/intake/matcher.js';
import { PodResolver } from '../../../src/intake/pod-resolver.js';
import { buildInvestigation } from '../../../src/intake/investigation-factory.js';
import { parseSpec } from '../../../src/api/investigation.js';
import { auditEvent, type EventShape } from './fixtures.js';

const record = (shape: EventShape) => toAuditRecord(auditEvent({ namespace: 'shop', name: 'web-1', resource: 'pods', ...shape })) as AuditRecord;

describe('podAccessAlert', () => {
  test("an exec is Falco's 'Attach/Exec Pod', with the user, the pod and the command", () => {
    const alert = podAccessAlert(record({ user: 'mallory', verb: 'get', subresource: 'exec', code: 101, requestURI: '/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=id' }));
    expect(alert).toMatchObject({
      rule: 'Attach/Exec Pod',
      source: 'k8s_audit',
      output: 'Attach/Exec Pod (user=mallory pod=web-1 ns=shop action=exec command=sh -c id)',
      output_fields: { 'ka.user.name': 'mallory', 'ka.target.resource': 'pods', 'ka.target.subresource': 'exec', 'ka.target.namespace': 'shop', 'ka.target.name': 'web-1', 'ka.uri.param[command]': 'sh -c id' },
    });
  });

  test('attach, port-forward and a new ephemeral container are signals; reads, refusals and other resources are not', () => {
    expect(podAccessAlert(record({ subresource: 'attach' }))?.rule).toBe('Attach/Exec Pod');
    expect(podAccessAlert(record({ subresource: 'portforward' }))?.rule).toBe('Port-forward to Pod');
    expect(podAccessAlert(record({ subresource: 'ephemeralcontainers', verb: 'patch' }))?.rule).toBe('EphemeralContainers Created');
    expect(podAccessAlert(record({ subresource: 'ephemeralcontainers', verb: 'get' }))).toBeUndefined();
    expect(podAccessAlert(record({ subresource: 'exec', code: 403 }))).toBeUndefined();
    expect(podAccessAlert(record({ subresource: 'log' }))).toBeUndefined();
    expect(podAccessAlert(record({}))).toBeUndefined();
    expect(podAccessAlert(record({ resource: 'secrets', subresource: 'exec' }))).toBeUndefined();
  });

  test('names the impersonated user, who is the one acting', () => {
    const event = auditEvent({ namespace: 'shop', name: 'web-1', resource: 'pods', subresource: 'exec', user: 'admin' });
    event.impersonatedUser = { username: 'mallory' };
    expect(podAccessAlert(toAuditRecord(event) as AuditRecord)?.output_fields['ka.user.name']).toBe('mallory');
  });

  test('parses as an alert, matches a policy written for Falco, and resolves to its pod', async () => {
    const alert = podAccessAlert(record({ subresource: 'exec', user: 'mallory' }))!;
    const parsed = parseAlert(JSON.stringify(alert));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const policy = parsePolicySpec({ match: { rules: ['Attach/Exec Pod'], sources: ['k8s_audit'], minPriority: 'Notice' }, template: {} });
    expect(policy.ok).toBe(true);
    if (!policy.ok) return;
    expect(matches(policy.spec.match, parsed.value.alert, 'shop')).toBe(true);
    expect(matches({ ...policy.spec.match, rules: ['Terminal shell in container'] }, parsed.value.alert, 'shop')).toBe(false);
    const resolver = new PodResolver({ get: async (namespace, name) => ({ metadata: { namespace, name, uid: 'uid-web-1' } }), list: async () => [] });
    expect(await resolver.resolve(parsed.value.alert)).toMatchObject({ namespace: 'shop', name: 'web-1', uid: 'uid-web-1' });
  });

  test("the Investigation it opens says its source is the audit trail, a value the CRD takes", () => {
    const alert = podAccessAlert(record({ subresource: 'exec', user: 'mallory' }))!;
    const body = buildInvestigation({
      type: 'alert',
      seq: 1,
      receivedAt: alert.time,
      source: 'audit',
      policy: { namespace: 'shop', name: 'exec-into-pods' },
      investigation: { namespace: 'shop', name: 'exec-into-pods-web-1-0a1b2c3d' },
      pod: { name: 'web-1', uid: 'uid-web-1' },
      alert: { rule: alert.rule, priority: 'Notice', time: alert.time },
      template: {},
      raw: JSON.stringify(alert),
    } as Parameters<typeof buildInvestigation>[0]);
    const spec = parseSpec(body.spec);
    expect(spec.ok && spec.spec.alert?.source).toBe('audit');
  });
});
