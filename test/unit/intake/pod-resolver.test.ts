// Pod resolution for alerts: by name (cached briefly), by container ID, and the storm case where the
// alert's container ID proves a cached pod is still the same pod, so the API server is not asked.
import { describe, expect, test } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import type { FalcoAlert } from '../../../src/intake/alert-schema.js';
import { PodResolver, slimPod, type PodIndex, type PodSource } from '../../../src/intake/pod-resolver.js';

const FULL_ID = '3f2a9c1e7b44' + 'a'.repeat(52);
const pod = (uid: string, id = FULL_ID): V1Pod => ({
  metadata: { namespace: 'production', name: 'web-0', uid },
  spec: { containers: [{ name: 'app' }] },
  status: { containerStatuses: [{ name: 'app', containerID: `containerd://${id}`, image: 'x', imageID: 'y', ready: true, restartCount: 0 }] },
});

function alert(fields: Record<string, string | null>): FalcoAlert {
  return { rule: 'r', priority: 'Critical', time: '2026-11-20T10:17:03Z', tags: [], output_fields: fields } as unknown as FalcoAlert;
}

function source(pods: () => V1Pod | undefined): PodSource & { gets: number; lists: number } {
  const s = {
    gets: 0,
    lists: 0,
    async get() {
      s.gets++;
      return pods();
    },
    async list() {
      s.lists++;
      const p = pods();
      return p ? [p] : [];
    },
  };
  return s;
}

/** The watched index as the informer holds it: slim pods by namespace/name. */
function index(pods: V1Pod[], synced = true): PodIndex & { pods: Map<string, V1Pod>; synced: boolean } {
  const i = {
    synced,
    pods: new Map(pods.map((p) => [`${p.metadata!.namespace}/${p.metadata!.name}`, slimPod(p)])),
    hasSynced: () => i.synced,
    get: (key: string) => i.pods.get(key),
    list: () => [...i.pods.values()],
  };
  return i;
}

describe('PodResolver', () => {
  test('by name: cached for byNameTtlMs, then read again', async () => {
    let now = 0;
    const src = source(() => pod('uid-1'));
    const r = new PodResolver(src, { now: () => now });
    const a = alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0' });
    expect(await r.resolve(a)).toMatchObject({ uid: 'uid-1' });
    now = 1000;
    await r.resolve(a);
    expect(src.gets).toBe(1);
    now = 2500;
    await r.resolve(a);
    expect(src.gets).toBe(2);
  });

  test('an alert whose container ID the cached pod holds reuses it past the short TTL', async () => {
    let now = 0;
    const src = source(() => pod('uid-1'));
    const r = new PodResolver(src, { now: () => now });
    const a = alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': '3f2a9c1e7b44' });
    expect(await r.resolve(a)).toMatchObject({ uid: 'uid-1', container: 'app' });
    for (now = 3000; now < 200_000; now += 3000) await r.resolve(a);
    expect(src.gets).toBe(1);
  });

  test('a replacement pod (same name, new UID and container ID) is found: the old container ID no longer matches', async () => {
    let now = 0;
    let current = pod('uid-1');
    const src = source(() => current);
    const r = new PodResolver(src, { now: () => now });
    await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': '3f2a9c1e7b44' }));
    current = pod('uid-2', 'b'.repeat(64));
    now = 3000;
    const fresh = await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': 'bbbbbbbbbbbb' }));
    expect(fresh).toMatchObject({ uid: 'uid-2' });
    expect(src.gets).toBe(2);
  });
});

describe('PodResolver: the container ID must be the named pod\'s', () => {
  test('a delayed alert about a replaced pod resolves to no pod, not to the replacement', async () => {
    const src = source(() => pod('uid-new', 'b'.repeat(64)));
    const r = new PodResolver(src, { now: () => 0 });
    expect(await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': '3f2a9c1e7b44' }))).toBeUndefined();
    expect(await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': 'bbbbbbbbbbbb' }))).toMatchObject({ uid: 'uid-new' });
  });

  test("a container's previous instance (restarted in place) is still the pod's", async () => {
    const p = pod('uid-1', 'c'.repeat(64));
    p.status!.containerStatuses![0]!.lastState = { terminated: { exitCode: 1, containerID: `containerd://${FULL_ID}` } };
    const r = new PodResolver(source(() => p), { now: () => 0 });
    expect(await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': '3f2a9c1e7b44' }))).toMatchObject({ uid: 'uid-1' });
  });

  test('a storm of alerts naming a container the pod lacks reads the pod at most once a second', async () => {
    let now = 0;
    const src = source(() => pod('uid-new', 'b'.repeat(64)));
    const r = new PodResolver(src, { now: () => now });
    const stale = alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': '3f2a9c1e7b44' });
    for (now = 0; now < 5000; now += 10) expect(await r.resolve(stale)).toBeUndefined();
    expect(src.gets).toBeLessThanOrEqual(6);
  });

  test("a k8saudit alert resolves to the pod it targets (Falco's 'Attach/Exec Pod'), and to no pod for another target", async () => {
    const r = new PodResolver(source(() => pod('uid-1')));
    const exec = alert({ 'ka.user.name': 'mallory', 'ka.target.resource': 'pods', 'ka.target.subresource': 'exec', 'ka.target.namespace': 'production', 'ka.target.name': 'web-0', 'ka.uri.param[command]': 'sh' });
    expect(await r.resolve(exec)).toMatchObject({ namespace: 'production', name: 'web-0', uid: 'uid-1' });
    const secret = alert({ 'ka.user.name': 'mallory', 'ka.target.resource': 'secrets', 'ka.target.namespace': 'production', 'ka.target.name': 'web-0' });
    expect(await r.resolve(secret)).toBeUndefined();
    expect(await r.resolve(alert({ 'ka.target.resource': 'pods', 'ka.target.namespace': 'production' }))).toBeUndefined();
  });

  test('from the watched index once it has synced: a storm by name or container ID reads nothing from the API server', async () => {
    let now = 0;
    const src = source(() => pod('uid-1'));
    const r = new PodResolver(src, { now: () => now, index: index([pod('uid-1')]) });
    for (now = 0; now < 20_000; now += 50) {
      expect(await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0' }))).toEqual({ namespace: 'production', name: 'web-0', uid: 'uid-1' });
      expect(await r.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.name': 'app', 'container.id': '3f2a9c1e7b44' }))).toMatchObject({ uid: 'uid-1', container: 'app' });
      expect(await r.resolve(alert({ 'container.id': FULL_ID }))).toMatchObject({ uid: 'uid-1', container: 'app' });
    }
    expect([src.gets, src.lists]).toEqual([0, 0]);
  });

  test('reads the API server until the index has synced, and for what the index has not seen yet (a new pod, a new container)', async () => {
    const idx = index([], false);
    let current = pod('uid-1');
    const src = source(() => current);
    const r = new PodResolver(src, { now: () => 0, index: idx });
    expect(await r.resolve(alert({ 'container.id': FULL_ID }))).toMatchObject({ uid: 'uid-1' });
    expect(src.lists).toBe(1); // not synced: the API server's list
    idx.synced = true;
    const fresh = new PodResolver(src, { now: () => 0, index: idx });
    // Synced but the watch has not delivered the pod yet: one read.
    expect(await fresh.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0' }))).toMatchObject({ uid: 'uid-1' });
    expect(src.gets).toBe(1);
    // The index has the pod, but not the container the alert names (started a moment ago): a read finds it.
    idx.pods.set('production/web-0', slimPod(pod('uid-1')));
    current = pod('uid-1', 'b'.repeat(64));
    const later = new PodResolver(src, { now: () => 0, index: idx });
    expect(await later.resolve(alert({ 'k8s.ns.name': 'production', 'k8s.pod.name': 'web-0', 'container.id': 'bbbbbbbbbbbb' }))).toMatchObject({ uid: 'uid-1', container: 'app' });
    expect(src.gets).toBe(2);
  });

  test('slimPod keeps what resolution reads and nothing else', () => {
    const full = pod('uid-1');
    full.metadata!.labels = { app: 'web' };
    full.metadata!.annotations = { secret: 'x'.repeat(1000) };
    full.spec!.containers[0]!.env = [{ name: 'TOKEN', value: 'hunter2' }];
    full.status!.containerStatuses![0]!.lastState = { terminated: { exitCode: 1, containerID: 'containerd://old' } };
    expect(slimPod(full)).toEqual({
      metadata: { namespace: 'production', name: 'web-0', uid: 'uid-1', resourceVersion: undefined },
      spec: { containers: [{ name: 'app' }], initContainers: undefined, ephemeralContainers: undefined },
      status: {
        containerStatuses: [{ name: 'app', containerID: `containerd://${FULL_ID}`, lastState: { terminated: { containerID: 'containerd://old' } } }],
        initContainerStatuses: undefined,
        ephemeralContainerStatuses: undefined,
      },
    });
  });
});
