// casefile's container in the suspect's network namespace, for isolation verification: found or added
// (the debug container DebugContainerLaunched then adopts, or a probe-only one), with an optional head
// start so it is already starting while containment's writes go out (the containment lane, or the top
// of NetworkIsolated). Nothing here writes to the case file: verifyIsolation records what was added.
import { PatchStrategy, setHeaderOptions, type V1EphemeralContainer, type V1Pod } from '@kubernetes/client-node';
import { uidPrefix } from '../../evidence/paths.js';
import { errorMessage } from '../../errors.js';
import { isForbidden } from '../../kube/errors.js';
import { DEBUG_CAPABILITIES } from '../casefile-containers.js';
import { debugContainerSpec } from '../debug-container-launched.js';
import type { PhaseContext } from '../phase.js';

const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

export type ProbeContainer = { name: string; added: boolean; custody?: Record<string, unknown> } | { problem: string };

/** Head starts of prepareVerification, by Investigation UID; taken by verifyIsolation. */
const prepared = new Map<string, { at: number; container: Promise<ProbeContainer> }>();
const PREPARED_TTL_MS = 60_000;

/**
 * Optional head start, for the caller to make before it writes containment: adds (or finds) the
 * probe container while the policy is being written, so verification, once the policy is in place,
 * waits for no container start. Never throws and writes nothing to the case file (the custody record
 * of an added container is written by verifyIsolation, so containment's own writes are not delayed);
 * a failure is retried by verifyIsolation and reported there.
 */
export function prepareVerification(ctx: HeadStartContext, pod: V1Pod, targetContainer: string | undefined): void {
  const image = ctx.config.debugImage;
  if (!image || pod.spec?.hostNetwork || canFilterOwnNetwork(pod)) return;
  const now = Date.now();
  for (const [uid, p] of prepared) if (now - p.at > PREPARED_TTL_MS) prepared.delete(uid);
  // Made already (by the containment lane, ahead of the phase): a second start could add a second container.
  if (prepared.has(ctx.investigation.metadata.uid)) return;
  const container = probeContainer(ctx, pod, image, targetContainer).catch((err: unknown): ProbeContainer => ({ problem: errorMessage(err) }));
  prepared.set(ctx.investigation.metadata.uid, { at: now, container });
}

/** What the head start needs: the case, the cluster and the operator's image (no case file, no status). */
export type HeadStartContext = Pick<PhaseContext, 'investigation' | 'spec' | 'kube' | 'config'>;

/** The head start if there is a fresh one that worked, else a container found or added now. */
export async function takeProbeContainer(ctx: PhaseContext, pod: V1Pod, image: string): Promise<ProbeContainer> {
  const head = prepared.get(ctx.investigation.metadata.uid);
  prepared.delete(ctx.investigation.metadata.uid);
  if (head && Date.now() - head.at <= PREPARED_TTL_MS) {
    const c = await head.container;
    if (!('problem' in c)) return c;
  }
  return probeContainer(ctx, pod, image, ctx.status.target?.container);
}

/** A container of the suspect that could add filtering rules in its own network namespace. */
export function canFilterOwnNetwork(pod: V1Pod): string | undefined {
  const containers = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  return containers.find((c) => c.securityContext?.privileged || (c.securityContext?.capabilities?.add ?? []).some((cap) => /^(CAP_)?(NET_ADMIN|SYS_ADMIN|ALL)$/i.test(cap)))?.name;
}

/** No capability, no root: what a probe in the suspect's namespace needs (PodSecurity restricted admits it). */
function probeOnlySpec(name: string, image: string): V1EphemeralContainer {
  return {
    name,
    image,
    imagePullPolicy: 'IfNotPresent',
    command: ['/bin/sleep', '600'],
    terminationMessagePolicy: 'File',
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

/**
 * casefile's running ephemeral container in the suspect pod: the debug container (adopted if there,
 * else added with exactly the spec DebugContainerLaunched gives it, which then adopts it), or a
 * probe-only one when live capture is off, the target container is not running, or PodSecurity
 * refuses the debug container's capabilities.
 */
async function probeContainer(ctx: HeadStartContext, pod: V1Pod, image: string, targetName: string | undefined): Promise<ProbeContainer> {
  const short = uidPrefix(ctx.investigation.metadata.uid);
  const status = (p: V1Pod, name: string) => p.status?.ephemeralContainerStatuses?.find((s) => s.name === name);
  const existing = pod.spec?.ephemeralContainers ?? [];
  const ours = (base: string) => existing.filter((c) => c.name === base || c.name.startsWith(`${base}-`));
  const usable = (base: string) => ours(base).find((c) => !status(pod, c.name)?.state?.terminated);
  const next = (base: string) => (ours(base).length === 0 ? base : `${base}-${ours(base).length + 1}`);
  const targetRunning = !!targetName && !!pod.status?.containerStatuses?.find((c) => c.name === targetName)?.state?.running;
  const debugBase = `casefile-debug-${short}`;
  const probeBase = `casefile-probe-${short}`;

  let chosen = usable(debugBase)?.name ?? usable(probeBase)?.name;
  let added = false;
  let custody: Record<string, unknown> | undefined;
  if (!chosen) {
    const candidates: Array<{ spec: V1EphemeralContainer; record: Record<string, unknown> }> = [];
    if (ctx.spec.evidence.live.enabled && targetRunning) {
      const name = next(debugBase);
      candidates.push({
        spec: debugContainerSpec(name, image, targetName, ctx.spec.evidence.live.timeoutSeconds),
        record: { container: name, image, target: targetName, capabilities: DEBUG_CAPABILITIES, purpose: 'isolation verification from the suspect\'s network namespace; DebugContainerLaunched then uses it for live capture' },
      });
    }
    const probeName = next(probeBase);
    candidates.push({ spec: probeOnlySpec(probeName, image), record: { container: probeName, image, capabilities: [], purpose: 'isolation verification from the suspect\'s network namespace (no capability, exits by itself within 10 minutes)' } });
    let refusal = '';
    for (const c of candidates) {
      try {
        await ctx.kube.core.patchNamespacedPodEphemeralcontainers(
          { name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { spec: { ephemeralContainers: [c.spec] } } },
          strategicMerge,
        );
        chosen = c.spec.name;
        added = true;
        custody = { pod: pod.metadata?.name, ...c.record };
        break;
      } catch (err) {
        refusal = errorMessage(err);
        // PodSecurity refuses the debug container's capabilities: the probe-only one may still pass.
        if (!(isForbidden(err) && /PodSecurity/i.test(refusal))) break;
      }
    }
    if (!chosen) return { problem: `adding it was refused: ${refusal}` };
  }
  return { name: chosen, added, custody };
}
