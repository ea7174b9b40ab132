// Which pod an alert is about: `k8s.ns.name` + `k8s.pod.name` when Falco filled them in (or, for an
// alert from Falco's k8saudit plugin about a pod, `ka.target.namespace` + `ka.target.name`), else the
// container ID (Falco's 12-character short form, or the full one) looked up in the pods'
// status.containerStatuses. When an alert carries both, the container ID must be one of the named
// pod's: a delayed alert about a replaced pod (same name, new UID) resolves to no pod, never to the
// clean replacement. Lookups are answered from a watched index of every pod (slim: names, UIDs,
// container IDs) once it has synced, so an alert storm makes no API read per alert; a pod or a
// container the index has not seen yet (the watch is a moment behind) is read from the API server,
// cached briefly, so a storm about a pod the index lacks makes a handful of requests, not one per alert.
import type { V1Pod } from '@kubernetes/client-node';
import type { InformerOptions } from '../engine/informer.js';
import type { RestClient } from '../kube/rest.js';
import type { FalcoAlert } from './alert-schema.js';
import { outputField } from './alert-schema.js';
import { bareContainerID } from '../kube/container-id.js';

export interface ResolvedPod {
  namespace: string;
  name: string;
  uid: string;
  /** The container the alert names (by container.name or container.id), when it is one of the pod's. */
  container?: string;
}

export interface PodSource {
  /** The pod, or undefined when it does not exist (other errors throw). */
  get(namespace: string, name: string): Promise<V1Pod | undefined>;
  /** Every pod in the cluster. */
  list(): Promise<V1Pod[]>;
}

/** How long a pod read by name is reused. Short: a StatefulSet pod can come back with the same name and a new UID. */
const BY_NAME_TTL_MS = 2000;
/**
 * How long a pod read by name is reused for an alert whose container ID it holds: container IDs are
 * never reused, so that pod cannot have been replaced. Keeps the API server out of an alert storm.
 */
const CONFIRMED_TTL_MS = 300_000;
/** How long the container ID index (a list of every pod) is reused. */
const INDEX_TTL_MS = 5000;
/** An unknown container ID relists at most this often (a storm about a host or a gone pod must not hammer the API server). */
const RELIST_MIN_MS = 1000;

/** The watched index of pods (an Informer of slimPod objects). */
export interface PodIndex {
  hasSynced(): boolean;
  /** By `namespace/name`. */
  get(key: string): V1Pod | undefined;
  list(): V1Pod[];
}

export interface PodResolverOptions {
  now?: () => number;
  index?: PodIndex;
}

/** What the resolver reads of a pod, and all the index keeps of one: a cluster's pods fit in the intake thread. */
export function slimPod(pod: V1Pod): V1Pod {
  const names = (cs: { name: string }[] | undefined) => cs?.map((c) => ({ name: c.name }));
  const statuses = (ss: NonNullable<V1Pod['status']>['containerStatuses']) =>
    ss?.map((st) => ({ name: st.name, containerID: st.containerID, lastState: { terminated: { containerID: st.lastState?.terminated?.containerID } } })) as never;
  const m = pod.metadata ?? {};
  return {
    metadata: { namespace: m.namespace, name: m.name, uid: m.uid, resourceVersion: m.resourceVersion },
    spec: { containers: names(pod.spec?.containers) ?? [], initContainers: names(pod.spec?.initContainers) as never, ephemeralContainers: names(pod.spec?.ephemeralContainers) as never },
    status: {
      containerStatuses: statuses(pod.status?.containerStatuses),
      initContainerStatuses: statuses(pod.status?.initContainerStatuses),
      ephemeralContainerStatuses: statuses(pod.status?.ephemeralContainerStatuses),
    },
  };
}

/** list + watch of every pod, slimmed before the index keeps it. */
export function podIndexSource(api: RestClient): Pick<InformerOptions<V1Pod>, 'list' | 'watch'> {
  const watch = api.watch('/api/v1/pods');
  return {
    list: async () => {
      const list = await api.getJSON<{ items: V1Pod[]; metadata: { resourceVersion: string } }>('/api/v1/pods');
      return { items: list.items.map(slimPod), resourceVersion: list.metadata.resourceVersion };
    },
    watch: (resourceVersion, onEvent, onDone) =>
      watch(resourceVersion, (type, obj) => onEvent(type, type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED' ? slimPod(obj as V1Pod) : obj), onDone),
  };
}

function containers(pod: V1Pod): { name: string; id?: string }[] {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])];
  return statuses.map((s) => ({ name: s.name, id: s.containerID ? bareContainerID(s.containerID) : undefined }));
}

/** The pod's containers' IDs, including each container's previous instance (a restart keeps the pod). */
function containerIds(pod: V1Pod): string[] {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])];
  return statuses.flatMap((s) => [s.containerID, s.lastState?.terminated?.containerID]).flatMap((id) => (id ? [bareContainerID(id)] : []));
}

function holds(pod: V1Pod | undefined, id: string): boolean {
  return !!pod && containerIds(pod).some((c) => matchesId(c, id));
}

function specContainerNames(pod: V1Pod): string[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? []), ...(pod.spec?.ephemeralContainers ?? [])].map((c) => c.name);
}

function resolved(pod: V1Pod, alert: FalcoAlert, id: string | undefined): ResolvedPod | undefined {
  const namespace = pod.metadata?.namespace;
  const name = pod.metadata?.name;
  const uid = pod.metadata?.uid;
  if (!namespace || !name || !uid) return undefined;
  const byName = outputField(alert, 'container.name');
  const container = (byName && specContainerNames(pod).includes(byName) ? byName : undefined) ?? (id ? containers(pod).find((c) => c.id && matchesId(c.id, id))?.name : undefined);
  return container ? { namespace, name, uid, container } : { namespace, name, uid };
}

/** The alert's container ID when it names a container (not `host`, not empty). */
function containerIdOf(alert: FalcoAlert): string | undefined {
  const id = outputField(alert, 'container.id');
  if (!id || id === 'host' || !/^[0-9a-f]{12,64}$/i.test(bareContainerID(id))) return undefined;
  return bareContainerID(id).toLowerCase();
}

function matchesId(full: string, id: string): boolean {
  return id.length === full.length ? id === full : full.startsWith(id);
}

export class PodResolver {
  private readonly byName = new Map<string, { at: number; pod: V1Pod | undefined }>();
  private index: { at: number; ids: Map<string, V1Pod> } | undefined;
  private listing: Promise<void> | undefined;
  private listedAt = -Infinity;
  private readonly now: () => number;
  private readonly watched: PodIndex | undefined;

  constructor(
    private readonly source: PodSource,
    opts: PodResolverOptions = {},
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.watched = opts.index;
  }

  /** The pod the alert is about, or undefined for a host event or a pod that does not exist. */
  async resolve(alert: FalcoAlert): Promise<ResolvedPod | undefined> {
    const { namespace, name } = podNamed(alert);
    const id = containerIdOf(alert);
    if (namespace && name) {
      const pod = await this.podByName(namespace, name, id);
      if (!pod || (id && !holds(pod, id))) return undefined;
      return resolved(pod, alert, id);
    }
    if (!id) return undefined;
    const pod = await this.podByContainerId(id);
    return pod ? resolved(pod, alert, id) : undefined;
  }

  private async podByName(namespace: string, name: string, containerId: string | undefined): Promise<V1Pod | undefined> {
    const key = `${namespace}/${name}`;
    if (this.watched?.hasSynced()) {
      const pod = this.watched.get(key);
      if (pod && (!containerId || holds(pod, containerId))) return pod;
    }
    const cached = this.byName.get(key);
    const age = cached ? this.now() - cached.at : Infinity;
    if (cached && containerId && age < CONFIRMED_TTL_MS && holds(cached.pod, containerId)) return cached.pod;
    // A container ID the cached pod lacks may be a container started since: read again, but at most
    // every RELIST_MIN_MS (a storm of alerts about a replaced pod must not hammer the API server).
    if (cached && age < (containerId ? RELIST_MIN_MS : BY_NAME_TTL_MS)) return cached.pod;
    const pod = await this.source.get(namespace, name);
    if (this.byName.size > 10_000) this.byName.clear(); // bounded: a cache, not a store
    this.byName.set(key, { at: this.now(), pod });
    return pod;
  }

  private async podByContainerId(id: string): Promise<V1Pod | undefined> {
    const fresh = this.index && this.now() - this.index.at < INDEX_TTL_MS;
    let pod = fresh ? this.lookup(id) : undefined;
    if (pod || (fresh && this.now() - this.listedAt < RELIST_MIN_MS)) return pod;
    await this.relist();
    pod = this.lookup(id);
    return pod;
  }

  private lookup(id: string): V1Pod | undefined {
    const ids = this.index?.ids;
    if (!ids) return undefined;
    if (id.length === 64) return ids.get(id);
    return ids.get(id.slice(0, 12));
  }

  private relist(): Promise<void> {
    this.listing ??= (async () => {
      try {
        // The watched index is the whole cluster already; the API server is asked only until it has synced.
        const pods = this.watched?.hasSynced() ? this.watched.list() : await this.source.list();
        const ids = new Map<string, V1Pod>();
        for (const pod of pods) {
          for (const c of containers(pod)) {
            if (!c.id) continue;
            ids.set(c.id, pod);
            ids.set(c.id.slice(0, 12), pod);
          }
        }
        this.index = { at: this.now(), ids };
        this.listedAt = this.now();
      } finally {
        this.listing = undefined;
      }
    })();
    return this.listing;
  }
}

/**
 * The pod an alert names: a syscall alert's `k8s.*` fields, or the target of a k8saudit alert (an exec,
 * an attach, a change) when that target is a pod. Any other audit target (a Secret, a binding) names
 * no pod: such an alert opens no case about a pod.
 */
function podNamed(alert: FalcoAlert): { namespace?: string; name?: string } {
  const namespace = outputField(alert, 'k8s.ns.name');
  const name = outputField(alert, 'k8s.pod.name');
  if (namespace && name) return { namespace, name };
  if (outputField(alert, 'ka.target.resource') !== 'pods') return {};
  return { namespace: outputField(alert, 'ka.target.namespace'), name: outputField(alert, 'ka.target.name') };
}
