// The case-file API on the real cluster: the API server forwards through its front proxy, casefile
// authorizes the forwarded user with a SubjectAccessReview, and a reviewer bound only to
// casefile-viewer in one namespace exports a case and verifies it offline. A user without the role is
// refused, a request that skips the API server cannot pose as anyone, and a bundle with one byte
// changed fails verify naming the file.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import https from 'node:https';
import { gunzipSync, gzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { bindUserInNamespace, createTestNamespace, kubeFromEnv, registerCleanup, runCleanups, waitFor, waitForPodReady } from '../support/cluster.js';
import { busyboxPod, core, deployOperator, getInvestigation, kubectlRun, OPERATOR_NAMESPACE, OPERATOR_SELECTOR, run } from '../operator/support.js';

const kc = kubeFromEnv();
const plugin = (args: string[]) => run('kubectl', ['casefile', ...args], { timeoutMs: 300_000 });
const REVIEWER = 'case-reviewer@example.com';
const STRANGER = 'stranger@example.com';

afterAll(runCleanups, 300_000);

let ns: string;
let work: string;
beforeAll(async () => {
  await deployOperator([], 180_000);
  ns = await createTestNamespace('caseapi');
  work = await mkdtemp(path.join(os.tmpdir(), 'casefile-export-'));
  registerCleanup(`remove ${work}`, () => rm(work, { recursive: true, force: true }));
  await bindUserInNamespace(kc, ns, 'reviewer', 'casefile-viewer', REVIEWER);
  // `view` in the namespace: it reads Investigations but not case files.
  await bindUserInNamespace(kc, ns, 'stranger-view', 'view', STRANGER);
  await core.createNamespacedPod({ namespace: ns, body: busyboxPod('web', 'echo hello from the suspect; exec sleep 3600') });
  await waitForPodReady(kc, ns, 'web', 90_000);
  const opened = await plugin(['open', 'web', '--name', 'exported', '--wait', '-n', ns]);
  expect({ exitCode: opened.exitCode, stderr: opened.stderr }).toEqual({ exitCode: 0, stderr: '' });
  await waitFor(
    'APIService v1alpha1.cases.casefile.dev to be Available',
    async () => JSON.parse((await kubectlRun(['get', 'apiservice', 'v1alpha1.cases.casefile.dev', '-o', 'json'])).stdout) as { status?: { conditions?: { type: string; status: string; message?: string }[] } },
    { timeoutMs: 120_000, intervalMs: 1000, until: (a) => a.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') ?? false },
  );
}, 420_000);

describe('the case-file API, through the API server', () => {
  it('lets a reviewer bound only to casefile-viewer export the case and verify it offline', async () => {
    const bundle = path.join(work, 'case.tar.gz');
    const exported = await plugin(['export', 'exported', '-n', ns, '--as', REVIEWER, '-o', bundle]);
    expect({ exitCode: exported.exitCode, stderr: exported.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect((await stat(bundle)).size).toBeGreaterThan(1000);
    // The reviewer checks who signed it with the public key casefile publishes (handed over out of band).
    const keys = await core.readNamespacedConfigMap({ name: 'casefile-signing-keys', namespace: OPERATOR_NAMESPACE });
    const keyFiles = await Promise.all(
      Object.entries(keys.data ?? {}).map(async ([name, pem]) => {
        await writeFile(path.join(work, name), pem);
        return ['--key', path.join(work, name)];
      }),
    );
    expect(keyFiles.length).toBeGreaterThan(0);
    const verified = await plugin(['verify', bundle, ...keyFiles.flat()]);
    expect({ exitCode: verified.exitCode, stderr: verified.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(verified.stdout).toMatch(/^OK signed by sha256:[0-9a-f]{64}/m);
    expect(verified.stdout).toMatch(/^OK \d+ artifact\(s\) verified/m);
    // The same bytes every time: the bundle is deterministic.
    const again = path.join(work, 'again.tar.gz');
    expect((await plugin(['export', 'exported', '-n', ns, '--as', REVIEWER, '-o', again])).exitCode).toBe(0);
    expect((await readFile(again)).equals(await readFile(bundle))).toBe(true);
  });

  it('serves the report and the manifest to the reviewer, and records who read it', async () => {
    const report = await plugin(['report', 'exported', '-n', ns, '--as', REVIEWER]);
    expect(report.exitCode).toBe(0);
    expect(report.stdout).toContain(`${ns}/exported`);
    const summary = await kubectlRun(['get', '--raw', `/apis/cases.casefile.dev/v1alpha1/namespaces/${ns}/casefiles/exported`, '--as', REVIEWER]);
    const caseFile = JSON.parse(summary.stdout) as { kind: string; artifacts: { path: string; sha256: string }[] };
    expect(caseFile.kind).toBe('CaseFile');
    expect(caseFile.artifacts.map((a) => a.path)).toEqual(expect.arrayContaining(['report.md', 'k8s/pod.yaml']));
    const events = await waitFor(
      'a CaseFileRead Event naming the reviewer',
      async () => (await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'reason=CaseFileRead' })).items.map((e) => e.message ?? ''),
      { timeoutMs: 30_000, intervalMs: 1000, until: (m) => m.some((x) => x.includes(REVIEWER)) },
    );
    expect(events.some((m) => m.includes(`${REVIEWER} read the case file (bundle)`))).toBe(true);
  });

  it('refuses a user without casefile-viewer (view only), and leaves no file behind', async () => {
    const out = path.join(work, 'stolen.tar.gz');
    const r = await plugin(['export', 'exported', '-n', ns, '--as', STRANGER, '-o', out]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Forbidden|forbidden/);
    expect(await readdir(work)).not.toContain('stolen.tar.gz');
    expect((await readdir(work)).filter((f) => f.startsWith('stolen'))).toEqual([]);
    // The stranger still reads the Investigation itself (view aggregates casefile-status-reader).
    expect((await kubectlRun(['get', 'investigations.casefile.dev', 'exported', '-n', ns, '--as', STRANGER])).exitCode).toBe(0);
  });

  it('believes no identity headers from a client that skips the API server', async () => {
    const pods = await core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: OPERATOR_SELECTOR });
    const ip = pods.items.find((p) => p.status?.phase === 'Running')?.status?.podIP;
    expect(ip).toBeDefined();
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { host: ip, port: 9443, path: `/apis/cases.casefile.dev/v1alpha1/namespaces/${ns}/casefiles/exported/bundle`, rejectUnauthorized: false, headers: { 'X-Remote-User': 'system:admin', 'X-Remote-Group': 'system:masters' } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(reply.status).toBe(401);
    expect(reply.body).toContain('no client certificate');
  });

  it('a bundle with one byte changed fails verify, naming the file', async () => {
    // One byte of k8s/pod.yaml's content, inside the archive: the tar block after that file's header.
    const tar = gunzipSync(await readFile(path.join(work, 'case.tar.gz')));
    const name = tar.indexOf('/k8s/pod.yaml\0');
    expect(name).toBeGreaterThan(0);
    const content = Math.floor(name / 512) * 512 + 512;
    tar[content + 10] = tar[content + 10]! ^ 0x01;
    const tampered = path.join(work, 'tampered.tar.gz');
    await writeFile(tampered, gzipSync(tar));
    const r = await plugin(['verify', tampered]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL k8s\/pod\.yaml: SHA-256 [0-9a-f]{64} does not match/);
  });

  it('after a key rotation signs new cases with the new key, and the old case still verifies with the old one', async () => {
    const keyFile = (fingerprint: string) => path.join(work, `${fingerprint.replace(':', '-')}.pub`);
    const old = (await getInvestigation(ns, 'exported')).status?.evidence?.signature?.keyFingerprint;
    expect(old).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Rotation as docs/signing.md says: replace the Secret, restart the operator.
    await core.deleteNamespacedSecret({ name: 'casefile-signing-key', namespace: OPERATOR_NAMESPACE });
    expect((await kubectlRun(['-n', OPERATOR_NAMESPACE, 'rollout', 'restart', 'deployment/casefile-operator'])).exitCode).toBe(0);
    expect((await kubectlRun(['-n', OPERATOR_NAMESPACE, 'rollout', 'status', 'deployment/casefile-operator', '--timeout=180s'])).exitCode).toBe(0);
    const opened = await plugin(['open', 'web', '--name', 'after-rotation', '--wait', '-n', ns]);
    expect({ exitCode: opened.exitCode, stderr: opened.stderr }).toEqual({ exitCode: 0, stderr: '' });
    const rotated = (await getInvestigation(ns, 'after-rotation')).status?.evidence?.signature?.keyFingerprint;
    expect(rotated).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(rotated).not.toBe(old);
    const keys = (await core.readNamespacedConfigMap({ name: 'casefile-signing-keys', namespace: OPERATOR_NAMESPACE })).data ?? {};
    for (const [name, pem] of Object.entries(keys)) await writeFile(path.join(work, name), pem);
    expect(Object.keys(keys).sort()).toEqual([path.basename(keyFile(old!)), path.basename(keyFile(rotated!))].sort());
    const bundle = path.join(work, 'old-case.tar.gz');
    expect((await plugin(['export', 'exported', '-n', ns, '--as', REVIEWER, '-o', bundle])).exitCode).toBe(0);
    const withOld = await plugin(['verify', bundle, '--key', keyFile(old!)]);
    expect({ exitCode: withOld.exitCode, stderr: withOld.stderr }).toEqual({ exitCode: 0, stderr: '' });
    const withNewOnly = await plugin(['verify', bundle, '--key', keyFile(rotated!)]);
    expect(withNewOnly.exitCode).toBe(1);
    expect(withNewOnly.stderr).toContain(`signed by an untrusted key ${old}`);
  }, 420_000);
});
