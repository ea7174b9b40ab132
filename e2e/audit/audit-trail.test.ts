// The audit trail of a case, on the real API server: its webhook audit backend posts to casefile's
// receiver (mutual TLS), and AuditCorrelated copies what concerns the suspect into audit/. The story:
// a user `mallory` (her own client certificate, not impersonation) execs into the pod and reads its
// ServiceAccount token; the token lists secrets, asks what it may do, and is refused in kube-system.
// A sibling pod of the same ServiceAccount also lists secrets, and must not be blamed on this pod.
// The suspect's shell also holds a marker it computed at run time, in neither argv nor environment.
// The case (memory scope Anonymous) then tells the whole story (issue 15): the exec and the token's
// secrets list under audit/, the marker under live/memory/, a timeline.jsonl with the three in order,
// and a report.html that names mallory and loads nothing. Then a flood of audit events past the
// store's cap: the store stays at its cap, the first case's audit/ is untouched, and a second case
// still finds mallory's exec.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestNamespace, kubeFromEnv, registerCleanup, runCleanups, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxContainer,
  caseDirOf,
  conditionOf,
  core,
  createInvestigation,
  deployOperator,
  ensureEvidenceReader,
  custom,
  GROUP,
  kubectlRun,
  OPERATOR_NAMESPACE,
  PLURAL,
  VERSION,
  readerExec,
  shq,
  readEvidence,
  sha256Check,

  waitForCondition,
  type Investigation,
} from '../operator/support.js';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { investigationName } from '../../src/intake/naming.js';

const kc = kubeFromEnv();
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const sh = promisify(execFile);
const STORE_MAX_BYTES = 8 * 1024 * 1024;
const TIMEOUT = 300_000;
const state = () => {
  const dir = process.env.CASEFILE_CLUSTER_STATE;
  if (!dir) throw new Error('CASEFILE_CLUSTER_STATE is not set: this suite needs the local cluster (e2e/cluster), whose API server sends audit events to casefile');
  return dir;
};

afterAll(runCleanups, 300_000);

let ns: string;
let work: string;
let apiServer: URL;
let clusterCA: Buffer;

/** A request to the API server with a bearer token (the stolen ServiceAccount token). */
function withToken(token: string, method: string, urlPath: string, body?: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(urlPath, apiServer), { method, ca: clusterCA, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** mallory's own kubeconfig: a client certificate signed by the cluster CA, CN mallory. */
async function malloryKubeconfig(): Promise<string> {
  const pki = path.join(state(), 'pki');
  await sh('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=mallory', '-keyout', path.join(work, 'mallory.key'), '-out', path.join(work, 'mallory.csr')]);
  await sh('openssl', ['x509', '-req', '-in', path.join(work, 'mallory.csr'), '-CA', path.join(pki, 'ca.crt'), '-CAkey', path.join(pki, 'ca.key'), '-CAcreateserial', '-CAserial', path.join(work, 'ca.srl'), '-days', '1', '-out', path.join(work, 'mallory.crt')]);
  const file = path.join(work, 'mallory.kubeconfig');
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{ name: c, cluster: { server: "${apiServer.origin}", certificate-authority: "${path.join(pki, 'ca.crt')}" } }]`,
      `users: [{ name: mallory, user: { client-certificate: "${path.join(work, 'mallory.crt')}", client-key: "${path.join(work, 'mallory.key')}" } }]`,
      'contexts: [{ name: c, context: { cluster: c, user: mallory } }]',
      'current-context: c',
      '',
    ].join('\n'),
  );
  return file;
}

// The shell's arithmetic and concatenation make the marker; `sleep` is not exec'd, so the shell stays alive holding it.
const MARKER = 'casefile-story-marker-4242';
const MARKER_SCRIPT = ['a=story; n=$((6*7))', 'M="casefile-${a}-marker-$n$n"', 'echo ready', 'sleep 7777782', 'echo "$M"'].join('\n');

const suspectPod = (name: string, script = 'exec sleep 3600') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: 'web' } },
  spec: { serviceAccountName: 'web', terminationGracePeriodSeconds: 0, containers: [busyboxContainer('app', script)] },
});

async function openCase(name: string, live = false): Promise<Investigation> {
  const evidence = live ? { live: { enabled: true, timeoutSeconds: 90, memory: { scope: 'Anonymous' } }, logs: { previous: false } } : { live: { enabled: false }, logs: { previous: false } };
  await createInvestigation(ns, name, { target: { pod: 'web-1', container: 'app' }, evidence });
  const sealed = await waitForCondition(ns, name, 'EvidenceSealed', 'True', TIMEOUT);
  return sealed;
}

async function jsonl(caseDir: string, artifact: string): Promise<Record<string, any>[]> {
  return (await readEvidence(`${caseDir}/${artifact}`)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
}

let firstCase: Investigation;
let malloryConfig: string;
let firstDir: string;

beforeAll(async () => {
  // Intake on (with a token nobody here sends), so an audit event can open a case through a ResponsePolicy.
  await core.createNamespacedSecret({ namespace: OPERATOR_NAMESPACE, body: { metadata: { name: 'casefile-intake-token' }, stringData: { token: randomBytes(24).toString('hex') } } }).catch(() => undefined);
  registerCleanup('remove the intake token', () => core.deleteNamespacedSecret({ name: 'casefile-intake-token', namespace: OPERATOR_NAMESPACE }).then(() => undefined, () => undefined));
  await deployOperator([`CASEFILE_AUDIT_STORE_MAX_BYTES=${STORE_MAX_BYTES}`, 'CASEFILE_INTAKE_PORT=8443'], 180_000);
  // The reader pod reads the case files; on a fresh cluster this suite may be the first to need it.
  await ensureEvidenceReader();
  ns = await createTestNamespace('audit');
  work = await mkdtemp(path.join(os.tmpdir(), 'casefile-audit-'));
  registerCleanup(`remove ${work}`, () => rm(work, { recursive: true, force: true }));
  apiServer = new URL(kc.getCurrentCluster()!.server);
  clusterCA = await readFile(path.join(state(), 'pki', 'ca.crt'));

  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
  await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'secret-lister' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }] } });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: { metadata: { name: 'web-lists-secrets' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secret-lister' }, subjects: [{ kind: 'ServiceAccount', name: 'web', namespace: ns }] },
  });
  await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'exec-into-pods' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { apiGroups: [''], resources: ['pods/exec'], verbs: ['create'] }] } });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: { metadata: { name: 'mallory-execs' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'exec-into-pods' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' }] },
  });
  await core.createNamespacedPod({ namespace: ns, body: suspectPod('web-1', MARKER_SCRIPT) });
  await core.createNamespacedPod({ namespace: ns, body: suspectPod('web-2') });
  await waitForPodReady(kc, ns, 'web-1', 90_000);
  await waitForPodReady(kc, ns, 'web-2', 90_000);

  // mallory execs in and takes the pod's token.
  const mallory = (malloryConfig = await malloryKubeconfig());
  const stolen = await kubectlRun(['--kubeconfig', mallory, 'exec', '-n', ns, 'web-1', '--', 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token']);
  expect({ exitCode: stolen.exitCode, stderr: stolen.stderr }).toEqual({ exitCode: 0, stderr: '' });
  const token = stolen.stdout.trim();
  expect(await withToken(token, 'GET', `/api/v1/namespaces/${ns}/secrets`)).toBe(200);
  expect(await withToken(token, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: ns } })).toBe(201);
  expect(await withToken(token, 'GET', '/api/v1/namespaces/kube-system/secrets')).toBe(403);
  // The sibling's own token (same ServiceAccount) lists secrets too: not this pod's doing.
  const sibling = await kubectlRun(['exec', '-n', ns, 'web-2', '--', 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token']);
  expect(sibling.exitCode).toBe(0);
  expect(await withToken(sibling.stdout.trim(), 'GET', `/api/v1/namespaces/${ns}/secrets?limit=7`)).toBe(200);

  firstCase = await openCase('stolen-token', true);
  firstDir = caseDirOf(firstCase);
}, 600_000);

describe('AuditCorrelated, on the real API server', () => {
  it("copies mallory's exec into the pod, with her name, the command and where she came from", async () => {
    expect(conditionOf(firstCase, 'AuditCorrelated')).toMatchObject({ status: 'True', reason: 'Correlated' });
    const requests = await jsonl(firstDir, 'audit/pod-requests.jsonl');
    const exec = requests.find((r) => r.subresource === 'exec');
    expect(exec).toMatchObject({ user: { username: 'mallory' }, namespace: ns, name: 'web-1' });
    expect(['create', 'get']).toContain(exec!.verb); // kubectl exec over WebSocket is a GET
    expect(exec!.requestURI).toContain('command=cat');
    expect(exec!.sourceIPs.length).toBeGreaterThan(0);
    // casefile's own requests on the pod are there too, under its own name: nothing is hidden.
    expect(requests.every((r) => r.name === 'web-1' && r.namespace === ns)).toBe(true);
  });

  it("copies what the pod's own token did, and nothing its sibling's token did", async () => {
    const requests = await jsonl(firstDir, 'audit/token-requests.jsonl');
    const podUID = firstCase.status!.target!.podUID!;
    expect(requests.length).toBeGreaterThanOrEqual(3);
    expect(requests.every((r) => r.user.username === `system:serviceaccount:${ns}:web` && r.user.extra['authentication.kubernetes.io/pod-uid'][0] === podUID)).toBe(true);
    expect(requests.find((r) => r.resource === 'secrets' && r.namespace === ns && r.code === 200)).toBeDefined();
    expect(requests.find((r) => r.resource === 'secrets' && r.namespace === 'kube-system')).toMatchObject({ code: 403 });
    expect(requests.find((r) => r.resource === 'selfsubjectrulesreviews')).toBeDefined();
    expect(requests.some((r) => String(r.requestURI).includes('limit=7'))).toBe(false);
  });

  it('derives the findings from the copied records, and the case verifies', async () => {
    const findings = JSON.parse(await readEvidence(`${firstDir}/audit/findings.json`)) as { severity: string; summary: string }[];
    const summaries = findings.map((f) => f.summary);
    expect(summaries).toEqual(expect.arrayContaining([expect.stringMatching(/^mallory exec'd into the pod at .*: cat \/var\/run\/secrets/)]));
    expect(summaries).toEqual(expect.arrayContaining([expect.stringMatching(/^the pod's token read or listed secrets 1 time\(s\) in 1 namespace\(s\)/)]));
    expect(summaries).toEqual(expect.arrayContaining([expect.stringMatching(/^the pod's token asked what it may do \(SelfSubjectRulesReview\)/)]));
    expect(summaries).toEqual(expect.arrayContaining([expect.stringMatching(/^the API server refused 1 request\(s\) made with the pod's token/)]));
    const summary = JSON.parse(await readEvidence(`${firstDir}/audit/summary.json`)) as { window: { fromSource: string }; incomplete: string | null };
    expect(summary).toMatchObject({ window: { fromSource: 'pod-start' }, incomplete: null });
    const check = await sha256Check(firstDir);
    expect({ exitCode: check.exitCode, stderr: check.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(check.stdout).toContain('audit/pod-requests.jsonl: OK');
  });

  it('tells the whole story: the marker in memory, one timeline with process, exec and token in order, a report naming mallory', async () => {
    const grep = await readerExec(`grep -rl ${shq(MARKER)} ${shq(`${firstDir}/live/memory`)}`);
    expect(grep.exitCode).toBe(0);
    // live/memory/<pid>/<start>-<end>.bin: the process that holds the marker.
    const pid = /live\/memory\/(\d+)\//.exec(grep.stdout)?.[1];
    expect(pid).toBeDefined();
    // Only memory holds it: not the process list (argv) nor the environment the collector recorded.
    expect(await readEvidence(`${firstDir}/live/processes.json`)).not.toContain(MARKER);

    const timeline = (await readEvidence(`${firstDir}/timeline.jsonl`)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { time: string; source: string; what: string; artifact: string });
    const times = timeline.map((e) => Date.parse(e.time)).filter((t) => !Number.isNaN(t));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const shell = timeline.findIndex((e) => e.source === 'process' && (e as { subject?: string }).subject === `pid ${pid}`);
    const exec = timeline.findIndex((e) => e.source === 'audit' && e.what.startsWith('mallory ') && e.what.includes('pods/exec'));
    const secrets = timeline.findIndex((e) => e.source === 'audit' && e.artifact === 'audit/token-requests.jsonl' && e.what.includes(' list secrets'));
    expect({ shell: shell >= 0, exec: exec >= 0, secrets: secrets >= 0 }).toEqual({ shell: true, exec: true, secrets: true });
    expect(shell).toBeLessThan(exec);
    expect(exec).toBeLessThan(secrets);

    const html = await readEvidence(`${firstDir}/report.html`);
    expect(html).toContain('mallory');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/\s(src|href)\s*=\s*["']?(https?:)?\/\//i);
    expect(await readEvidence(`${firstDir}/report.md`)).toContain('mallory');
  });

  it("an audit event opens a case by itself: mallory's exec matches a ResponsePolicy written for Falco's 'Attach/Exec Pod'", async () => {
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: 'responsepolicies',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'ResponsePolicy', metadata: { name: 'exec-into-pods' }, spec: { match: { rules: ['Attach/Exec Pod'], sources: ['k8s_audit'] }, investigation: { evidence: { live: { enabled: false } } } } },
    });
    const web2 = await core.readNamespacedPod({ name: 'web-2', namespace: ns });
    const expected = investigationName(ns, 'exec-into-pods', 'web-2', web2.metadata!.uid!);
    // The policy cache learns of the policy from its watch; exec until a case opens (each exec is one more event).
    let opened: Investigation | undefined;
    await waitFor(
      `Investigation ${expected} opened by mallory's exec into web-2`,
      async () => {
        await kubectlRun(['--kubeconfig', malloryConfig, 'exec', '-n', ns, 'web-2', '--', 'true']);
        opened = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: expected }).catch(() => undefined)) as Investigation | undefined;
        return opened?.metadata.name;
      },
      { timeoutMs: 60_000, intervalMs: 2000, until: () => opened !== undefined },
    );
    expect(opened!.spec).toMatchObject({ target: { pod: 'web-2', uid: web2.metadata!.uid } });
    expect(JSON.stringify((opened!.spec as { alert?: unknown }).alert)).toContain('Attach/Exec Pod');
  }, 120_000);

  it("a flood past the store's cap keeps the store at its cap, and loses no case's evidence", async () => {
    const before = await readEvidence(`${firstDir}/MANIFEST.sha256`);
    await flood(16 * 1024 * 1024);
    const du = await readerExec(`find /evidence/.audit -type f -name '*.jsonl' -exec stat -c %s {} + | awk '{s+=$1} END {print s+0}'`);
    expect(du.exitCode).toBe(0);
    const bytes = Number(du.stdout.trim());
    expect(bytes).toBeGreaterThan(STORE_MAX_BYTES / 2); // the flood arrived...
    expect(bytes).toBeLessThanOrEqual(STORE_MAX_BYTES); // ...and the store kept to its cap
    // The sealed case is untouched and still verifies.
    expect(await readEvidence(`${firstDir}/MANIFEST.sha256`)).toBe(before);
    expect((await sha256Check(firstDir)).exitCode).toBe(0);
    // Requests on pods have their own share of the store: a case opened after the flood still has the exec.
    const second = await openCase('after-flood');
    const requests = await jsonl(caseDirOf(second), 'audit/pod-requests.jsonl');
    expect(requests.find((r) => r.subresource === 'exec')).toMatchObject({ user: { username: 'mallory' } });
  }, 600_000);
});

/** Posts audit EventLists of made-up ServiceAccount requests, as the API server would, until `bytes` were sent. */
async function flood(bytes: number): Promise<void> {
  const pki = process.env.CASEFILE_AUDIT_PKI;
  const ip = process.env.CASEFILE_AUDIT_SERVICE_IP;
  if (!pki || !ip) throw new Error('CASEFILE_AUDIT_PKI and CASEFILE_AUDIT_SERVICE_IP are not set: eval "$(e2e/cluster/env)"');
  const agent = new https.Agent({
    keepAlive: true,
    ca: await readFile(path.join(pki, 'audit-ca.crt')),
    cert: await readFile(path.join(pki, 'apiserver-audit-client.crt')),
    key: await readFile(path.join(pki, 'apiserver-audit-client.key')),
  });
  let sent = 0;
  for (let batch = 0; sent < bytes; batch++) {
    const items = Array.from({ length: 400 }, (_, i) => ({
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      level: 'Metadata',
      auditID: `flood-${batch}-${i}`,
      stage: 'ResponseComplete',
      requestURI: `/api/v1/namespaces/flood-${i}/configmaps?limit=500&continue=${'x'.repeat(200)}`,
      verb: 'list',
      user: { username: 'system:serviceaccount:flood:noisy', groups: ['system:serviceaccounts', 'system:authenticated'] },
      sourceIPs: ['10.88.0.99'],
      userAgent: 'flood/1.0',
      objectRef: { resource: 'configmaps', namespace: `flood-${i}`, apiVersion: 'v1' },
      responseStatus: { code: 200 },
      requestReceivedTimestamp: new Date().toISOString(),
      stageTimestamp: new Date().toISOString(),
    }));
    const body = JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items });
    const code = await new Promise<number>((resolve, reject) => {
      const req = https.request({ host: ip, port: 443, path: '/audit', method: 'POST', agent, servername: 'casefile-audit.casefile-system.svc', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(code).toBe(200);
    sent += body.length;
  }
  agent.destroy();
}

