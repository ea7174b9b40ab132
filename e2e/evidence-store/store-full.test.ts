// A full evidence volume, for real: a second operator instance (a shard, selected by the
// casefile.dev/shard label) writes to a PVC bound to a 1 MiB tmpfs volume, and is asked to capture
// 3 MiB of logs. The phase must turn False with EvidenceStoreFull and the case must not be sealed.
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { createTestNamespace, images, kubeFromEnv, kubectl, podExec, registerCleanup, useCleanup, waitFor, waitForPodReady } from '../support/cluster.js';
import { busyboxPod } from '../support/pods.js';
import { deployOperator } from '../operator/support.js';

const SHARD = 'tiny';
const kc = kubeFromEnv();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

interface Inv {
  metadata: { uid: string };
  status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
}

async function hasTinyStorageClass(): Promise<boolean> {
  const { stdout } = await kubectl(['get', 'storageclass', '-o', 'name']);
  return stdout.split('\n').includes('storageclass.storage.k8s.io/casefile-tiny');
}

function shardManifest(ns: string): string {
  // The shard reuses the operator's ClusterRole; its Lease and evidence volume are its own.
  return `
apiVersion: v1
kind: ServiceAccount
metadata: { name: casefile-operator, namespace: ${ns} }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: casefile-operator-${ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: casefile-operator }
subjects: [{ kind: ServiceAccount, name: casefile-operator, namespace: ${ns} }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: leases, namespace: ${ns} }
rules: [{ apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: leases, namespace: ${ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases }
subjects: [{ kind: ServiceAccount, name: casefile-operator, namespace: ${ns} }]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: evidence, namespace: ${ns} }
spec: { accessModes: [ReadWriteOnce], storageClassName: casefile-tiny, resources: { requests: { storage: 1Mi } } }
---
apiVersion: v1
kind: Pod
metadata: { name: shard-operator, namespace: ${ns} }
spec:
  serviceAccountName: casefile-operator
  terminationGracePeriodSeconds: 0
  securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: operator
      image: ${images.operator}
      imagePullPolicy: Never
      args: [operator, --evidence-dir=/evidence, --lease-namespace=${ns}, --lease-name=casefile-shard, --selector=casefile.dev/shard=${SHARD}]
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
      volumeMounts: [{ name: evidence, mountPath: /evidence }]
  volumes: [{ name: evidence, persistentVolumeClaim: { claimName: evidence } }]
`;
}

// Decided before the tests are declared, so a cluster without the class (kind) shows the test as
// skipped, with the reason in its name, instead of passing it.
const tinyStorageClass = await hasTinyStorageClass();
const testIfTiny = tinyStorageClass
  ? test
  : (name: string, fn: () => Promise<void>, timeout?: number) =>
      test.skip(`${name} [SKIPPED: this cluster has no casefile-tiny StorageClass; e2e/cluster/up makes a 1 MiB tmpfs one]`, fn, timeout);

describe('evidence store', () => {
  useCleanup();
  // The CRD, the ClusterRole the shard reuses, and the cluster-wide operator whose selector skips shards.
  beforeAll(() => deployOperator(), 300_000);

  testIfTiny('a volume that fills up turns the phase False (EvidenceStoreFull) and the case is not sealed', async () => {
    const ns = await createTestNamespace('store-full');
    await kubectl(['apply', '-f', '-'], { input: shardManifest(ns) });
    // Runs before the namespace goes (cleanups are LIFO): the shard must finalize its Investigation
    // while it still runs, and its cluster-scoped binding is not part of the namespace.
    registerCleanup('delete the shard ClusterRoleBinding', async () => {
      await kubectl(['delete', 'clusterrolebinding', `casefile-operator-${ns}`, '--ignore-not-found']);
    });
    registerCleanup('finalize the Investigation while the shard runs', async () => {
      await kubectl(['-n', ns, 'delete', 'investigation', 'full', '--ignore-not-found', '--timeout=60s']);
    });
    await waitForPodReady(kc, ns, 'shard-operator', 90_000);

    // 3 MiB of logs for a 1 MiB volume.
    await core.createNamespacedPod({
      namespace: ns,
      body: busyboxPod('chatty', "yes 'a line of application log that fills the evidence volume' | head -c 3145728; exec sleep 100000"),
    });
    await waitForPodReady(kc, ns, 'chatty');
    await custom.createNamespacedCustomObject({
      group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations',
      body: {
        apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation',
        metadata: { name: 'full', labels: { 'casefile.dev/shard': SHARD } },
        spec: { target: { pod: 'chatty' } },
      },
    });

    const get = async () =>
      (await custom.getNamespacedCustomObject({ group: 'casefile.dev', version: 'v1alpha1', namespace: ns, plural: 'investigations', name: 'full' })) as Inv;
    const cond = (inv: Inv, type: string) => inv.status?.conditions?.find((c) => c.type === type);
    // Ready is written last in a reconcile: once it settles, every phase condition has too.
    const inv = await waitFor('the case to settle (Ready True or False)', get, {
      timeoutMs: 120_000,
      until: (i) => ['False', 'True'].includes(cond(i, 'Ready')?.status ?? ''),
    });

    // On a fresh volume the small artifacts fit and the logs do not; on a volume a previous run left
    // full, an early write already fails: a phase's, or the case's opening record (then no phase runs
    // and Ready says so). Either way the case says EvidenceStoreFull and is not sealed.
    const fresh = cond(inv, 'ManifestCaptured')?.status === 'True';
    expect(cond(inv, 'Ready')).toMatchObject({ status: 'False', reason: 'EvidenceStoreFull' });
    if (cond(inv, 'ManifestCaptured')) {
      expect(cond(inv, fresh ? 'LogsCaptured' : 'ManifestCaptured')).toMatchObject({ status: 'False', reason: 'EvidenceStoreFull' });
      expect(cond(inv, 'EvidenceSealed')).toMatchObject({ status: 'False', reason: 'EvidenceIncomplete' });
    } else {
      expect(cond(inv, 'Ready')?.message).toContain('cannot open the case file');
      expect(cond(inv, 'EvidenceSealed')).toBeUndefined();
    }
    const caseDir = `/evidence/${ns}/full-${inv.metadata.uid.replace(/-/g, '').slice(0, 8)}`;
    const probe = await podExec(kc, ns, 'shard-operator', 'operator', [
      '/usr/bin/node', '-e',
      `const fs=require('fs');const d=${JSON.stringify(caseDir)};console.log(JSON.stringify({manifest:fs.existsSync(d+'/MANIFEST.sha256'),pod:fs.existsSync(d+'/k8s/pod.yaml'),custody:(fs.existsSync(d+'/custody.jsonl')?fs.readFileSync(d+'/custody.jsonl','utf8'):'').split('\\n').filter(Boolean).map(JSON.parse).map(r=>r.action)}))`,
    ]);
    const seen = JSON.parse(probe.stdout) as { manifest: boolean; pod: boolean; custody: string[] };
    // What fitted before the volume filled is kept; no manifest claims the case is complete.
    expect(seen.manifest).toBe(false);
    expect(seen.pod).toBe(fresh);
    expect(seen.custody).not.toContain('sealed');

    // The cluster-wide operator left the shard's Investigation alone (its default selector excludes shards).
    const { stdout } = await kubectl(['-n', 'casefile-system', 'logs', 'deploy/casefile-operator', '--since=10m']);
    expect(stdout).not.toContain(`${ns}/full`);
  }, 240_000);
});
