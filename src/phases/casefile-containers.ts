// casefile's own containers beside a suspect (the debug container), on its node (the node collector)
// or in its namespace (the isolation probes): their image, their privileges, how long they idle, and
// waiting for them to run.
// Failures that waiting cannot fix (an image that cannot be pulled, a container that exited) end the
// wait at once; each phase turns the result into its own condition reason.
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1ContainerStatus, V1SecurityContext } from '@kubernetes/client-node';
import { IMAGE_SETTING } from '../api/investigation.js';
import type { PhaseContext } from './phase.js';

/** Read /proc/<pid> (environ, fd, maps, root) of processes of any user, and their files whatever the mode. */
export const DEBUG_CAPABILITIES = ['SYS_PTRACE', 'DAC_READ_SEARCH'] as const;
/** How long the idle process outlives the collector's deadline before it exits by itself. */
const IDLE_MARGIN_SECONDS = 600;

/** Lifetime of the idle process of casefile's own containers: the debug container, the node collector. */
export const idleSeconds = (timeoutSeconds: number): number => timeoutSeconds + IDLE_MARGIN_SECONDS;

/**
 * The one image every container casefile creates runs: the operator's configuration, never a spec
 * (the admission policy config/admission/operator-pods.yaml admits no other for the operator's account).
 */
export const debugImage = (ctx: PhaseContext): string | undefined => ctx.config.debugImage;
/** The refusal when the installation names no image. */
export const NO_IMAGE_MESSAGE = `the operator has no image for its own containers: set ${IMAGE_SETTING} (CASEFILE_DEBUG_IMAGE)`;
/** Root with only DEBUG_CAPABILITIES: read-only root filesystem, no escalation, default seccomp. */
export function collectorSecurityContext(): V1SecurityContext {
  return {
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add: [...DEBUG_CAPABILITIES] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}


const POLL_MS = 250;
const IMAGE_PROBLEMS = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'ImageInspectError']);

export type ContainerStart =
  | { running: V1ContainerStatus }
  | { problem: 'gone' | 'image' | 'exited' | 'timeout'; detail: string };

/**
 * Polls `read` (the container's status; `failed` when its pod failed; undefined when the pod is gone)
 * until the container runs, fails for good, or `timeoutMs` passes.
 */
export async function waitForContainer(
  read: () => Promise<{ status?: V1ContainerStatus; failed?: string } | undefined>,
  timeoutMs: number,
): Promise<ContainerStart> {
  const deadline = Date.now() + timeoutMs;
  let last: V1ContainerStatus | undefined;
  while (Date.now() < deadline) {
    const seen = await read();
    if (!seen) return { problem: 'gone', detail: 'its pod disappeared' };
    last = seen.status;
    if (last?.state?.running) return { running: last };
    const waiting = last?.state?.waiting;
    if (waiting?.reason && IMAGE_PROBLEMS.has(waiting.reason)) return { problem: 'image', detail: describeState(last) };
    if (last?.state?.terminated || seen.failed) return { problem: 'exited', detail: last?.state?.terminated ? describeState(last) : seen.failed! };
    await sleep(POLL_MS);
  }
  return { problem: 'timeout', detail: `not running after ${Math.round(timeoutMs / 1000)} s (${describeState(last)})` };
}

export function describeState(s: V1ContainerStatus | undefined): string {
  if (!s?.state) return 'no status yet';
  if (s.state.running) return 'running';
  if (s.state.waiting) return `waiting: ${s.state.waiting.reason ?? ''}${s.state.waiting.message ? ` ${s.state.waiting.message}` : ''}`;
  const t = s.state.terminated;
  return `terminated: exit code ${t?.exitCode}${t?.reason ? ` (${t.reason})` : ''}`;
}
