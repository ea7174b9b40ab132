// The case-file API over real TLS: the forwarding proxy's certificate, the forwarded user, the API
// server's authorization (a fake SubjectAccessReview) and the case on disk, in that order.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { CaseApiService } from '../../../src/caseapi/service.js';
import type { EventRecorder } from '../../../src/engine/events.js';
import type { Kube } from '../../../src/kube/client.js';
import { testPki, type TestPki } from '../support/pki.js';

const UID = 'a1b2c3d4-0000-4000-8000-000000000001';
const BASE = '/apis/cases.casefile.dev/v1alpha1/namespaces';

interface Reply {
  status: number;
  type?: string;
  body: string;
}

describe('the case-file API', () => {
  let pki: TestPki;
  let evidence: string;
  let service: CaseApiService;
  const reviews: { user: string; groups?: string[]; attributes: Record<string, unknown> }[] = [];
  const events: string[] = [];
  const investigations = new Map<string, string>([['team-a/web', UID], ['team-a/unsealed', 'b0b0b0b0-0000-4000-8000-000000000003']]);

  const kube = {
    core: {
      readNamespacedConfigMap: async () => ({
        data: {
          'requestheader-client-ca-file': (await pki.file('front-proxy-ca.crt')).toString(),
          'requestheader-allowed-names': '["front-proxy-client"]',
          'requestheader-username-headers': '["X-Remote-User"]',
          'requestheader-group-headers': '["X-Remote-Group"]',
          'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
        },
      }),
    },
    authz: {
      createSubjectAccessReview: async ({ body }: { body: { spec: { user: string; groups?: string[]; resourceAttributes: Record<string, unknown> } } }) => {
        reviews.push({ user: body.spec.user, groups: body.spec.groups, attributes: body.spec.resourceAttributes });
        const allowed = body.spec.user === 'alice' && body.spec.resourceAttributes.namespace === 'team-a';
        return { status: { allowed, reason: allowed ? 'RBAC: allowed' : '' } };
      },
    },
    custom: {
      getNamespacedCustomObject: async ({ namespace, name }: { namespace: string; name: string }) => {
        const uid = investigations.get(`${namespace}/${name}`);
        if (!uid) throw Object.assign(new Error('not found'), { code: 404 });
        return { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { namespace, name, uid } };
      },
    },
  } as unknown as Kube;

  const sealedCase = async (dir: string, report: string) => {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'report.md'), report);
    await writeFile(path.join(dir, 'MANIFEST.sha256'), `${'0'.repeat(64)}  report.md\n`);
  };

  beforeAll(async () => {
    pki = await testPki();
    for (const ca of ['serving-ca', 'front-proxy-ca', 'other-ca']) pki.ca(ca);
    await pki.issue('server', 'serving-ca', 'subjectAltName=IP:127.0.0.1');
    await pki.issue('proxy', 'front-proxy-ca', 'extendedKeyUsage=clientAuth', 'front-proxy-client');
    await pki.issue('wrong-name', 'front-proxy-ca', 'extendedKeyUsage=clientAuth', 'kube-apiserver-kubelet-client');
    await pki.issue('intruder', 'other-ca', 'extendedKeyUsage=clientAuth', 'front-proxy-client');
    evidence = await mkdtemp(path.join(os.tmpdir(), 'casefile-caseapi-'));
    await sealedCase(path.join(evidence, 'team-a', 'web-a1b2c3d4'), '# current case\n');
    await sealedCase(path.join(evidence, 'team-a', 'gone-ffee0011'), '# deleted investigation\n');
    await sealedCase(path.join(evidence, 'team-a', 'twice-11111111'), '# first\n');
    await sealedCase(path.join(evidence, 'team-a', 'twice-22222222'), '# second\n');
    await mkdir(path.join(evidence, 'team-a', 'unsealed-b0b0b0b0'), { recursive: true });
    service = new CaseApiService(
      { port: 0, tlsCert: path.join(pki.dir, 'server.crt'), tlsKey: path.join(pki.dir, 'server.key') },
      {
        kube,
        evidenceDir: evidence,
        events: { emit: (_inv: unknown, _type: string, reason: string, message: string) => events.push(`${reason}: ${message}`) } as unknown as EventRecorder,
        writeBundle: async (dir, out) => {
          out.end(`bundle of ${path.basename(dir)}`);
        },
        log: pino({ level: 'silent' }),
      },
    );
    await service.start();
  }, 60_000);

  afterAll(async () => {
    await service.stop();
    await pki.remove();
    await rm(evidence, { recursive: true, force: true });
  });

  async function get(p: string, client: string | undefined, headers: Record<string, string | string[]> = {}): Promise<Reply> {
    const ca = await pki.file('serving-ca.crt');
    const cert = client ? { cert: await pki.file(`${client}.crt`), key: await pki.file(`${client}.key`) } : {};
    return new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: service.port, path: p, method: 'GET', ca, ...cert, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end();
    });
  }
  const alice = { 'X-Remote-User': 'alice', 'X-Remote-Group': ['ir-team', 'system:authenticated'] };

  it('serves discovery to the proxy, without a user', async () => {
    const r = await get('/apis/cases.casefile.dev/v1alpha1', 'proxy');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ kind: 'APIResourceList', groupVersion: 'cases.casefile.dev/v1alpha1' });
  });

  it.each([
    ['no client certificate', undefined, /no client certificate/],
    ['a certificate of another CA, with the proxy\'s name', 'intruder', /not signed by the cluster request-header CA/],
    ['a certificate of the proxy CA with another name', 'wrong-name', /not one of requestheader-allowed-names/],
  ])('refuses identity headers on a connection with %s (401), before any authorization', async (_what, client, message) => {
    const before = reviews.length;
    const r = await get(`${BASE}/team-a/casefiles/web/bundle`, client, { ...alice, 'X-Remote-Group': 'system:masters' });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ kind: 'Status', reason: 'Unauthorized', message: expect.stringMatching(message) });
    expect(reviews.length).toBe(before);
  });

  it('401 when the proxy forwards no user', async () => {
    const r = await get(`${BASE}/team-a/casefiles/web/bundle`, 'proxy', { 'X-Remote-Group': 'system:masters' });
    expect(r.status).toBe(401);
  });

  it('asks the API server whether the forwarded user may get investigations/casefile, by name and namespace', async () => {
    const r = await get(`${BASE}/team-a/casefiles/web/bundle`, 'proxy', { ...alice, 'X-Remote-Extra-Scopes': 'x' });
    expect(r).toEqual({ status: 200, type: 'application/gzip', body: 'bundle of web-a1b2c3d4' });
    expect(reviews.at(-1)).toEqual({
      user: 'alice',
      groups: ['ir-team', 'system:authenticated'],
      attributes: { verb: 'get', group: 'casefile.dev', resource: 'investigations', subresource: 'casefile', namespace: 'team-a', name: 'web' },
    });
    expect(events.at(-1)).toBe('CaseFileRead: alice read the case file (bundle) through the case-file API');
  });

  it('403 for a user the API server does not allow, naming the role that would', async () => {
    const r = await get(`${BASE}/team-a/casefiles/web/bundle`, 'proxy', { 'X-Remote-User': 'mallory', 'X-Remote-Group': 'system:authenticated' });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).message).toBe('User "mallory" cannot get investigations.casefile.dev/casefile "web" in namespace "team-a" (ClusterRole casefile-viewer grants it)');
    const other = await get(`${BASE}/team-b/casefiles/web/bundle`, 'proxy', alice);
    expect(other.status).toBe(403);
  });

  it('serves the report, and the summary with the manifest', async () => {
    const report = await get(`${BASE}/team-a/casefiles/web/report`, 'proxy', alice);
    expect(report).toEqual({ status: 200, type: 'text/markdown; charset=utf-8', body: '# current case\n' });
    const html = await get(`${BASE}/team-a/casefiles/web/report?format=html`, 'proxy', alice);
    expect(html.status).toBe(404);
    expect(JSON.parse(html.body).message).toBe('this case has no report.html');
    const summary = JSON.parse((await get(`${BASE}/team-a/casefiles/web`, 'proxy', alice)).body);
    expect(summary).toMatchObject({ kind: 'CaseFile', metadata: { namespace: 'team-a', name: 'web' }, caseDir: 'web-a1b2c3d4', artifacts: [{ path: 'report.md', sha256: '0'.repeat(64) }] });
  });

  it('keeps serving the case of a deleted Investigation, and asks which when there are several', async () => {
    expect((await get(`${BASE}/team-a/casefiles/gone/report`, 'proxy', alice)).body).toBe('# deleted investigation\n');
    const twice = await get(`${BASE}/team-a/casefiles/twice/report`, 'proxy', alice);
    expect(twice.status).toBe(409);
    expect(JSON.parse(twice.body).message).toMatch(/2 case files for team-a\/twice .*\?uid=11111111 or \?uid=22222222/);
    expect((await get(`${BASE}/team-a/casefiles/twice/report?uid=22222222`, 'proxy', alice)).body).toBe('# second\n');
  });

  it('409 for a case not sealed yet, 404 for none, and a bad uid', async () => {
    const unsealed = await get(`${BASE}/team-a/casefiles/unsealed/bundle`, 'proxy', alice);
    expect(unsealed.status).toBe(409);
    expect(JSON.parse(unsealed.body).message).toMatch(/not sealed yet/);
    expect((await get(`${BASE}/team-a/casefiles/nothing/bundle`, 'proxy', alice)).status).toBe(404);
    expect((await get(`${BASE}/team-a/casefiles/web/bundle?uid=..%2F..`, 'proxy', alice)).status).toBe(404);
  });

  it('is read-only and knows only its own paths', async () => {
    expect((await get(`${BASE}/team-a/casefiles/web/custody`, 'proxy', alice)).status).toBe(404);
    const post = await new Promise<number>((resolve, reject) => {
      void Promise.all([pki.file('serving-ca.crt'), pki.file('proxy.crt'), pki.file('proxy.key')]).then(([ca, cert, key]) => {
        const req = https.request({ host: '127.0.0.1', port: service.port, path: `${BASE}/team-a/casefiles/web`, method: 'DELETE', ca, cert, key, headers: alice, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    });
    expect(post).toBe(405);
  });
});
