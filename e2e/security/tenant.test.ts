// casefile is not a way into the cluster, proven as a hostile tenant would try it (docs/security.md).
// The tenant is a user bound to the built-in `admin` role in one namespace, by impersonation
// (kubectl --as). It may open a plain Investigation there; it cannot choose an image, ask for the node
// collector, a cordon or cluster RBAC narrowing, or reach another namespace through a ResponsePolicy.
// The operator's own ServiceAccount (impersonated) cannot create a pod with another image or with host
// access, and holds no create on ClusterRoleBindings and no escalate. Pod creations that must be refused
// use --dry-run=server: admission runs in full and nothing is left behind.
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { bindUserInNamespace, createTestNamespace, kubeFromEnv, registerCleanup, runCleanups, waitFor, waitForPodReady } from '../support/cluster.js';
import {
  busyboxPod,
  conditionOf,
  core,
  custom,
  deployOperator,
  deployOperatorWithEnv,
  deployOperatorWithout,
  GROUP,
  kubectlRun,
  OPERATOR_NAMESPACE,
  PLURAL,
  VERSION,
  waitForCondition,
  type Investigation,
} from '../operator/support.js';

const kc = kubeFromEnv();
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const TIMEOUT = 240_000;
const OPERATOR_SA = `system:serviceaccount:${OPERATOR_NAMESPACE}:casefile-operator`;
const TOKEN = randomBytes(24).toString('hex');
const INTAKE_ENV = ['CASEFILE_INTAKE_PORT=8443'];
const id = randomBytes(3).toString('hex');
const TENANT = `casefile-e2e-tenant-${id}`;
const RESPONDER = `casefile-e2e-responder-${id}`;

// The tenant's namespaces and bindings live for the whole file (useCleanup would delete them after each test).
afterAll(runCleanups, 300_000);

let tenantNs: string;
let otherNs: string;
let tenantPod: V1Pod;
let otherPod: V1Pod;
let configuredImage: string;
let intakeUrl: string;

/** kubectl as `user` (impersonated; every authenticated user is in system:authenticated). */
function as(user: string, args: string[], body?: unknown) {
  return kubectlRun([`--as=${user}`, '--as-group=system:authenticated', ...args], body === undefined ? undefined : JSON.stringify(body));
}

const investigation = (name: string, spec: Record<string, unknown>) => ({ apiVersion: `${GROUP}/${VERSION}`, kind: 'Investigation', metadata: { name }, spec });

/** A strategic-merge PATCH as `user` (impersonated): kubectl has no raw PATCH, and `kubectl patch` no ephemeralcontainers subresource. */
async function patchAs(user: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  const options: https.RequestOptions = {
    method: 'PATCH',
    headers: { 'content-type': 'application/strategic-merge-patch+json', 'impersonate-user': user },
  };
  await kc.applyToHTTPSOptions(options);
  const url = new URL(path, kc.getCurrentCluster()!.server);
  return new Promise((resolve, reject) => {
    const req = https.request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function canI(user: string, verb: string, resource: string, namespace?: string): Promise<string> {
  const r = await as(user, ['auth', 'can-i', verb, resource, ...(namespace ? ['-n', namespace] : [])]);
  return r.stdout.trim();
}

async function investigations(namespace: string): Promise<Investigation[]> {
  return ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })) as { items: Investigation[] }).items;
}

async function post(body: unknown): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(intakeUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

function alertAbout(pod: V1Pod) {
  return {
    rule: 'Terminal shell in container',
    priority: 'Critical',
    time: new Date().toISOString(),
    output: 'A shell was spawned in a container',
    output_fields: { 'k8s.ns.name': pod.metadata!.namespace, 'k8s.pod.name': pod.metadata!.name, 'container.name': 'app' },
  };
}

beforeAll(async () => {
  await deployOperator([], 180_000);
  const cm = await core.readNamespacedConfigMap({ name: 'casefile-containers', namespace: OPERATOR_NAMESPACE });
  configuredImage = cm.data!['debug-image']!;
  tenantNs = await createTestNamespace('tenant');
  otherNs = await createTestNamespace('other-tenant');
  await bindUserInNamespace(kc, tenantNs, 'tenant-admin', 'admin', TENANT);
  // A responder the platform team trusted with node-level actions (cluster-wide grant).
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: RESPONDER },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'casefile-node-responder' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: RESPONDER }],
    },
  });
  registerCleanup(`delete ClusterRoleBinding ${RESPONDER}`, () => rbac.deleteClusterRoleBinding({ name: RESPONDER }).then(() => undefined));
  await bindUserInNamespace(kc, tenantNs, 'responder-admin', 'admin', RESPONDER);
  await core.createNamespacedPod({ namespace: tenantNs, body: busyboxPod('web', 'exec sleep 3600') });
  await core.createNamespacedPod({ namespace: otherNs, body: busyboxPod('web', 'exec sleep 3600') });
  tenantPod = await waitForPodReady(kc, tenantNs, 'web', 90_000);
  otherPod = await waitForPodReady(kc, otherNs, 'web', 90_000);
  // RBAC for the new bindings is effective once the authorizer's cache has them.
  await waitFor(`${TENANT} may create investigations in ${tenantNs}`, () => canI(TENANT, 'create', 'investigations.casefile.dev', tenantNs), { timeoutMs: 30_000, intervalMs: 500, until: (a) => a === 'yes' });
}, 300_000);

describe('a namespace admin (impersonated) asks casefile for more than it may do itself', () => {
  it('opens a plain Investigation in its own namespace, and the case is sealed', async () => {
    const r = await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], investigation('plain', { target: { pod: 'web' } }));
    expect(r).toMatchObject({ exitCode: 0 });
    // Ready is written after the seal's own condition, in the reconcile's last status write.
    const inv = await waitForCondition(tenantNs, 'plain', 'Ready', 'True', TIMEOUT);
    expect(conditionOf(inv, 'EvidenceSealed')?.status).toBe('True');
  }, TIMEOUT);

  it.each([
    ['the hostPID node collector', { evidence: { node: { enabled: true } } }, 'spec.evidence.node.enabled', 'nodeactions/node-collector'],
    ['a cordon of its node', { containment: { cordonNode: true } }, 'spec.containment.cordonNode', 'nodeactions/cordon'],
    ['cluster RBAC narrowing', { containment: { rbac: { narrow: true } } }, 'spec.containment.rbac.narrow', 'nodeactions/rbac-narrowing'],
  ])('cannot ask for %s: admission refuses with a message naming the grant', async (_what, extra, field, grant) => {
    const name = `node-${randomBytes(2).toString('hex')}`;
    const r = await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], investigation(name, { target: { pod: 'web' }, ...extra }));
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('casefile-node-actions');
    expect(r.stderr).toContain(field.replace(/^spec\./, ''));
    expect(r.stderr).toContain(grant);
    expect(r.stderr).toContain('casefile-node-responder');
    expect((await investigations(tenantNs)).map((i) => i.metadata.name)).not.toContain(name);
  });

  it('cannot turn a node-level action on in an Investigation it may edit; a granted responder can', async () => {
    const name = `edit-${randomBytes(2).toString('hex')}`;
    expect(await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], investigation(name, { target: { pod: 'web' }, alert: { source: 'manual' } }))).toMatchObject({ exitCode: 0 });
    // spec.evidence, not spec.containment: once containment has acted the CRD freezes spec.containment for
    // everyone (release-record suite), so that edit would be refused before this policy is asked.
    const patch = JSON.stringify({ spec: { evidence: { node: { enabled: true } } } });
    const refused = await as(TENANT, ['-n', tenantNs, 'patch', 'investigation', name, '--type=merge', '-p', patch, '--dry-run=server']);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain('nodeactions/node-collector');
    const granted = await as(RESPONDER, ['-n', tenantNs, 'patch', 'investigation', name, '--type=merge', '-p', patch, '--dry-run=server']);
    expect(granted).toMatchObject({ exitCode: 0 });
    // Editing something else needs no grant, even on a case a responder opened with node actions.
    expect(await as(RESPONDER, ['-n', tenantNs, 'create', '-f', '-', '--dry-run=server'], investigation('responder-case', { target: { pod: 'web' }, evidence: { node: { enabled: true } }, containment: { cordonNode: true } }))).toMatchObject({ exitCode: 0 });
  });

  it('no spec makes casefile run another image: refused for the tenant and for cluster-admin alike, naming the setting', async () => {
    const body = investigation('own-image', { target: { pod: 'web' }, evidence: { live: { enabled: true, image: 'docker.io/library/alpine:3' } } });
    const asTenant = await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], body);
    const asClusterAdmin = await kubectlRun(['-n', tenantNs, 'create', '-f', '-'], JSON.stringify(body));
    for (const r of [asTenant, asClusterAdmin]) {
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain('spec.evidence.live.image');
      expect(r.stderr).toContain('ConfigMap casefile-system/casefile-containers');
    }
    const policy = await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'ResponsePolicy', metadata: { name: 'own-image' },
      spec: { investigation: { evidence: { live: { enabled: true, image: 'docker.io/library/alpine:3' } } } },
    });
    expect(policy.exitCode).not.toBe(0);
    expect(policy.stderr).toContain('ConfigMap casefile-system/casefile-containers');
  });

  it('cannot write a ResponsePolicy that asks for node-level actions, nor any ClusterResponsePolicy', async () => {
    const r = await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'ResponsePolicy', metadata: { name: 'cordoner' },
      spec: { investigation: { containment: { cordonNode: true } } },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('a namespaced ResponsePolicy cannot ask for node-level actions');
    expect(await canI(TENANT, 'create', 'clusterresponsepolicies.casefile.dev')).toBe('no');
    expect(await canI(TENANT, 'use', 'nodeactions.casefile.dev/cordon')).toBe('no');
    expect(await canI(TENANT, 'create', 'responsepolicies.casefile.dev', tenantNs)).toBe('yes');
  });
});

describe('ResponsePolicy scope: a policy in one namespace does not act on another', () => {
  beforeAll(async () => {
    await core.createNamespacedSecret({ namespace: OPERATOR_NAMESPACE, body: { metadata: { name: 'casefile-intake-token' }, stringData: { token: TOKEN } } }).catch(async () => {
      await core.replaceNamespacedSecret({ name: 'casefile-intake-token', namespace: OPERATOR_NAMESPACE, body: { metadata: { name: 'casefile-intake-token' }, stringData: { token: TOKEN } } });
    });
    registerCleanup('intake off, its token removed', async () => {
      await deployOperatorWithout(INTAKE_ENV.map((kv) => kv.split('=')[0]!), 180_000);
      await core.deleteNamespacedSecret({ name: 'casefile-intake-token', namespace: OPERATOR_NAMESPACE }).catch(() => undefined);
    });
    await deployOperatorWithEnv(INTAKE_ENV, 180_000);
    const svc = await core.readNamespacedService({ name: 'casefile-intake', namespace: OPERATOR_NAMESPACE });
    intakeUrl = `http://${svc.spec!.clusterIP}:8443/`;
    await waitFor('intake to answer as the leader', () => post({}).then((r) => r.status).catch(() => 0), { timeoutMs: 120_000, intervalMs: 1000, until: (s) => s === 400 });
  }, 400_000);

  it('the tenant\'s policy naming the other namespace is unmatched there; a ClusterResponsePolicy reaches it', async () => {
    expect(await as(TENANT, ['-n', tenantNs, 'create', '-f', '-'], {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'ResponsePolicy', metadata: { name: 'reach-out' },
      spec: { match: { namespaces: [otherNs] }, investigation: { containment: { network: { isolate: true } } } },
    })).toMatchObject({ exitCode: 0 });
    await new Promise((r) => setTimeout(r, 2000)); // the policy reaches the operator's informer
    const out = await post(alertAbout(otherPod));
    expect(out).toMatchObject({ status: 202, body: { status: 'unmatched' } });
    expect(await investigations(otherNs)).toEqual([]);
    expect((await core.readNamespacedPod({ name: 'web', namespace: otherNs })).metadata?.labels ?? {}).toEqual({ app: 'web' });

    // The same policy in its own namespace does act (the tenant's own pods are its business).
    const own = await as(TENANT, ['-n', tenantNs, 'patch', 'responsepolicy', 'reach-out', '--type=merge', '-p', JSON.stringify({ spec: { match: { namespaces: [] }, dryRun: true } })]);
    expect(own).toMatchObject({ exitCode: 0 });
    await waitFor('the tenant policy to match its own pod (dry run)', () => post(alertAbout(tenantPod)), { timeoutMs: 30_000, intervalMs: 1000, until: (r) => r.body.status === 'dry_run' });

    // A platform team's ClusterResponsePolicy spans namespaces (dry run: nothing is opened).
    const cluster = `casefile-e2e-${id}`;
    await custom.createClusterCustomObject({
      group: GROUP, version: VERSION, plural: 'clusterresponsepolicies',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'ClusterResponsePolicy', metadata: { name: cluster }, spec: { match: { namespaces: [otherNs] }, dryRun: true } },
    });
    registerCleanup(`delete ClusterResponsePolicy ${cluster}`, () => custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clusterresponsepolicies', name: cluster }).then(() => undefined));
    const reached = await waitFor('the ClusterResponsePolicy to match in the other namespace', () => post(alertAbout(otherPod)), { timeoutMs: 30_000, intervalMs: 1000, until: (r) => r.body.status === 'dry_run' });
    expect(reached.body.policies).toEqual([`/${cluster}`]);
    expect(await investigations(otherNs)).toEqual([]);
  }, TIMEOUT);
});

describe('the operator\'s own ServiceAccount (impersonated) is narrowed by admission and RBAC', () => {
  const probe = (name: string, image: string, spec: Record<string, unknown> = {}) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: 'probe', image, imagePullPolicy: 'Never', command: ['sleep', '1'], securityContext: { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } } }],
      ...spec,
    },
  });
  const create = (namespace: string, pod: unknown) => as(OPERATOR_SA, ['-n', namespace, 'create', '-f', '-', '--dry-run=server'], pod);

  it('may create a probe pod with the configured image (the control)', async () => {
    expect(await create(tenantNs, probe('control', configuredImage))).toMatchObject({ exitCode: 0 });
  });

  it('cannot create a pod with any other image', async () => {
    const r = await create(tenantNs, probe('other-image', process.env.CASEFILE_BUSYBOX_IMAGE ?? 'localhost/casefile/busybox:1.35.0'));
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('casefile-operator-pods');
    expect(r.stderr).toContain('may run only the images of ConfigMap casefile-system/casefile-containers');
  });

  it.each([
    ['hostPID', { hostPID: true }],
    ['a hostPath volume', { volumes: [{ name: 'root', hostPath: { path: '/' } }] }],
  ])('cannot create a pod with %s in kube-system, even with the configured image', async (_what, spec) => {
    const r = await create('kube-system', probe('host', configuredImage, spec));
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('may not create a pod with host namespaces or hostPath volumes outside the collector namespace');
  });

  it('cannot add an ephemeral container with another image to a pod', async () => {
    // What casefile's debug container does (a strategic-merge PATCH of pods/<name>/ephemeralcontainers,
    // the only verb it holds there), with another image; dry run, so nothing stays on the pod.
    const path = `/api/v1/namespaces/${tenantNs}/pods/web/ephemeralcontainers?dryRun=All`;
    const intruder = { name: 'intruder', image: 'localhost/casefile/busybox:1.35.0', command: ['sleep', '1'] };
    const r = await patchAs(OPERATOR_SA, path, { spec: { ephemeralContainers: [intruder] } });
    // 403 from admission (reason Forbidden), told apart from an RBAC 403 by the policy's message.
    expect(r.status).toBe(403);
    expect(r.text).toContain('casefile-operator-pods');
    expect(r.text).toContain('ephemeral containers');
    expect(r.text).toContain('may run only the images of ConfigMap casefile-system/casefile-containers');
    // The control: the configured image is admitted.
    const control = { name: 'casefile-debug-control', image: configuredImage, command: ['sleep', '1'], securityContext: { capabilities: { drop: ['ALL'], add: ['SYS_PTRACE'] } } };
    expect(await patchAs(OPERATOR_SA, path, { spec: { ephemeralContainers: [control] } })).toMatchObject({ status: 200 });
  });

  it('holds no create on ClusterRoleBindings, no escalate, no delete on bindings', async () => {
    expect(await canI(OPERATOR_SA, 'create', 'clusterrolebindings')).toBe('no');
    expect(await canI(OPERATOR_SA, 'create', 'rolebindings', 'kube-system')).toBe('no');
    expect(await canI(OPERATOR_SA, 'escalate', 'clusterroles')).toBe('no');
    expect(await canI(OPERATOR_SA, 'escalate', 'roles', 'kube-system')).toBe('no');
    expect(await canI(OPERATOR_SA, 'delete', 'clusterrolebindings')).toBe('no');
    expect(await canI(OPERATOR_SA, 'create', 'secrets', 'kube-system')).toBe('no');
    expect(await canI(OPERATOR_SA, 'get', 'secrets', 'kube-system')).toBe('no');
    // What the optional components add (all installed here): exactly these.
    expect(await canI(OPERATOR_SA, 'patch', 'nodes')).toBe('yes');
    expect(await canI(OPERATOR_SA, 'update', 'clusterrolebindings')).toBe('yes');
  });
});

describe('node-level work needs the admission gate in place', () => {
  it('without the casefile-node-actions binding, the operator refuses the node collector with a terminal reason', async () => {
    const del = await kubectlRun(['delete', 'validatingadmissionpolicybinding', 'casefile-node-actions']);
    expect(del).toMatchObject({ exitCode: 0 });
    registerCleanup('reinstall the node-actions admission binding', () => deployOperator([], 180_000));
    try {
      const name = `ungated-${randomBytes(2).toString('hex')}`;
      expect(await kubectlRun(['-n', tenantNs, 'create', '-f', '-'], JSON.stringify(investigation(name, { target: { pod: 'web' }, evidence: { node: { enabled: true } } })))).toMatchObject({ exitCode: 0 });
      const inv = await waitForCondition(tenantNs, name, 'NodeStateCaptured', 'False', TIMEOUT);
      expect(conditionOf(inv, 'NodeStateCaptured')).toMatchObject({ reason: 'NodeActionsNotAdmitted' });
      expect(conditionOf(inv, 'NodeStateCaptured')!.message).toContain('--no-require-node-actions-admission');
      expect(inv.status?.live?.nodeCollector).toBeUndefined();
    } finally {
      await deployOperator([], 180_000);
    }
  }, TIMEOUT);
});
