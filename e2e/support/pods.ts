// Pod manifests for test workloads.
import type { V1Container, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { images } from './cluster.js';

export interface BusyboxPodOptions {
  labels?: Record<string, string>;
  /** Extra fields for the single container named `app`. */
  container?: Partial<V1Container>;
  /** Extra pod spec fields (volumes, serviceAccountName, restartPolicy...). */
  spec?: Partial<V1PodSpec>;
}

/**
 * A one-container busybox pod (container name `app`) running `command` through `sh -c`.
 * imagePullPolicy Never: the clusters have no registry, the image is preloaded.
 * terminationGracePeriodSeconds 0: `sh`/`sleep` as PID 1 ignore SIGTERM, and waiting out the
 * default 30 s grace period on every namespace deletion would dominate the suite's run time.
 */
export function busyboxPod(name: string, command: string, opts: BusyboxPodOptions = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name, ...opts.labels } },
    spec: {
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      ...opts.spec,
      containers: [
        {
          name: 'app',
          image: images.busybox,
          imagePullPolicy: 'Never',
          command: ['sh', '-c', command],
          ...opts.container,
        },
      ],
    },
  };
}
