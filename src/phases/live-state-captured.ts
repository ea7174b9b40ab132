// LiveStateCaptured: runs casefile's collector in the debug container (one exec, argv only, never
// a shell string) and streams its framed output into live/: processes, memory regions, fds, sockets,
// maps, mounts, files in writable paths, recovered deleted executables, indicators, findings. The suspect container itself
// is only read, through /proc of the shared process namespace.
import type { V1Pod } from '@kubernetes/client-node';
import { getCondition } from '../api/conditions.js';
import { bareContainerID } from '../kube/container-id.js';
import { idleSeconds } from './casefile-containers.js';
import { clusterRanges } from './cluster-ranges.js';
import { COLLECTOR_ENTRY, runCollector, walkSeconds } from './collector-run.js';
import type { Phase, PhaseContext, PhaseOutcome } from './phase.js';

export const liveStateCaptured: Phase = {
  condition: 'LiveStateCaptured',
  needsTarget: true,
  enabled: (spec) => spec.evidence.live.enabled,
  run: capture,
};

async function capture(ctx: PhaseContext): Promise<PhaseOutcome> {
  const launched = getCondition(ctx.status.conditions, 'DebugContainerLaunched');
  const debug = ctx.status.live?.debugContainer;
  if (launched?.status !== 'True' || !debug) {
    const fallback = ctx.spec.evidence.node.enabled ? ' The node collector (NodeStateCaptured) still runs.' : '';
    await ctx.caseFile.record('negative-finding', { finding: `no live state from a debug container: DebugContainerLaunched is ${launched?.reason ?? 'missing'}` }, 'LiveStateCaptured');
    return { status: 'False', reason: 'DebugContainerUnavailable', message: `not captured: DebugContainerLaunched is ${launched?.status ?? 'missing'} (${launched?.reason ?? 'not run'}).${fallback}` };
  }
  const pod = await ctx.livePod({ fresh: true });
  if (!pod) return { status: 'False', reason: 'TargetGone', message: 'the target pod no longer exists: its processes are gone' };
  const running = pod.status?.ephemeralContainerStatuses?.find((s) => s.name === debug)?.state?.running;
  if (!running) return { status: 'False', reason: 'DebugContainerGone', message: `debug container ${debug} is no longer running (its idle process exits ${idleSeconds(ctx.spec.evidence.live.timeoutSeconds)} s after launch)` };

  const live = ctx.spec.evidence.live;
  const ranges = await clusterRanges(ctx);
  const command = collectorCommand({
    containerID: bareContainerID(ctx.status.target?.containerID),
    paths: live.paths,
    maxFileBytes: live.maxFileBytes,
    walkSeconds: walkSeconds(live.timeoutSeconds),
    redactEnvironment: live.redactEnvironment,
    memoryScope: live.memory.scope,
    memoryMaxBytes: live.memory.maxBytes,
    declaredPorts: declaredPorts(pod),
    clusterCIDRs: ranges.cidrs,
  });
  return runCollector(ctx, {
    phase: 'LiveStateCaptured',
    prefix: 'live',
    target: { namespace: pod.metadata!.namespace!, pod: pod.metadata!.name!, container: debug },
    command,
    custody: { container: debug, clusterRanges: ranges },
  });
}

export function collectorCommand(o: {
  containerID: string;
  paths: string[];
  maxFileBytes: number;
  walkSeconds: number;
  redactEnvironment: boolean;
  memoryScope: string;
  memoryMaxBytes: number;
  declaredPorts: string[];
  clusterCIDRs: string[];
}): string[] {
  return [
    '/usr/bin/node',
    COLLECTOR_ENTRY,
    'live',
    '--container-id', o.containerID,
    '--paths', o.paths.join(','),
    '--max-file-bytes', String(o.maxFileBytes),
    '--walk-seconds', String(o.walkSeconds),
    ...(o.redactEnvironment ? ['--redact-environment'] : []),
    '--memory-scope', o.memoryScope,
    '--memory-max-bytes', String(o.memoryMaxBytes),
    ...(o.declaredPorts.length ? ['--declared-ports', o.declaredPorts.join(',')] : []),
    ...(o.clusterCIDRs.length ? ['--cluster-cidrs', o.clusterCIDRs.join(',')] : []),
  ];
}

/** Ports the pod spec declares, as `tcp/8080`: a listener outside this list is a finding. */
export function declaredPorts(pod: V1Pod): string[] {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const ports = containers.flatMap((c) => (c.ports ?? []).map((p) => `${(p.protocol ?? 'TCP').toLowerCase()}/${p.containerPort}`));
  return [...new Set(ports)].sort();
}
