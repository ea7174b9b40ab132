// A Falco-like sender for the intake benchmarks: deploys the operator with intake on (bearer token,
// plain HTTP inside the cluster network), posts alerts over keep-alive connections, and makes
// ResponsePolicies.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { custom, G, kubectl, sleep } from './support.js';

const TOKEN = randomBytes(24).toString('hex');
const INTAKE_ENV = ['CASEFILE_INTAKE_PORT=8443', 'CASEFILE_INTAKE_NAMESPACE_RATE=200', 'CASEFILE_INTAKE_NAMESPACE_BURST=200', 'CASEFILE_INTAKE_POLICY_RATE=200', 'CASEFILE_INTAKE_POLICY_BURST=200'];
export const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let intakeURL = '';

export function post(url: string, body: string, token = TOKEN, via: http.Agent | false = agent): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: via, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text.startsWith('{') ? JSON.parse(text) : {}, ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const postAlert = (body: string) => post(intakeURL, body);

/**
 * `post` on a connection of its own, closed after the answer: for waiting on a new Service. Until
 * kube-proxy has programmed its address, a connection to it leaves the node untranslated and whatever
 * answers there (a 404 from this machine's network) keeps it alive: a pooled one would be reused, and
 * answered from there, for good.
 */
export const probe = (url: string, body: string): Promise<{ status: number }> => post(url, body, TOKEN, false).catch(() => ({ status: 0 }));

export function alert(namespace: string, pod: string, rule: string, containerId?: string): string {
  return JSON.stringify({
    rule, priority: 'Critical', time: new Date().toISOString(), source: 'syscall', hostname: 'node', tags: ['container'],
    output: `${rule} (k8s_pod=${pod})`,
    output_fields: { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.name': 'app', 'container.id': containerId ?? null, 'proc.name': 'sh' },
  });
}

/** (Re)deploys the operator with intake on, plus `env`; returns once intake answers. */
export async function deployWithIntake(env: string[] = []): Promise<void> {
  // On a new cluster the namespace comes first (deploy.sh makes it the same way).
  execFileSync('bash', ['-c', `{ kubectl get namespace casefile-system >/dev/null 2>&1 || kubectl create namespace casefile-system >/dev/null; } &&
    kubectl -n casefile-system create secret generic casefile-intake-token --from-literal=token="$1" --dry-run=client -o yaml | kubectl apply -f -`, 'sh', TOKEN]);
  execFileSync('bash', ['scripts/deploy.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
  kubectl('-n', 'casefile-system', 'set', 'env', 'deployment/casefile-operator', '-c', 'operator', ...INTAKE_ENV, ...env);
  kubectl('-n', 'casefile-system', 'rollout', 'status', 'deployment/casefile-operator', '--timeout=180s');
  const ip = kubectl('-n', 'casefile-system', 'get', 'svc', 'casefile-intake', '-o', 'jsonpath={.spec.clusterIP}').trim();
  intakeURL = `http://${ip}:8443/`;
  for (let i = 0; ; i++) {
    const r = await probe(intakeURL, '{}');
    if (r.status === 400) return;
    if (i > 120) throw new Error(`intake not ready (last status ${r.status})`);
    await sleep(1000);
  }
}

export async function responsePolicy(namespace: string, name: string, rule: string, investigation: Record<string, unknown>): Promise<void> {
  await custom.createNamespacedCustomObject({
    ...G, namespace, plural: 'responsepolicies',
    body: { apiVersion: 'casefile.dev/v1alpha1', kind: 'ResponsePolicy', metadata: { name }, spec: { match: { rules: [rule], namespaces: [namespace] }, investigation } },
  });
}
