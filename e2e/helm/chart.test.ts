// The Helm chart (charts/casefile): it lints, renders exactly what config/ renders for the same choices,
// refuses a namespace it cannot work in, and `helm install` on the local cluster runs a case. helm is
// the one e2e/cluster/up built (HELM_VERSION in versions.env), on the PATH from e2e/cluster/env.
// The install adopts the objects an earlier suite applied with scripts/deploy.sh (Helm's documented
// way: its ownership annotations and label), and `helm uninstall` keeps the evidence volume; later
// suites redeploy with deploy.sh, which needs nothing from Helm.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { createTestNamespace, registerCleanup, runCleanups, waitForPodReady, kubeFromEnv } from '../support/cluster.js';
import {
  busyboxPod,
  caseDirOf,
  conditionOf,
  core,
  createInvestigation,
  deployOperator,
  ensureEvidenceReader,
  EVIDENCE_PVC,
  kubectlRun,
  listCaseFiles,
  OPERATOR_NAMESPACE,
  REPO_ROOT,
  run,
  waitForCondition,
} from '../operator/support.js';

const kc = kubeFromEnv();
const CHART = 'charts/casefile';
const RELEASE = 'casefile';
const ALL_FEATURES = ['--set', 'features.nodeCollector=true', '--set', 'features.cordon=true', '--set', 'features.rbacNarrowing=true', '--set', 'caseApi.enabled=true', '--set', 'audit.enabled=true', '--set', 'prober.enabled=true'];

afterAll(runCleanups, 300_000);

/** helm, with its note about the chart's symlinks to crds/ and config/ (one source with kustomize) taken out of stderr. */
async function helm(args: string[], timeoutMs = 60_000) {
  const r = await run('helm', args, { cwd: REPO_ROOT, timeoutMs });
  return { ...r, stderr: r.stderr.split('\n').filter((l) => !l.includes('found symbolic link in path')).join('\n').trim() };
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  [key: string]: unknown;
}

function parseObjects(yamlText: string): K8sObject[] {
  // YAML 1.1, as the API server reads manifests (sigs.k8s.io/yaml): `defaultMode: 0440` is octal.
  return parseAllDocuments(yamlText, { version: '1.1' })
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

const idOf = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** Objects keyed by kind/namespace/name, without Helm's own resource-policy annotation. */
function byId(objects: K8sObject[]): Record<string, K8sObject> {
  const out: Record<string, K8sObject> = {};
  for (const o of objects) {
    const copy = structuredClone(o);
    const annotations = copy.metadata.annotations;
    if (annotations) {
      delete annotations['helm.sh/resource-policy'];
      if (Object.keys(annotations).length === 0) delete copy.metadata.annotations;
    }
    expect(out[idOf(copy)]).toBeUndefined();
    out[idOf(copy)] = copy;
  }
  return out;
}

async function rendered(extra: string[] = []): Promise<K8sObject[]> {
  const r = await helm(['template', RELEASE, CHART, '-n', OPERATOR_NAMESPACE, '--include-crds', ...extra]);
  expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
  return parseObjects(r.stdout);
}

async function kustomized(dir: string): Promise<K8sObject[]> {
  const r = await kubectlRun(['kustomize', dir]);
  expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
  // The release namespace is Helm's (created and labelled before install), not a chart object.
  return parseObjects(r.stdout).filter((o) => !(o.kind === 'Namespace' && o.metadata.name === OPERATOR_NAMESPACE));
}

describe('the chart as a file', () => {
  it('passes helm lint, with defaults and with every option on', async () => {
    const defaults = await helm(['lint', CHART, '--strict', '-n', OPERATOR_NAMESPACE]);
    expect({ exitCode: defaults.exitCode, out: defaults.stdout }).toMatchObject({ exitCode: 0 });
    const everything = await helm([
      'lint', CHART, '--strict', '-n', OPERATOR_NAMESPACE, ...ALL_FEATURES,
      '--set', 'intake.enabled=true', '--set', 'intake.token=t0ken', '--set', 'intake.tls.enabled=true', '--set', 'intake.tls.clientCA=true',
      '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true', '--set', 'evidence.storageClass=fast',
    ]);
    expect({ exitCode: everything.exitCode, out: everything.stdout }).toMatchObject({ exitCode: 0 });
  });

  it.each([
    ['defaults', 'config/default', [] as string[]],
    ['every optional feature', 'config/all-features', ALL_FEATURES],
  ])('renders the same objects as config/ (%s)', async (_what, dir, extra) => {
    const [fromHelm, fromKustomize] = await Promise.all([rendered(extra), kustomized(dir)]);
    const h = byId(fromHelm);
    const k = byId(fromKustomize);
    expect(Object.keys(h).sort()).toEqual(Object.keys(k).sort());
    for (const id of Object.keys(k)) expect({ id, object: h[id] }).toEqual({ id, object: k[id] });
    // Helm alone marks the evidence volume to outlive the release.
    expect(fromHelm.find((o) => o.kind === 'PersistentVolumeClaim')?.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
  });

  it('grants each optional feature only with its value, and writes debugImage where casefile\'s image is named', async () => {
    const images = (objects: K8sObject[]) =>
      JSON.stringify(objects.filter((o) => o.metadata.name === 'casefile-operator-pods' || o.metadata.name === 'casefile-containers'));
    const pinned = 'registry.example/casefile-debug@sha256:' + 'a'.repeat(64);
    const withPinned = images(await rendered(['--set', `debugImage=${pinned}`]));
    // The ConfigMap and the admission policy carry the one image, and nothing else does.
    expect(withPinned.split(pinned).length - 1).toBe(2);
    expect(withPinned).not.toContain('localhost/casefile/debug-tools');
    const roles = (objects: K8sObject[]) => objects.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name).sort();
    const base = roles(await rendered());
    expect(base).not.toContain('casefile-operator-cordon');
    expect(roles(await rendered(['--set', 'features.cordon=true']))).toEqual([...base, 'casefile-operator-cordon'].sort());
  });

  it('renders the intake, TLS and monitoring options it offers', async () => {
    const objects = await rendered([
      '--set', 'intake.enabled=true', '--set', 'intake.token=t0ken', '--set', 'intake.tls.enabled=true', '--set', 'intake.tls.clientCA=true',
      '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true',
    ]);
    const deployment = objects.find((o) => o.kind === 'Deployment') as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } } & K8sObject;
    const env = Object.fromEntries(deployment.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      CASEFILE_INTAKE_PORT: '8443',
      CASEFILE_INTAKE_TLS_CERT: '/var/run/casefile/intake-tls/tls.crt',
      CASEFILE_INTAKE_TLS_KEY: '/var/run/casefile/intake-tls/tls.key',
      CASEFILE_INTAKE_CLIENT_CA: '/var/run/casefile/intake-tls/ca.crt',
    });
    expect(objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'casefile-intake-token')).toMatchObject({ stringData: { token: 't0ken' } });
    const rule = objects.find((o) => o.kind === 'PrometheusRule') as K8sObject & { spec: { groups: { rules: { alert: string }[] }[] } };
    expect(rule.spec.groups[0]!.rules.map((r) => r.alert)).toEqual([
      'CasefileInvestigationFailed', 'CasefileInvestigationStuck', 'CasefileIntakeRefusing', 'CasefileEvidenceVolumeNearlyFull',
    ]);
    expect(objects.filter((o) => o.kind === 'ServiceMonitor').map(idOf)).toEqual(['ServiceMonitor/casefile-system/casefile']);
  });

  it('refuses what cannot work, saying what to do', async () => {
    const elsewhere = await helm(['template', RELEASE, CHART, '-n', 'security']);
    expect(elsewhere.exitCode).not.toBe(0);
    expect(elsewhere.stderr).toContain('casefile installs only into namespace casefile-system');
    const mtlsWithoutTls = await helm(['template', RELEASE, CHART, '-n', OPERATOR_NAMESPACE, '--set', 'intake.tls.clientCA=true']);
    expect(mtlsWithoutTls.exitCode).not.toBe(0);
    expect(mtlsWithoutTls.stderr).toContain('intake.tls.clientCA (mutual TLS) needs intake.tls.enabled');
    const typo = await helm(['template', RELEASE, CHART, '-n', OPERATOR_NAMESPACE, '--set', 'features.cordn=true']);
    expect(typo.exitCode).not.toBe(0);
    expect(typo.stderr).toContain('cordn');
  });
});

describe('helm install on the local cluster', () => {
  beforeAll(async () => {
    // Start from an operator deploy.sh applied (what every other suite runs), then hand it to Helm.
    await deployOperator([], 180_000);
    // The pod that reads case files off the evidence volume (listCaseFiles); it outlives the release.
    await ensureEvidenceReader();
  }, 360_000);

  it('adopts the existing install, runs a case, and keeps the evidence volume on uninstall', async () => {
    const values = [
      '--set', `image.repository=${process.env.CASEFILE_OPERATOR_IMAGE!.replace(/:[^:/]+$/, '')}`,
      '--set', `image.tag=${process.env.CASEFILE_OPERATOR_IMAGE!.replace(/^.*:/, '')}`,
      '--set', 'image.pullPolicy=Never',
      '--set', `debugImage=${process.env.CASEFILE_DEBUG_IMAGE_PINNED ?? process.env.CASEFILE_DEBUG_IMAGE!}`,
      '--set-json', `extraEnv=${JSON.stringify(['CASEFILE_CLUSTER_CIDRS', 'CASEFILE_RUNTIME_ROOT', 'CASEFILE_RUNTIME_STATE'].map((name) => ({ name, value: process.env[name]! })))}`,
      ...ALL_FEATURES,
    ];
    // Helm installs only over objects that carry its ownership marks: add them to what exists.
    for (const o of await rendered(values)) {
      if (o.kind === 'CustomResourceDefinition') continue;
      const ref = [`${o.kind.toLowerCase()}.${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}`.replace(/\.$/, ''), o.metadata.name, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : [])];
      if ((await kubectlRun(['get', ...ref])).exitCode !== 0) continue;
      expect(await kubectlRun(['annotate', '--overwrite', ...ref, `meta.helm.sh/release-name=${RELEASE}`, `meta.helm.sh/release-namespace=${OPERATOR_NAMESPACE}`])).toMatchObject({ exitCode: 0 });
      expect(await kubectlRun(['label', '--overwrite', ...ref, 'app.kubernetes.io/managed-by=Helm'])).toMatchObject({ exitCode: 0 });
    }
    registerCleanup('redeploy the operator with deploy.sh', () => deployOperator([], 180_000));
    registerCleanup('helm uninstall', async () => {
      if ((await helm(['status', RELEASE, '-n', OPERATOR_NAMESPACE])).exitCode === 0) {
        const r = await helm(['uninstall', RELEASE, '-n', OPERATOR_NAMESPACE, '--wait', '--timeout', '180s'], 240_000);
        if (r.exitCode !== 0) throw new Error(`helm uninstall: ${r.stderr}`);
      }
    });
    // Helm 4 applies server-side: taking fields over from kubectl's field manager needs --force-conflicts.
    const installed = await helm(['install', RELEASE, CHART, '-n', OPERATOR_NAMESPACE, ...values, '--force-conflicts', '--wait', '--timeout', '180s'], 240_000);
    expect(installed.exitCode === 0 ? 'installed' : installed.stderr).toBe('installed');
    const list = JSON.parse((await helm(['list', '-n', OPERATOR_NAMESPACE, '-o', 'json'])).stdout) as { name: string; status: string }[];
    expect(list.find((r) => r.name === RELEASE)?.status).toBe('deployed');
    const deployment = JSON.parse((await kubectlRun(['-n', OPERATOR_NAMESPACE, 'get', 'deployment', 'casefile-operator', '-o', 'json'])).stdout) as {
      metadata: { annotations: Record<string, string> };
    };
    expect(deployment.metadata.annotations['meta.helm.sh/release-name']).toBe(RELEASE);

    // A case through the Helm-installed operator, to its sealed case file.
    const ns = await createTestNamespace('helm-case');
    await core.createNamespacedPod({ namespace: ns, body: busyboxPod('web', 'exec sleep 3600') });
    await waitForPodReady(kc, ns, 'web', 90_000);
    await createInvestigation(ns, 'via-helm', { target: { pod: 'web' }, alert: { source: 'manual' } });
    const inv = await waitForCondition(ns, 'via-helm', 'Ready', 'True', 180_000);
    expect(conditionOf(inv, 'EvidenceSealed')?.status).toBe('True');
    const files = await listCaseFiles(caseDirOf(inv));
    expect(files).toEqual(expect.arrayContaining(['MANIFEST.sha256', 'custody.jsonl', 'k8s/pod.yaml', 'report.md']));

    // Deleting the case while the Helm-installed operator runs: it finalizes it (evidence kept).
    expect(await kubectlRun(['-n', ns, 'delete', 'investigation', 'via-helm', '--timeout=120s'])).toMatchObject({ exitCode: 0 });

    // Uninstall: the operator goes, the evidence volume stays (helm.sh/resource-policy: keep).
    const removed = await helm(['uninstall', RELEASE, '-n', OPERATOR_NAMESPACE, '--wait', '--timeout', '180s'], 240_000);
    expect(removed.exitCode === 0 ? 'uninstalled' : removed.stderr).toBe('uninstalled');
    expect((await kubectlRun(['-n', OPERATOR_NAMESPACE, 'get', 'deployment', 'casefile-operator'])).exitCode).not.toBe(0);
    expect((await kubectlRun(['-n', OPERATOR_NAMESPACE, 'get', 'pvc', EVIDENCE_PVC])).exitCode).toBe(0);
  }, 900_000);
});
