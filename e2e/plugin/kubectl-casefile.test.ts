// The kubectl plugin as a responder runs it: `kubectl casefile ...`, found by kubectl on the PATH that
// e2e/cluster/env prints, with kubectl's own flags (-n, --as). It opens a case and follows it to the
// seal, contains and releases, lists and summarises, and a user without rights gets kubectl's refusal.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NetworkingV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { createTestNamespace, kubeFromEnv, registerCleanup, runCleanups, waitForPodReady } from '../support/cluster.js';
import { busyboxPod, core, deployOperator, getInvestigation, run } from '../operator/support.js';

const kc = kubeFromEnv();
const networking = kc.makeApiClient(NetworkingV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const plugin = (args: string[]) => run('kubectl', ['casefile', ...args], { timeoutMs: 300_000 });

afterAll(runCleanups, 300_000);

let ns: string;
beforeAll(async () => {
  await deployOperator([], 180_000);
  ns = await createTestNamespace('plugin');
  await core.createNamespacedPod({ namespace: ns, body: busyboxPod('web', 'exec sleep 3600') });
  await waitForPodReady(kc, ns, 'web', 90_000);
}, 300_000);

describe('kubectl casefile', () => {
  it('is a kubectl plugin on the PATH', async () => {
    const r = await run('kubectl', ['plugin', 'list']);
    expect(r.stdout).toContain('kubectl-casefile');
  });

  it('open --wait follows every phase to the seal and exits 0; get and status read the case', async () => {
    const opened = await plugin(['open', 'web', '--name', 'by-plugin', '--wait', '-n', ns]);
    expect({ exitCode: opened.exitCode, stderr: opened.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(opened.stdout).toContain('investigation.casefile.dev/by-plugin created');
    expect(opened.stdout).toMatch(/TargetResolved: done \(Resolved\)/);
    expect(opened.stdout).toMatch(/EvidenceSealed: done/);
    expect(opened.stdout).toMatch(/by-plugin: Completed \(CaseSealed/);
    const inv = await getInvestigation(ns, 'by-plugin');
    expect(inv.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    const list = await plugin(['get', '-n', ns]);
    expect(list.stdout.split('\n')[1]!.split(/\s+/).slice(0, 5)).toEqual(['by-plugin', 'Completed', 'web', 'True', 'CaseSealed']);
    const status = await plugin(['status', 'by-plugin', '-n', ns]);
    expect(status.stdout).toContain(`Investigation ${ns}/by-plugin: Completed`);
    expect(status.stdout).toContain(`case file  ${inv.status!.evidence!.path}`);
  }, 300_000);

  it('open --contain isolates; release --wait gives the pod back and exits 0', async () => {
    const opened = await plugin(['open', 'web', '--name', 'contained', '--contain', '--wait', '-n', ns]);
    expect(opened.exitCode).toBe(0);
    const inv = await getInvestigation(ns, 'contained');
    const policy = inv.status!.containment!.networkPolicy!;
    expect((await networking.readNamespacedNetworkPolicy({ name: policy, namespace: ns })).metadata?.name).toBe(policy);
    const released = await plugin(['release', 'contained', '--wait', '-n', ns]);
    expect({ exitCode: released.exitCode, stderr: released.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(released.stdout).toMatch(/contained: Released True \(Released: .*NetworkPolicy casefile-[0-9a-f]{8} gone/);
    // Only what changed after the request is printed, not the whole case again.
    expect(released.stdout).not.toContain('TargetResolved: done');
    const policies = (await networking.listNamespacedNetworkPolicy({ namespace: ns })).items.map((p) => p.metadata?.name);
    expect(policies).not.toContain(policy);
  }, 300_000);

  it('acts with the user\'s own rights (--as): a user without them gets kubectl\'s refusal, a namespace admin cannot ask for the node collector', async () => {
    const stranger = await plugin(['open', 'web', '-n', ns, '--as', 'casefile-e2e-stranger']);
    expect(stranger.exitCode).toBe(2);
    expect(stranger.stderr).toMatch(/forbidden/i);

    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'plugin-admin' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'casefile-e2e-plugin-admin' }],
      },
    });
    registerCleanup('delete the plugin admin binding', () => rbac.deleteNamespacedRoleBinding({ name: 'plugin-admin', namespace: ns }).then(() => undefined));
    const asAdmin = ['-n', ns, '--as', 'casefile-e2e-plugin-admin', '--as-group', 'system:authenticated'];
    let node = await plugin(['open', 'web', '--node', ...asAdmin]);
    // The binding takes a moment to reach the authorizer: retry while the refusal is RBAC's, not admission's.
    for (let i = 0; i < 20 && /cannot create resource/.test(node.stderr); i++) {
      await new Promise((r) => setTimeout(r, 500));
      node = await plugin(['open', 'web', '--node', ...asAdmin]);
    }
    expect(node.exitCode).toBe(2);
    expect(node.stderr).toContain('casefile-node-responder');
  }, 120_000);
});
