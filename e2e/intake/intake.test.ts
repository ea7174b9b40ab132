// Alert intake end to end: the operator in-cluster with intake on (TLS with a client CA, plus a bearer
// token), reached through the casefile-intake Service's ClusterIP from the host (kube-proxy on the
// node). Each Falco fixture is retargeted at a real pod and POSTed; the ResponsePolicy's Investigation
// must appear and reach its state; bad credentials must create nothing; an alert storm about one pod
// must open exactly one case and count every alert.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { apiError, createTestNamespace, kubeFromEnv, useCleanup, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxPod,
  conditionOf,
  core,
  custom,
  deployOperator,
  deployOperatorWithEnv,
  deployOperatorWithout,
  FINALIZER,
  getInvestigation,
  GROUP,
  OPERATOR_NAMESPACE,
  PLURAL,
  REPO_ROOT,
  VERSION,
  type Investigation,
  waitForCondition,
} from '../operator/support.js';
import { investigationName } from '../../src/intake/naming.js';
import { incidentKey, networking, readPolicy, requestRelease, shortId } from '../containment/helpers.js';

const kc = kubeFromEnv();
const TIMEOUT = 240_000;
const TLS_DIR = '/var/run/casefile/intake-tls';
const INTAKE_ENV = [
  'CASEFILE_INTAKE_PORT=8443',
  `CASEFILE_INTAKE_TLS_CERT=${TLS_DIR}/tls.crt`,
  `CASEFILE_INTAKE_TLS_KEY=${TLS_DIR}/tls.key`,
  `CASEFILE_INTAKE_CLIENT_CA=${TLS_DIR}/ca.crt`,
  // The storm and the fixtures open several cases at once in one namespace.
  'CASEFILE_INTAKE_NAMESPACE_BURST=50',
  'CASEFILE_INTAKE_POLICY_BURST=50',
];
const TOKEN = randomBytes(24).toString('hex');
const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/falco');

let pki: string;
let url: string;
const pem = (name: string) => readFileSync(path.join(pki, name));

function makePKI(): void {
  pki = mkdtempSync(path.join(os.tmpdir(), 'casefile-e2e-pki-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
  for (const ca of ['ca', 'other-ca']) openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.crt`);
  const issue = (name: string, ca: string, ext: string) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    execFileSync('sh', ['-c', `printf '%s\\n' "$1" > "$2"`, 'sh', ext, `${name}.ext`], { cwd: pki });
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  };
  issue('server', 'ca', 'subjectAltName=DNS:casefile-intake.casefile-system.svc,DNS:casefile-intake');
  issue('falco', 'ca', 'extendedKeyUsage=clientAuth');
  issue('intruder', 'other-ca', 'extendedKeyUsage=clientAuth');
}

async function applySecret(name: string, data: Record<string, Buffer | string>): Promise<void> {
  const body = { metadata: { name, namespace: OPERATOR_NAMESPACE }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
  try {
    await core.createNamespacedSecret({ namespace: OPERATOR_NAMESPACE, body });
  } catch (err) {
    if (apiError(err).code !== 409) throw err;
    await core.replaceNamespacedSecret({ name, namespace: OPERATOR_NAMESPACE, body });
  }
}

interface Reply {
  status: number;
  body: Record<string, any>;
}

const agent = new https.Agent({ keepAlive: true, maxSockets: 32 });

/** POSTs to the intake Service; `client` picks a certificate (falco: from the CA, intruder: another CA). */
function post(body: string, opts: { token?: string; client?: 'falco' | 'intruder'; type?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        agent: opts.client ? false : agent,
        ca: pem('ca.crt'),
        // The ClusterIP is not in the certificate; the chain is still verified against our CA.
        checkServerIdentity: () => undefined,
        ...(opts.client ? { cert: pem(`${opts.client}.crt`), key: pem(`${opts.client}.key`) } : {}),
        headers: {
          'content-type': opts.type ?? 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
        timeout: 30_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A fixture aimed at a real pod: namespace, pod name, container name and short container ID. */
function retarget(file: string, pod: V1Pod): string {
  const alert = JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8'));
  const id = pod.status!.containerStatuses![0]!.containerID!.replace(/^[a-z]+:\/\//, '');
  alert.output_fields = { ...alert.output_fields, 'k8s.ns.name': pod.metadata!.namespace, 'k8s.pod.name': pod.metadata!.name, 'container.name': 'app', 'container.id': id.slice(0, 12) };
  alert.time = new Date().toISOString();
  return JSON.stringify(alert);
}

async function investigations(namespace: string): Promise<Investigation[]> {
  const list = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })) as { items: Investigation[] };
  return list.items;
}

async function startPod(namespace: string, name: string): Promise<V1Pod> {
  await core.createNamespacedPod({ namespace, body: busyboxPod(name, 'exec sleep 3600') });
  return waitForPodReady(kc, namespace, name, 90_000);
}

async function createPolicy(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace, plural: 'responsepolicies',
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'ResponsePolicy', metadata: { name }, spec },
  });
}

useCleanup();

beforeAll(async () => {
  makePKI();
  await deployOperator([], 180_000); // the namespace and the Service exist from here on
  await applySecret('casefile-intake-token', { token: TOKEN });
  await applySecret('casefile-intake-tls', { 'tls.crt': pem('server.crt'), 'tls.key': pem('server.key'), 'ca.crt': pem('ca.crt') });
  await deployOperatorWithEnv(INTAKE_ENV, 180_000);
  const svc = await core.readNamespacedService({ name: 'casefile-intake', namespace: OPERATOR_NAMESPACE });
  url = `https://${svc.spec!.clusterIP}:8443/`;
  // Ready once the new replica leads, replayed its journal and synced the policies.
  await waitFor('intake to answer as the leader', () => post('{}', { token: TOKEN }).then((r) => r.status), { timeoutMs: 120_000, intervalMs: 1000, until: (s) => s === 400 });
}, 400_000);

afterAll(async () => {
  agent.destroy();
  await deployOperatorWithout(INTAKE_ENV.map((kv) => kv.split('=')[0]!), 180_000);
  await core.deleteNamespacedSecret({ name: 'casefile-intake-tls', namespace: OPERATOR_NAMESPACE }).catch(() => undefined);
  await core.deleteNamespacedSecret({ name: 'casefile-intake-token', namespace: OPERATOR_NAMESPACE }).catch(() => undefined);
  rmSync(pki, { recursive: true, force: true });
}, 300_000);

describe('alert intake', () => {
  it('opens an Investigation per fixture alert that reaches the policy state; host alerts and plain text open none', async () => {
    const ns = await createTestNamespace('intake-fixtures');
    await createPolicy(ns, 'respond', {
      match: { rules: ['Terminal shell in container', 'Drop and execute new binary in container', 'Unexpected outbound connection destination'], minPriority: 'Warning', namespaces: [ns] },
      investigation: { containment: { order: 'ContainFirst', network: { isolate: true } } },
    });
    await new Promise((r) => setTimeout(r, 2000)); // the policy reaches the operator's informer
    const fixtures = ['falco-http-output-terminal-shell.json', 'falcosidekick-webhook-drop-and-execute.json', 'falcosidekick-webhook-outbound-c2.json'];
    const opened: string[] = [];
    for (const [i, file] of fixtures.entries()) {
      const pod = await startPod(ns, `suspect-${i}`);
      const sidekick = file.startsWith('falcosidekick');
      const r = sidekick ? await post(retarget(file, pod), { token: TOKEN }) : await post(retarget(file, pod), { client: 'falco' });
      expect(r).toMatchObject({ status: 202, body: { status: 'accepted' } });
      opened.push(r.body.investigations[0].split('/')[1]);
    }
    for (const [i, name] of opened.entries()) {
      const inv = await waitFor(`${ns}/${name} Ready`, async () => (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name })) as Investigation, {
        timeoutMs: 180_000,
        intervalMs: 1000,
        until: (inv) => conditionOf(inv, 'Ready')?.status === 'True',
      });
      expect(conditionOf(inv, 'NetworkIsolated')).toMatchObject({ status: 'True' });
      expect(conditionOf(inv, 'EvidenceSealed')).toMatchObject({ status: 'True' });
      expect(inv.metadata.labels).toMatchObject({ 'casefile.dev/policy': 'respond', 'app.kubernetes.io/managed-by': 'casefile' });
      const spec = inv.spec as { target: { pod: string; uid: string; container: string }; alert: { source: string; raw: string } };
      expect(spec.target).toMatchObject({ pod: `suspect-${i}`, container: 'app' });
      expect(spec.alert.source).toBe(fixtures[i]!.startsWith('falcosidekick') ? 'falcosidekick' : 'falco');
      await waitFor(`${name} status.alerts`, async () => ((await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name })) as Investigation).status?.alerts?.count, {
        timeoutMs: 30_000,
        until: (n) => n === 1,
      });
    }
    const host = await post(readFileSync(path.join(FIXTURES, 'falco-http-output-host-alert-null-k8s.json'), 'utf8'), { client: 'falco' });
    expect(host).toMatchObject({ status: 202, body: { status: 'no_pod' } });
    const plain = await post(readFileSync(path.join(FIXTURES, 'falco-http-output-plaintext.txt'), 'utf8'), { client: 'falco', type: 'text/plain' });
    expect(plain.status).toBe(415);
    expect(plain.body.message).toContain('json_output: true');
    expect((await investigations(ns)).map((i) => i.metadata.name).sort()).toEqual([...opened].sort());
  }, TIMEOUT + 120_000);

  it('ContainFirst from an alert: isolated ahead of the create under an id claimed for the case; a look-alike carrying that id gets only its own; release lifts exactly what was applied', async () => {
    const ns = await createTestNamespace('intake-ahead');
    const contain = { order: 'ContainFirst', network: { isolate: true, verify: false } };
    await createPolicy(ns, 'contain', { match: { namespaces: [ns] }, investigation: { containment: contain } });
    await new Promise((r) => setTimeout(r, 2000));
    const pod = await startPod(ns, 'suspect');
    const r = await post(retarget('falcosidekick-webhook-drop-and-execute.json', pod), { token: TOKEN });
    expect(r).toMatchObject({ status: 202, body: { status: 'accepted' } });
    const name = String(r.body.investigations[0]).split('/')[1]!;
    const real = await waitForCondition(ns, name, 'NetworkIsolated', 'True', 120_000);
    const id = real.metadata.annotations?.['casefile.dev/isolated-ahead'];
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(id).not.toBe(shortId(real));
    expect(real.metadata.finalizers).toContain(FINALIZER);
    // Claimed for this Investigation by the operator: its UID and an ownerReference on the policy.
    const policy = (await readPolicy(ns, `casefile-${id}`))!;
    expect(policy.metadata!.annotations!['casefile.dev/investigation-uid']).toBe(real.metadata.uid);
    expect(policy.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: 'Investigation', name, uid: real.metadata.uid })]);
    expect(real.status?.containment).toMatchObject({ networkPolicy: `casefile-${id}`, label: `casefile.dev/incident-${id}=isolated` });
    const labels = async () => Object.keys((await core.readNamespacedPod({ namespace: ns, name: 'suspect' })).metadata!.labels ?? {}).filter((k) => k.startsWith('casefile.dev/incident-')).sort();
    expect(await labels()).toEqual([`casefile.dev/incident-${id}`]);
    // Nothing else made ahead is left behind (no second policy under the case's UID).
    expect(await readPolicy(ns, `casefile-${shortId(real)}`)).toBeUndefined();

    // Someone who may create Investigations copies the id onto a case of their own about the same pod.
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Investigation', metadata: { name: 'lookalike', annotations: { 'casefile.dev/isolated-ahead': id! } }, spec: { target: { pod: 'suspect' }, containment: contain } },
    });
    const look = await waitForCondition(ns, 'lookalike', 'NetworkIsolated', 'True', 120_000);
    expect(look.status?.containment).toMatchObject({ networkPolicy: `casefile-${shortId(look)}`, label: `${incidentKey(look)}=isolated` });
    await requestRelease(ns, 'lookalike');
    await waitForCondition(ns, 'lookalike', 'Released', 'True', 120_000);
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'lookalike' });
    await waitFor('the look-alike gone', () => getInvestigation(ns, 'lookalike').then(() => false, () => true), { timeoutMs: 60_000, until: (gone) => gone });
    // The real case's containment is untouched by the look-alike's whole life.
    expect((await readPolicy(ns, `casefile-${id}`))?.metadata?.uid).toBe(policy.metadata!.uid);
    expect(await labels()).toEqual([`casefile.dev/incident-${id}`]);

    await requestRelease(ns, name);
    await waitForCondition(ns, name, 'Released', 'True', 120_000);
    expect(await readPolicy(ns, `casefile-${id}`)).toBeUndefined();
    expect(await labels()).toEqual([]);
  }, TIMEOUT + 120_000);

  it('containment made ahead that nobody claimed (the process stopped between the writes and the claim) is lifted by the sweep, policy and label', async () => {
    const ns = await createTestNamespace('intake-sweep');
    await startPod(ns, 'suspect');
    const id = randomBytes(4).toString('hex');
    const key = `casefile.dev/incident-${id}`;
    // What intake's first writes leave if the operator is killed before the create returns.
    await networking.createNamespacedNetworkPolicy({
      namespace: ns,
      body: {
        metadata: { name: `casefile-${id}`, labels: { 'app.kubernetes.io/managed-by': 'casefile', 'casefile.dev/isolated-ahead': id } },
        spec: { podSelector: { matchLabels: { [key]: 'isolated' } }, policyTypes: ['Ingress', 'Egress'] },
      },
    });
    await core.patchNamespacedPod({ namespace: ns, name: 'suspect', body: [{ op: 'add', path: `/metadata/labels/${key.replace('/', '~1')}`, value: 'isolated' }] });
    // Kept through the claim's grace (30 s), lifted by the next sweep (one a minute).
    await waitFor('the unclaimed policy and its label lifted', async () => ({
      policy: (await readPolicy(ns, `casefile-${id}`)) !== undefined,
      label: (await core.readNamespacedPod({ namespace: ns, name: 'suspect' })).metadata!.labels?.[key],
    }), { timeoutMs: 150_000, intervalMs: 2000, until: (s) => !s.policy && s.label === undefined });
  }, TIMEOUT);

  it('refuses missing or wrong credentials with 401 and creates nothing', async () => {
    const ns = await createTestNamespace('intake-auth');
    await createPolicy(ns, 'respond', { match: { namespaces: [ns] } });
    const pod = await startPod(ns, 'suspect');
    const body = retarget('falco-http-output-terminal-shell.json', pod);
    expect((await post(body)).status).toBe(401);
    expect((await post(body, { token: `${TOKEN}x` })).status).toBe(401);
    expect((await post(body, { client: 'intruder' })).status).toBe(401);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await investigations(ns)).toEqual([]);
  }, TIMEOUT);

  it('1,000 alerts about one pod open exactly one Investigation counting all of them', async () => {
    const ns = await createTestNamespace('intake-storm');
    await createPolicy(ns, 'storm', { match: { namespaces: [ns] } });
    await new Promise((r) => setTimeout(r, 2000));
    const pod = await startPod(ns, 'suspect');
    const body = retarget('falcosidekick-webhook-drop-and-execute.json', pod);
    const statuses: number[] = [];
    let next = 0;
    const sender = async () => {
      while (next < 1000) {
        next++;
        statuses.push((await post(body, { token: TOKEN })).status);
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 32 }, sender));
    expect(statuses.filter((s) => s === 202)).toHaveLength(1000);
    expect(Date.now() - started).toBeLessThan(30_000);
    const counted = await waitFor('one Investigation counting 1000 alerts', () => investigations(ns), {
      timeoutMs: 120_000,
      intervalMs: 1000,
      until: (items) => items.length === 1 && items[0]!.status?.alerts?.count === 1000,
    });
    expect(counted).toHaveLength(1);
  }, TIMEOUT);

  it('a squatted case name: the alert opens the real case under a moved name, the decoy gets nothing', async () => {
    const ns = await createTestNamespace('intake-squat');
    await createPolicy(ns, 'respond', { match: { namespaces: [ns] } });
    await new Promise((r) => setTimeout(r, 2000));
    const pod = await startPod(ns, 'suspect');
    const derived = investigationName(ns, 'respond', 'suspect', pod.metadata!.uid!);
    // A tenant pre-creates the derived name, looking like casefile's (label) but about another pod.
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Investigation', metadata: { name: derived, labels: { 'app.kubernetes.io/managed-by': 'casefile' } }, spec: { target: { pod: 'decoy' } } },
    });
    const r = await post(retarget('falcosidekick-webhook-drop-and-execute.json', pod), { token: TOKEN });
    expect(r).toMatchObject({ status: 202, body: { status: 'accepted' } });
    expect(typeof r.body.seq).toBe('number');
    const moved = await waitFor('the case under a moved name', () => investigations(ns), {
      timeoutMs: 60_000,
      intervalMs: 1000,
      until: (items) => items.some((i) => i.metadata.name.startsWith(`${derived.slice(0, 54)}-`) && i.status?.alerts?.count === 1),
    });
    const real = moved.find((i) => i.metadata.name !== derived)!;
    expect(real.metadata.name).toMatch(/-[0-9a-f]{8}$/);
    expect((real.spec as { target: { uid: string } }).target.uid).toBe(pod.metadata!.uid);
    expect(moved.find((i) => i.metadata.name === derived)!.status?.alerts).toBeUndefined();
  }, TIMEOUT);

  it('a delayed alert about a replaced pod (same name, new UID) opens nothing: no_pod', async () => {
    const ns = await createTestNamespace('intake-replaced');
    await createPolicy(ns, 'respond', { match: { namespaces: [ns] } });
    await new Promise((r) => setTimeout(r, 2000));
    const old = await startPod(ns, 'web');
    const stale = retarget('falcosidekick-webhook-drop-and-execute.json', old);
    await core.deleteNamespacedPod({ namespace: ns, name: 'web', gracePeriodSeconds: 0 });
    await waitFor('web gone', () => core.readNamespacedPod({ namespace: ns, name: 'web' }).then(() => false, () => true), { timeoutMs: 60_000, until: (gone) => gone });
    const replacement = await startPod(ns, 'web');
    expect(replacement.metadata!.uid).not.toBe(old.metadata!.uid);
    const r = await post(stale, { token: TOKEN });
    expect(r).toMatchObject({ status: 202, body: { status: 'no_pod' } });
    await new Promise((r) => setTimeout(r, 3000));
    expect(await investigations(ns)).toEqual([]);
  }, TIMEOUT);
});
