// LiveStateCaptured: runs casefile's collector in the debug container (one exec, argv only, never
// a shell string) and streams its framed output into live/: processes, fds, sockets, maps, mounts,
// files in writable paths, recovered deleted executables, findings. The suspect container itself
// is only read, through /proc of the shared process namespace.
import type { V1Pod } from '@kubernetes/client-node';
import type { Finding } from '../api/investigation.js';
import { ExecTimeoutError, execStream } from '../engine/exec.js';
import { errorMessage } from '../engine/kube.js';
import { clusterRanges } from './cluster-ranges.js';
import { captureCollectorOutput, COLLECTOR_STARTED, collectorBase, type CollectorOutput } from './collector-output.js';
import type { Phase, PhaseContext, PhaseOutcome } from './phase.js';

export const COLLECTOR_ENTRY = '/app/dist/live/collector-cli.js';
/** Findings kept in status (all of them are in the case file and the report). */
export const MAX_STATUS_FINDINGS = 20;

export const liveStateCaptured: Phase = {
  condition: 'LiveStateCaptured',
  needsTarget: true,
  enabled: (spec) => spec.evidence.live.enabled,
  run: capture,
};

async function capture(ctx: PhaseContext): Promise<PhaseOutcome> {
  const launched = ctx.status.conditions?.find((c) => c.type === 'DebugContainerLaunched');
  const debug = ctx.status.live?.debugContainer;
  if (launched?.status !== 'True' || !debug) {
    const fallback = ctx.spec.evidence.node.enabled ? ' The node collector (NodeStateCaptured) still runs.' : '';
    await ctx.caseFile.record('negative-finding', { finding: `no live state from a debug container: DebugContainerLaunched is ${launched?.reason ?? 'missing'}` }, 'LiveStateCaptured');
    return { status: 'False', reason: 'DebugContainerUnavailable', message: `not captured: DebugContainerLaunched is ${launched?.status ?? 'missing'} (${launched?.reason ?? 'not run'}).${fallback}` };
  }
  const pod = await ctx.livePod({ fresh: true });
  if (!pod) return { status: 'False', reason: 'TargetGone', message: 'the target pod no longer exists: its processes are gone' };
  const running = pod.status?.ephemeralContainerStatuses?.find((s) => s.name === debug)?.state?.running;
  if (!running) return { status: 'False', reason: 'DebugContainerGone', message: `debug container ${debug} is no longer running (its idle process exits ${ctx.spec.evidence.live.timeoutSeconds + 600} s after launch)` };

  const live = ctx.spec.evidence.live;
  const ranges = await clusterRanges(ctx);
  const command = collectorCommand({
    containerID: bareContainerID(ctx.status.target?.containerID),
    paths: live.paths,
    maxFileBytes: live.maxFileBytes,
    redactEnvironment: live.redactEnvironment,
    declaredPorts: declaredPorts(pod),
    clusterCIDRs: ranges.cidrs,
  });
  const base = collectorBase(ctx.caseFile, 'live');
  await ctx.caseFile.record(COLLECTOR_STARTED, { prefix: 'live', base, container: debug, command, clusterRanges: ranges }, 'LiveStateCaptured');

  const timeoutMs = live.timeoutSeconds * 1000;
  const exec = await execStream(ctx.kube, { namespace: pod.metadata!.namespace!, pod: pod.metadata!.name!, container: debug }, command, timeoutMs);
  let output: CollectorOutput;
  try {
    output = await captureCollectorOutput(exec.stdout, ctx.caseFile, { expectPrefix: 'live', base, phase: 'LiveStateCaptured', detail: { collector: debug } });
  } finally {
    exec.abort();
  }
  const ended = await exec.result.then(
    (r) => ({ ok: r.exitCode === 0, text: r.exitCode === 0 ? 'exited 0' : `exited ${r.exitCode}: ${r.stderrTail.trim().slice(-500)}`, timeout: false }),
    (err: unknown) => ({ ok: false, text: errorMessage(err), timeout: err instanceof ExecTimeoutError }),
  );
  return finish(ctx, output, ended, base, 'LiveStateCaptured');
}

/** Shared by the live and node collectors: notes to the case file, findings to status, one outcome. */
export async function finish(
  ctx: PhaseContext,
  output: CollectorOutput,
  ended: { ok: boolean; text: string; timeout: boolean },
  base: string,
  phase: 'LiveStateCaptured' | 'NodeStateCaptured',
): Promise<PhaseOutcome> {
  await ctx.caseFile.writeJSON(`${base}/collector-notes.json`, { notes: output.notes, droppedNotes: output.droppedNotes, problems: output.problems, summary: output.summary ?? null, exit: ended.text }, { phase });
  const findings = await readFindings(ctx, `${base}/findings.json`);
  ctx.status.findings = mergeFindings(ctx.status.findings ?? [], findings);
  const counts = output.summary ? Object.entries(output.summary).map(([k, v]) => `${v} ${k}`).join(', ') : 'no summary';
  const where = `${output.artifacts.length} artifacts under ${base}/`;
  if (ended.timeout) {
    return { status: 'False', reason: 'CollectorTimeout', message: `the collector did not finish within ${ctx.spec.evidence.live.timeoutSeconds} s (spec.evidence.live.timeoutSeconds); kept what it sent: ${where}` };
  }
  if (!output.complete || !ended.ok || output.problems.length > 0) {
    const why = [!ended.ok ? `collector ${ended.text}` : '', !output.complete ? 'its output ended before the final frame' : '', ...output.problems.slice(0, 3)].filter(Boolean).join('; ');
    return { status: 'False', reason: 'CollectorFailed', message: `${why}; kept what it sent: ${where}` };
  }
  return { status: 'True', reason: 'Captured', message: `${where} (${counts}); ${findings.length} findings` };
}

async function readFindings(ctx: PhaseContext, artifact: string): Promise<Finding[]> {
  if (!ctx.caseFile.has(artifact)) return [];
  try {
    const parsed = JSON.parse(await ctx.caseFile.readText(artifact)) as unknown;
    const list = Array.isArray(parsed) ? parsed : ((parsed as { findings?: unknown[] }).findings ?? []);
    return list.filter(isFinding).map((f) => ({ severity: f.severity, kind: f.kind, summary: f.summary.slice(0, 500), artifact: f.artifact }));
  } catch (err) {
    ctx.log.warn({ artifact, err: errorMessage(err) }, 'findings artifact unreadable');
    return [];
  }
}

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;

function isFinding(f: unknown): f is Finding {
  const x = f as Partial<Finding> | null;
  return !!x && SEVERITIES.includes(x.severity as never) && typeof x.kind === 'string' && typeof x.summary === 'string' && typeof x.artifact === 'string';
}

/** Most severe first, bounded; a repeated run replaces nothing already reported. */
export function mergeFindings(existing: Finding[], added: Finding[], limit = MAX_STATUS_FINDINGS): Finding[] {
  const key = (f: Finding) => `${f.kind}\0${f.summary}`;
  const seen = new Set(existing.map(key));
  const all = [...existing, ...added.filter((f) => isFinding(f) && !seen.has(key(f)))];
  return all.sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity)).slice(0, limit);
}

export function collectorCommand(o: {
  containerID: string;
  paths: string[];
  maxFileBytes: number;
  redactEnvironment: boolean;
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
    ...(o.redactEnvironment ? ['--redact-environment'] : []),
    ...(o.declaredPorts.length ? ['--declared-ports', o.declaredPorts.join(',')] : []),
    ...(o.clusterCIDRs.length ? ['--cluster-cidrs', o.clusterCIDRs.join(',')] : []),
  ];
}

/** `containerd://abc…` -> `abc…` (the ID as it appears in cgroup paths). */
export function bareContainerID(id: string | undefined): string {
  return (id ?? '').replace(/^[a-z0-9-]+:\/\//, '');
}

/** Ports the pod spec declares, as `tcp/8080`: a listener outside this list is a finding. */
export function declaredPorts(pod: V1Pod): string[] {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const ports = containers.flatMap((c) => (c.ports ?? []).map((p) => `${(p.protocol ?? 'TCP').toLowerCase()}/${p.containerPort}`));
  return [...new Set(ports)].sort();
}
