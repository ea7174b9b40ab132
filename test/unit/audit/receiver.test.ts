// The audit endpoint takes batches only from the API server's client certificate (chained to the audit
// client CA, with an allowed CN), and answers 200 only once the records are in the store.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createAuditReceiver } from '../../../src/audit/receiver.js';
import type { AuditRecord } from '../../../src/audit/record.js';
import { logger } from '../../../src/log.js';
import { testPki, type TestPki } from '../support/pki.js';
import { auditEvent, eventList } from './fixtures.js';

let pki: TestPki;
let server: https.Server;
let port: number;
const stored: AuditRecord[] = [];
let failAppend = false;

beforeAll(async () => {
  pki = await testPki();
  pki.ca('server-ca');
  pki.ca('audit-ca');
  pki.ca('other-ca');
  await pki.issue('server', 'server-ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  await pki.issue('apiserver', 'audit-ca', 'extendedKeyUsage=clientAuth', 'kube-apiserver-audit');
  await pki.issue('intruder', 'audit-ca', 'extendedKeyUsage=clientAuth', 'some-other-client');
  await pki.issue('forged', 'other-ca', 'extendedKeyUsage=clientAuth', 'kube-apiserver-audit');
  server = createAuditReceiver({
    tlsCert: await pki.file('server.crt'),
    tlsKey: await pki.file('server.key'),
    clientCA: await pki.file('audit-ca.crt'),
    allowedNames: ['kube-apiserver-audit'],
    maxBodyBytes: 64 * 1024,
    append: async (records) => {
      if (failAppend) throw new Error('ENOSPC: no space left on device');
      stored.push(...records);
      return { kept: records.length, oversized: 0, prunedSegments: 0 };
    },
    log: logger.child({}, { level: 'silent' }),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
}, 60_000); // five RSA keys: slow on a loaded machine
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await pki.remove();
});

async function post(client: string | undefined, body: string): Promise<{ code: number; text: string }> {
  const cert = client ? { cert: await pki.file(`${client}.crt`), key: await pki.file(`${client}.key`) } : {};
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method: 'POST', path: '/audit', rejectUnauthorized: false, ...cert, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('audit receiver', () => {
  test("stores a batch from the API server's certificate, final stages only", async () => {
    const before = stored.length;
    const body = JSON.stringify(eventList([auditEvent({ verb: 'create', resource: 'pods', subresource: 'exec' }), auditEvent({ stage: 'RequestReceived' })]));
    expect(await post('apiserver', body)).toEqual({ code: 200, text: '1 audit record(s) stored\n' });
    expect(stored.slice(before).map((r) => r.subresource)).toEqual(['exec']);
  });

  test('refuses a certificate of the same CA with another CN', async () => {
    const res = await post('intruder', JSON.stringify(eventList([auditEvent()])));
    expect(res.code).toBe(403);
    expect(res.text).toContain('"some-other-client" is not one of the allowed audit senders');
  });

  test('refuses a certificate with the right CN from another CA, and no certificate at all, at the TLS handshake', async () => {
    await expect(post('forged', '{}')).rejects.toThrow();
    await expect(post(undefined, '{}')).rejects.toThrow();
  });

  test('says what is wrong with a bad body, and refuses an oversized one', async () => {
    expect((await post('apiserver', 'not json')).code).toBe(400);
    expect(await post('apiserver', JSON.stringify({ kind: 'PodList', apiVersion: 'v1', items: [] }))).toEqual({ code: 400, text: 'the body is not an audit.k8s.io EventList\n' });
    const big = JSON.stringify(eventList(Array.from({ length: 200 }, () => auditEvent())));
    expect((await post('apiserver', big)).code).toBe(413);
  });

  test('a store that cannot write answers 503, so the API server retries the batch', async () => {
    failAppend = true;
    try {
      const res = await post('apiserver', JSON.stringify(eventList([auditEvent()])));
      expect(res.code).toBe(503);
      expect(res.text).toContain('ENOSPC');
    } finally {
      failAppend = false;
    }
  });
});
