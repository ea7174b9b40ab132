// The client-node-free API client (the intake thread's, and the main thread's raw reads and watches),
// against a real local HTTP server: requests and errors as the API server words them, credentials
// resolved again after a minute or a 401, one kept-alive connection, and watches read line by line.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../../../src/errors.js';
import { restCredentials } from '../../../src/kube/client.js';
import { isConflict, isNamespaceNotFound } from '../../../src/kube/errors.js';
import { ApiError, RestClient, type RestCredentials, type WatchEventType } from '../../../src/kube/rest.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

let server: http.Server;
let handler: Handler;
let connections = 0;
let base = '';

beforeEach(async () => {
  connections = 0;
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => handler(req, res, body));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function client(tokens: string[] = ['Bearer t-1'], clock = { now: 0 }): { rest: RestClient; resolved: () => number } {
  let n = 0;
  const rest = new RestClient(
    async (): Promise<RestCredentials> => ({ server: base, tls: { rejectUnauthorized: true }, authorization: tokens[Math.min(n++, tokens.length - 1)] }),
    () => clock.now,
  );
  return { rest, resolved: () => n };
}

const status = (code: number, message: string, details?: object) => JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message, details });

describe('RestClient requests', () => {
  it('sends JSON with the bearer token and the query, and parses the answer', async () => {
    const seen: Array<{ method?: string; url?: string; auth?: string; type?: string; body: string }> = [];
    handler = (req, res, body) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body });
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ metadata: { name: 'x', uid: 'u' } }));
    };
    const { rest } = client();
    const created = await rest.json('POST', '/apis/casefile.dev/v1alpha1/namespaces/shop/investigations', { body: { metadata: { name: 'x' } } });
    expect(created).toEqual({ metadata: { name: 'x', uid: 'u' } });
    const read = await rest.getJSON('/api/v1/pods', { labelSelector: 'a=b', limit: 5, skipped: undefined });
    expect(read).toEqual({ metadata: { name: 'x', uid: 'u' } });
    expect(seen).toEqual([
      { method: 'POST', url: '/apis/casefile.dev/v1alpha1/namespaces/shop/investigations', auth: 'Bearer t-1', type: 'application/json', body: '{"metadata":{"name":"x"}}' },
      { method: 'GET', url: '/api/v1/pods?labelSelector=a%3Db&limit=5', auth: 'Bearer t-1', type: undefined, body: '' },
    ]);
  });

  it('keeps one connection for successive requests', async () => {
    handler = (_req, res) => res.writeHead(200).end('{}');
    const { rest } = client();
    for (let i = 0; i < 5; i++) await rest.getJSON('/api/v1/namespaces/a');
    expect(connections).toBe(1);
  });

  it('raises the server\'s Status as an ApiError the shared helpers read', async () => {
    handler = (req, res) => {
      if (req.url!.includes('conflict')) res.writeHead(409).end(status(409, 'the object has been modified'));
      else res.writeHead(404).end(status(404, 'namespaces "gone" not found', { name: 'gone', kind: 'namespaces' }));
    };
    const { rest } = client();
    const conflict = await rest.json('PATCH', '/conflict', { body: {}, contentType: 'application/merge-patch+json' }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(ApiError);
    expect(isConflict(conflict)).toBe(true);
    expect(errorMessage(conflict)).toBe('409: the object has been modified');
    const gone = await rest.getJSON('/apis/casefile.dev/v1alpha1/namespaces/gone/investigations/x').catch((e: unknown) => e);
    expect(isNamespaceNotFound(gone)).toBe(true);
  });

  it('resolves credentials once a minute, and again at once after a 401 (one retry)', async () => {
    const auths: Array<string | undefined> = [];
    handler = (req, res) => {
      auths.push(req.headers.authorization);
      if (req.headers.authorization === 'Bearer expired') res.writeHead(401).end(status(401, 'Unauthorized'));
      else res.writeHead(200).end('{}');
    };
    const clock = { now: 0 };
    const { rest, resolved } = client(['Bearer t-1', 'Bearer expired', 'Bearer t-3'], clock);
    await rest.getJSON('/a');
    clock.now = 59_000;
    await rest.getJSON('/a');
    expect(resolved()).toBe(1);
    clock.now = 61_000;
    await rest.getJSON('/a'); // t-2 is refused; t-3 is fetched and accepted
    expect(auths).toEqual(['Bearer t-1', 'Bearer t-1', 'Bearer expired', 'Bearer t-3']);
    expect(resolved()).toBe(3);
  });

  it('gives up after one fresh credential is refused too', async () => {
    handler = (_req, res) => res.writeHead(401).end(status(401, 'Unauthorized'));
    const { rest, resolved } = client(['Bearer a', 'Bearer b', 'Bearer c']);
    await expect(rest.getJSON('/a')).rejects.toMatchObject({ code: 401 });
    expect(resolved()).toBe(2);
  });

  it('fails a request on a credentials error without sending it', async () => {
    let sent = 0;
    handler = (_req, res) => (sent++, res.writeHead(200).end('{}'));
    const rest = new RestClient(async () => {
      throw new Error('exec plugin failed');
    });
    await expect(rest.getJSON('/a')).rejects.toThrow('exec plugin failed');
    expect(sent).toBe(0);
  });
});

describe('RestClient.watch', () => {
  it('delivers events split across chunks, asks for bookmarks and the resourceVersion, and ends cleanly', async () => {
    const urls: URL[] = [];
    handler = (req, res) => {
      urls.push(new URL(req.url!, 'http://x'));
      res.writeHead(200, { 'content-type': 'application/json' });
      const added = JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '7' } } }) + '\n';
      res.write(added.slice(0, 10));
      setTimeout(() => {
        res.write(added.slice(10) + JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '8' } } }));
        setTimeout(() => res.end('\n\n'), 5);
      }, 5);
    };
    const { rest } = client();
    const events: Array<[WatchEventType, string]> = [];
    const done = await new Promise<unknown>((resolve) => {
      void rest.watch('/apis/casefile.dev/v1alpha1/investigations', { labelSelector: 'a=b' })('5', (type, o) => events.push([type, o.metadata.resourceVersion]), resolve);
    });
    expect(done).toBeUndefined();
    expect(events).toEqual([
      ['ADDED', '7'],
      ['BOOKMARK', '8'],
    ]);
    const q = urls[0]!.searchParams;
    expect(urls[0]!.pathname).toBe('/apis/casefile.dev/v1alpha1/investigations');
    expect([q.get('watch'), q.get('allowWatchBookmarks'), q.get('resourceVersion'), q.get('labelSelector')]).toEqual(['true', 'true', '5', 'a=b']);
    expect(Number(q.get('timeoutSeconds'))).toBeGreaterThanOrEqual(300);
    expect(Number(q.get('timeoutSeconds'))).toBeLessThan(600);
  });

  it('rejects with the status when the server refuses the watch (410: relist)', async () => {
    handler = (_req, res) => res.writeHead(410).end(status(410, 'too old resource version'));
    const { rest } = client();
    await expect(rest.watch('/x')('1', () => undefined, () => undefined)).rejects.toMatchObject({ code: 410 });
  });

  it('ends the watch with an error on a line that is not JSON, and on a connection cut mid-stream', async () => {
    handler = (req, res) => {
      res.writeHead(200);
      if (req.url!.startsWith('/garbage')) res.write('{"type":"ADDED"\nnot json\n');
      else {
        res.write(JSON.stringify({ type: 'ADDED', object: {} }) + '\n');
        setTimeout(() => res.socket!.destroy(), 5);
      }
    };
    const { rest } = client();
    const garbage = await new Promise<unknown>((resolve) => void rest.watch('/garbage')('1', () => undefined, resolve));
    expect(String(garbage)).toContain('not JSON');
    const cut = await new Promise<unknown>((resolve) => void rest.watch('/cut')('1', () => undefined, resolve));
    expect(String(cut)).toMatch(/aborted|closed|ECONNRESET/);
  });

  it('reports nothing after abort', async () => {
    handler = (_req, res) => res.writeHead(200).write('');
    const { rest } = client();
    const ends: unknown[] = [];
    const handle = await rest.watch('/x')('1', () => undefined, (err) => ends.push(err ?? 'clean'));
    handle.abort();
    await new Promise((r) => setTimeout(r, 50));
    expect(ends).toEqual([]);
  });
});

describe('restCredentials', () => {
  function kubeconfig(cluster: object, user: object): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://10.0.0.1:6443', ...cluster }],
      users: [{ name: 'u', ...user }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  }
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('resolves a token user and the cluster CA to plain data', async () => {
    expect(await restCredentials(kubeconfig({ caData: b64('CA PEM') }, { token: 'abc' }))).toEqual({
      server: 'https://10.0.0.1:6443',
      tls: { ca: 'CA PEM', cert: undefined, key: undefined, rejectUnauthorized: true, servername: undefined },
      authorization: 'Bearer abc',
    });
  });

  it('resolves a client-certificate user with no Authorization header, and skipTLSVerify', async () => {
    expect(await restCredentials(kubeconfig({ skipTLSVerify: true }, { certData: b64('CERT'), keyData: b64('KEY') }))).toEqual({
      server: 'https://10.0.0.1:6443',
      tls: { ca: undefined, cert: 'CERT', key: 'KEY', rejectUnauthorized: false, servername: undefined },
    });
  });

  it('refuses a cluster behind a proxy with a message that names it', async () => {
    await expect(restCredentials(kubeconfig({ proxyUrl: 'http://proxy:3128' }, { token: 'abc' }))).rejects.toThrow('goes through a proxy (http://proxy:3128)');
  });
});
