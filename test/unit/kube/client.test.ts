// The API client keeps its connections: one keep-alive agent per TLS identity, not one per request.
import https from 'node:https';
import { KubeConfig, RequestContext } from '@kubernetes/client-node';
import { Kube } from '../../../src/kube/client.js';

function config(user: object): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', caData: Buffer.from('not a real CA').toString('base64') }],
    users: [{ name: 'u', ...user }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

async function agentOf(kc: KubeConfig): Promise<https.Agent> {
  const context = new RequestContext('https://127.0.0.1:6443/api/v1/pods', 'GET' as never);
  await kc.applySecurityAuthentication(context);
  return context.getAgent() as https.Agent;
}

test('every request of one client gets the same keep-alive agent', async () => {
  const kc = config({ token: 'abc' });
  new Kube(kc);
  const first = await agentOf(kc);
  const second = await agentOf(kc);
  expect(second).toBe(first);
  expect(first).toBeInstanceOf(https.Agent);
  expect((first as unknown as { keepAlive: boolean }).keepAlive).toBe(true);
  expect(String(first.options.ca)).toBe('not a real CA');
});

test('another TLS identity (client certificate) gets another agent', async () => {
  const a = config({ certData: Buffer.from('cert-a').toString('base64'), keyData: Buffer.from('key-a').toString('base64') });
  const b = config({ certData: Buffer.from('cert-b').toString('base64'), keyData: Buffer.from('key-b').toString('base64') });
  new Kube(a);
  new Kube(b);
  expect(await agentOf(a)).not.toBe(await agentOf(b));
  expect(String((await agentOf(b)).options.cert)).toBe('cert-b');
});
