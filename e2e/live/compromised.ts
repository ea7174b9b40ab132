// A "compromised" workload for the live-capture tests, built from busybox so every fact is known:
// the app copies a binary to /tmp, runs it (as `nc`, through a symlink) and deletes it while it runs;
// one copy holds a TCP connection to a second pod playing the command-and-control server, another
// listens on a port the pod spec does not declare; a script is dropped in /dev/shm. A sidecar runs
// beside it. The tests read all of this back from the case file, never from inside the suspect.
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { images, waitFor, waitForPodReady } from '../support/cluster.js';
import { busyboxPod, core } from '../operator/support.js';
import { kc } from '../containment/helpers.js';

export const C2_PORT = 4444;
export const UNDECLARED_PORT = 31337;
export const DECLARED_PORT = 8080;
export const DROPPED_SCRIPT = '/dev/shm/update.sh';
export const DROPPED_SCRIPT_TEXT = '#!/bin/sh\necho mining\n';
export const DROPPED_SCRIPT_SHA256 = createHash('sha256').update(DROPPED_SCRIPT_TEXT).digest('hex');
export const BACKDOOR_USER = 'sysd:x:0:0::/root:/bin/sh';
/** The entrypoint's own idle command: a marker the tests look for in the process list. */
export const APP_IDLE = 'sleep 7777777';

/** The C2 server: accepts one connection and holds it open (its stdin never ends). Returns its IP. */
export async function startC2(namespace: string): Promise<string> {
  await core.createNamespacedPod({ namespace, body: busyboxPod('c2', `sleep 7777780 | nc -l -p ${C2_PORT}`) });
  const pod = await waitForPodReady(kc, namespace, 'c2', 90_000);
  return pod.status!.podIP!;
}

const APP_SCRIPT = [
  `httpd -f -p ${DECLARED_PORT} -h /tmp &`,
  'cp /bin/busybox /tmp/kworkerd && chmod 755 /tmp/kworkerd && ln -s kworkerd /tmp/nc',
  // argv[0] "nc" picks busybox's nc applet; /proc/<pid>/exe is /tmp/kworkerd.
  `(sleep 7777778 | /tmp/nc "$C2_IP" ${C2_PORT}) &`,
  `/tmp/nc -l -p ${UNDECLARED_PORT} &`,
  'sleep 1 && rm -f /tmp/kworkerd /tmp/nc',
  `printf '${DROPPED_SCRIPT_TEXT.replace(/\n/g, '\\n')}' > ${DROPPED_SCRIPT} && chmod 755 ${DROPPED_SCRIPT}`,
  // Persistence in the image's own files: only the overlay upper layer shows this change.
  `echo '${BACKDOOR_USER}' >> /etc/passwd`,
  'echo compromised',
  `exec ${APP_IDLE}`,
].join('\n');

export function compromisedPod(name: string, c2IP: string): V1Pod {
  const pod = busyboxPod(name, APP_SCRIPT);
  const app = pod.spec!.containers[0]!;
  app.env = [{ name: 'C2_IP', value: c2IP }, { name: 'API_KEY', value: 'not-a-real-secret' }];
  app.ports = [{ containerPort: DECLARED_PORT, protocol: 'TCP' }];
  // Root in the container, as many real images are; no securityContext restrictions.
  delete app.securityContext;
  pod.spec!.containers.push({ name: 'sidecar', image: images.busybox, imagePullPolicy: 'Never', command: ['sleep', '7777779'] });
  return pod;
}

/** Starts the compromised pod and waits until its script has done everything (its log says so). */
export async function startCompromised(namespace: string, name: string, c2IP: string): Promise<V1Pod> {
  await core.createNamespacedPod({ namespace, body: compromisedPod(name, c2IP) });
  const pod = await waitForPodReady(kc, namespace, name, 90_000);
  await waitFor(
    `${name} finished its script`,
    async () => core.readNamespacedPodLog({ namespace, name, container: 'app' }),
    { timeoutMs: 30_000, until: (log) => String(log).includes('compromised') },
  );
  return pod;
}

/** A target whose image has no shell at all: the pause image (one static binary). */
export function distrolessPod(name: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      containers: [{ name: 'app', image: images.pause, imagePullPolicy: 'Never' }],
    },
  };
}
