import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { ResponsePolicy } from '../../../src/api/response-policy.js';
import { TokenFile } from '../../../src/intake/auth.js';
import { AlertJournal } from '../../../src/intake/journal.js';
import type { JournalEntry } from '../../../src/intake/journal-format.js';
import { PolicyCache } from '../../../src/intake/policy-cache.js';
import { PodResolver } from '../../../src/intake/pod-resolver.js';
import { alertProcessor } from '../../../src/intake/processor.js';
import { createIntakeServer, type IntakeOutcome } from '../../../src/intake/server.js';
import { fixture, silent } from './helpers.js';
import { testPki, type TestPki } from '../support/pki.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TOKEN = 's3cr3t-token-0123456789';
const MAX = 64 * 1024;

const pod = (namespace: string, name: string, uid: string, containerID: string): V1Pod => ({
  metadata: { namespace, name, uid },
  spec: { containers: [{ name: 'app' }] },
  status: { containerStatuses: [{ name: 'app', containerID: `containerd://${containerID}`, image: 'x', imageID: 'x', ready: true, restartCount: 0 }] },
});
const PODS = [
  pod('production', 'web-7d96c8f4d9-r2x5b', 'uid-web', `3f2a9c1e7b44${'0'.repeat(52)}`),
  pod('default', 'kubecon', 'uid-kubecon', `ee97d9c4186f${'1'.repeat(52)}`),
];
const policy = (name: string, spec: Record<string, unknown>): ResponsePolicy => ({
  apiVersion: 'casefile.dev/v1alpha1',
  kind: 'ClusterResponsePolicy',
  metadata: { name, uid: name, resourceVersion: '1' },
  spec,
});
const POLICIES = [
  policy('shells-and-droppers', { match: { rules: ['Terminal shell in container', 'Drop and execute new binary in container'], minPriority: 'Warning' }, investigation: { containment: { order: 'ContainFirst' } } }),
  policy('c2-watch', { match: { rules: ['Unexpected outbound connection destination'] }, dryRun: true }),
];

interface Reply {
  status: number;
  body: Record<string, any>;
}

function request(url: string, body: string, headers: Record<string, string>, tls: https.RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const transport = url.startsWith('https:') ? https : http;
    const req = transport.request(url, { method: 'POST', headers: { 'content-length': String(Buffer.byteLength(body)), ...headers }, ...tls }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function journalLines(dir: string): Promise<JournalEntry[]> {
  const lines: JournalEntry[] = [];
  for (const f of (await readdir(dir)).sort()) {
    for (const l of (await readFile(path.join(dir, f), 'utf8')).split('\n')) if (l) lines.push(JSON.parse(l));
  }
  return lines;
}

interface Harness {
  dir: string;
  url: string;
  outcomes: IntakeOutcome[];
  committed: JournalEntry[];
  /** What openAhead was handed, and how many entries were committed at that moment. */
  ahead: { investigation: string; committedBefore: number }[];
  close(): Promise<void>;
}

interface StartOptions {
  tls?: { cert: Buffer; key: Buffer; clientCA?: Buffer };
  token?: boolean;
  journalMaxBytes?: number;
  bounds?: { maxConnections?: number; headersTimeoutMs?: number; requestTimeoutMs?: number };
}

async function start(opts: StartOptions = { token: true }): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-intake-'));
  const tokenPath = path.join(dir, 'token');
  await writeFile(tokenPath, `${TOKEN}\n`);
  const journal = await AlertJournal.open(path.join(dir, 'journal'), { log: silent, maxBytes: opts.journalMaxBytes }, () => undefined);
  const outcomes: IntakeOutcome[] = [];
  const committed: JournalEntry[] = [];
  const ahead: Harness['ahead'] = [];
  const server = createIntakeServer({
    tls: opts.tls,
    auth: { tokenFile: opts.token ? new TokenFile(tokenPath, silent) : undefined, mutualTLS: Boolean(opts.tls?.clientCA) },
    maxBodyBytes: MAX,
    ...opts.bounds,
    ready: () => true,
    accept: alertProcessor({
      resolver: new PodResolver({
        get: async (ns, name) => PODS.find((p) => p.metadata!.namespace === ns && p.metadata!.name === name),
        list: async () => PODS,
      }),
      policies: new PolicyCache({ namespaced: { list: () => [] }, cluster: { list: () => POLICIES } }, silent),
      journal: () => journal,
      openAhead: (entries) => ahead.push(...entries.map((e) => ({ investigation: `${e.investigation.namespace}/${e.investigation.name}`, committedBefore: committed.length }))),
      onCommitted: (entries) => committed.push(...entries),
      log: silent,
    }),
    onOutcome: (o) => outcomes.push(o),
    log: silent,
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    dir,
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/`,
    outcomes,
    committed,
    ahead,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await journal.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const json = { 'content-type': 'application/json' };
const bearer = { ...json, authorization: `Bearer ${TOKEN}` };

describe('intake over HTTP with a bearer token', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start();
  });
  afterAll(async () => {
    await h.close();
  });

  it('401 without a token or with a wrong one, and nothing is journaled', async () => {
    const body = fixture('falco-http-output-terminal-shell.json');
    expect((await request(h.url, body, json)).status).toBe(401);
    expect((await request(h.url, body, { ...json, authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await request(h.url, body, { ...json, authorization: `Basic ${TOKEN}` })).status).toBe(401);
    expect(await journalLines(path.join(h.dir, 'journal'))).toEqual([]);
    expect(h.outcomes.filter((o) => o === 'unauthenticated')).toHaveLength(3);
  });

  it("415 for text/plain, with the json_output hint", async () => {
    const r = await request(h.url, fixture('falco-http-output-plaintext.txt'), { ...bearer, 'content-type': 'text/plain' });
    expect(r.status).toBe(415);
    expect(r.body.message).toContain('json_output: true');
  });

  it('413 above the size cap, by Content-Length or by counting', async () => {
    const big = JSON.stringify({ rule: 'r', priority: 'Critical', time: '2026-11-20T10:17:03Z', output: 'x'.repeat(MAX) });
    expect((await request(h.url, big, bearer)).status).toBe(413);
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request(h.url, { method: 'POST', headers: { ...bearer, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      for (let i = 0; i < 4; i++) req.write('x'.repeat(MAX / 2));
      req.end();
    });
    expect(chunked).toBe(413);
  });

  it('400 naming the field', async () => {
    const noRule = await request(h.url, JSON.stringify({ priority: 'Critical', time: '2026-11-20T10:17:03Z' }), bearer);
    expect(noRule).toMatchObject({ status: 400, body: { field: 'rule' } });
    const broken = await request(h.url, '{"rule": ', bearer);
    expect(broken).toMatchObject({ status: 400, body: { field: '(body)' } });
    expect(broken.body.message).toContain('not valid JSON');
  });

  it('202 only after the alert is in the journal on disk; the case was handed to openAhead before the commit', async () => {
    const committedBefore = h.committed.length;
    const r = await request(h.url, fixture('falcosidekick-webhook-drop-and-execute.json'), { ...bearer, 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' });
    expect(r.status).toBe(202);
    expect(r.body.status).toBe('accepted');
    const lines = await journalLines(path.join(h.dir, 'journal'));
    const line = lines.find((l) => l.seq === r.body.seq);
    expect(line).toMatchObject({
      type: 'alert',
      source: 'falcosidekick',
      policy: { namespace: '', name: 'shells-and-droppers' },
      investigation: { namespace: 'production', name: r.body.investigations[0].split('/')[1] },
      pod: { name: 'web-7d96c8f4d9-r2x5b', uid: 'uid-web', container: 'app' },
      template: { containment: { order: 'ContainFirst' } },
      raw: fixture('falcosidekick-webhook-drop-and-execute.json'),
    });
    expect(h.ahead.at(-1)).toEqual({ investigation: r.body.investigations[0], committedBefore });
  });

  it('resolves the pod from container.id when k8s fields are missing', async () => {
    const a = JSON.parse(fixture('falco-http-output-terminal-shell.json'));
    delete a.output_fields['k8s.ns.name'];
    delete a.output_fields['k8s.pod.name'];
    const r = await request(h.url, JSON.stringify(a), bearer);
    expect(r).toMatchObject({ status: 202, body: { status: 'accepted', pod: 'default/kubecon' } });
  });

  it('202 without opening anything for a host alert, an unmatched one and a dry-run match', async () => {
    expect((await request(h.url, fixture('falco-http-output-host-alert-null-k8s.json'), bearer)).body.status).toBe('no_pod');
    const unmatched = JSON.parse(fixture('falco-http-output-terminal-shell.json'));
    unmatched.priority = 'Debug';
    expect(await request(h.url, JSON.stringify(unmatched), bearer)).toMatchObject({ status: 202, body: { status: 'unmatched' } });
    expect(await request(h.url, fixture('falcosidekick-webhook-outbound-c2.json'), bearer)).toMatchObject({ status: 202, body: { status: 'dry_run' } });
    expect(h.outcomes).toEqual(expect.arrayContaining(['no_pod', 'unmatched', 'dry_run']));
  });

  it('picks up a rotated token', async () => {
    await writeFile(path.join(h.dir, 'token'), 'rotated-token-abcdefgh\n');
    await new Promise((r) => setTimeout(r, 1100));
    const body = fixture('falco-http-output-terminal-shell.json');
    expect((await request(h.url, body, bearer)).status).toBe(401);
    expect((await request(h.url, body, { ...json, authorization: 'Bearer rotated-token-abcdefgh' })).status).toBe(202);
  });
});

describe('intake over mutual TLS', () => {
  let pki: TestPki;
  let h: Harness;
  const file = (name: string) => pki.file(name);

  beforeAll(async () => {
    pki = await testPki();
    for (const ca of ['ca', 'other-ca']) pki.ca(ca);
    await pki.issue('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost');
    await pki.issue('falco', 'ca', 'extendedKeyUsage=clientAuth');
    await pki.issue('intruder', 'other-ca', 'extendedKeyUsage=clientAuth');
    h = await start({ tls: { cert: await file('server.crt'), key: await file('server.key'), clientCA: await file('ca.crt') }, token: true });
  }, 60_000);
  afterAll(async () => {
    await h.close();
    await pki.remove();
  });

  const tls = async (client?: string): Promise<https.RequestOptions> => ({
    ca: await file('ca.crt'),
    ...(client ? { cert: await file(`${client}.crt`), key: await file(`${client}.key`) } : {}),
    agent: false,
  });

  it('202 with a client certificate from the CA (no token needed, as for Falco)', async () => {
    const r = await request(h.url, fixture('falco-http-output-terminal-shell.json'), json, await tls('falco'));
    expect(r).toMatchObject({ status: 202, body: { status: 'accepted', pod: 'default/kubecon' } });
  });

  it('401 with a certificate from another CA, or none', async () => {
    const body = fixture('falco-http-output-terminal-shell.json');
    expect((await request(h.url, body, json, await tls('intruder'))).status).toBe(401);
    expect((await request(h.url, body, json, await tls())).status).toBe(401);
  });

  it('401 on a resumed TLS session that never presented a certificate (Node reports it authorized)', async () => {
    const body = fixture('falco-http-output-terminal-shell.json');
    const agent = new https.Agent({ keepAlive: true });
    try {
      const opts = { ...(await tls()), agent };
      expect((await request(h.url, body, bearer, opts)).status).toBe(202);
      // Each 401 closes its connection, so the next request resumes the cached session on a new one.
      for (let i = 0; i < 3; i++) expect((await request(h.url, body, json, opts)).status).toBe(401);
    } finally {
      agent.destroy();
    }
  });

  it('a bearer token still works over TLS without a client certificate', async () => {
    const r = await request(h.url, fixture('falco-http-output-terminal-shell.json'), bearer, await tls());
    expect(r.status).toBe(202);
  });
});

describe('intake bounds', () => {
  it('a full journal answers 503 journal_full, counts it, and keeps every alert it accepted', async () => {
    const h = await start({ token: true, journalMaxBytes: 1024 * 1024 });
    const body = fixture('falcosidekick-webhook-drop-and-execute.json');
    const big = JSON.stringify({ ...JSON.parse(body), padding: 'p'.repeat(40_000) });
    const accepted: number[] = [];
    let full: Reply | undefined;
    for (let i = 0; i < 100 && !full; i++) {
      const r = await request(h.url, big, bearer);
      if (r.status === 202) accepted.push(r.body.seq);
      else full = r;
    }
    expect(full).toMatchObject({ status: 503, body: { status: 'unavailable', reason: 'journal_full' } });
    expect(full!.body.message).toContain('--intake-journal-max-bytes');
    expect(h.outcomes).toContain('journal_full');
    const seqs = (await journalLines(path.join(h.dir, 'journal'))).map((l) => l.seq);
    expect(accepted.length).toBeGreaterThan(5);
    for (const s of accepted) expect(seqs).toContain(s);
    await h.close();
  });

  it('connections past maxConnections are closed on arrival', async () => {
    const h = await start({ token: true, bounds: { maxConnections: 2 } });
    const { port } = new URL(h.url);
    const open = () => new Promise<net.Socket>((resolve) => { const s = net.connect(Number(port), '127.0.0.1', () => resolve(s)); });
    const held = [await open(), await open()];
    await sleep(50);
    const third = await open();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000);
      third.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    expect(closed).toBe(true);
    for (const s of held) s.destroy();
    await h.close();
  });

  it('a client that sends its headers too slowly is cut off after the header timeout', async () => {
    const h = await start({ token: true, bounds: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
    const { port } = new URL(h.url);
    const s = net.connect(Number(port), '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write('POST / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => s.write('X-Slow: 1\r\n'), 100);
    const started = Date.now();
    let answer = '';
    s.on('data', (d) => (answer += d.toString()));
    await new Promise((r) => s.once('close', r));
    clearInterval(trickle);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(answer).toMatch(/^HTTP\/1.1 408/);
    await h.close();
  });
});
