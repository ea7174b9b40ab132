// LogsCaptured: every container's log (init, app and ephemeral), current and previous, streamed
// from the API server straight into the case file with limitBytes/sinceSeconds. A log that cannot
// exist (the container never restarted, never started) is written down as a negative finding.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { errorCode } from '../kube/errors.js';
import { errorMessage, RetryableError } from '../errors.js';
import { sanitizeSegment } from '../evidence/paths.js';
import { podGone } from './manifest-captured.js';
import { type Phase, type PhaseContext, type PhaseOutcome } from './phase.js';
import { allStatuses } from './shared/container-choice.js';

interface LogEntry {
  container: string;
  kind: 'init' | 'app' | 'ephemeral';
  stream: 'current' | 'previous';
  artifact?: string;
  bytes?: number;
  sha256?: string;
  truncated?: boolean;
  absent?: string;
}

export const logsCaptured: Phase = {
  condition: 'LogsCaptured',
  needsTarget: true,
  async run(ctx): Promise<PhaseOutcome> {
    const pod = await ctx.livePod();
    if (!pod) return podGone(ctx.spec.target.pod);
    const entries: LogEntry[] = [];
    for (const { name, kind } of containersOf(pod)) {
      const status = allStatuses(pod).find((s) => s.name === name);
      entries.push(await captureLog(ctx, pod, name, kind, 'current', status));
      if (ctx.spec.evidence.logs.previous) {
        entries.push(await captureLog(ctx, pod, name, kind, 'previous', status));
      }
    }
    await ctx.caseFile.writeJSON('logs/index.json', {
      limitBytes: ctx.spec.evidence.logs.limitBytes,
      sinceSeconds: ctx.spec.evidence.logs.sinceSeconds,
      timestamps: true,
      entries,
    }, { phase: 'LogsCaptured' });
    const captured = entries.filter((e) => e.artifact);
    const truncated = captured.filter((e) => e.truncated).map((e) => e.artifact);
    return {
      status: 'True',
      reason: 'Captured',
      message: `${captured.length} log(s) captured, ${entries.length - captured.length} recorded as absent` +
        (truncated.length ? `; truncated at limitBytes: ${truncated.join(', ')}` : ''),
    };
  },
};

function containersOf(pod: V1Pod): { name: string; kind: LogEntry['kind'] }[] {
  return [
    ...(pod.spec?.initContainers ?? []).map((c) => ({ name: c.name, kind: 'init' as const })),
    ...(pod.spec?.containers ?? []).map((c) => ({ name: c.name, kind: 'app' as const })),
    ...(pod.spec?.ephemeralContainers ?? []).map((c) => ({ name: c.name, kind: 'ephemeral' as const })),
  ];
}

/** Why a log cannot exist, from the kubelet's status, before asking for it. */
function absentReason(stream: LogEntry['stream'], status: V1ContainerStatus | undefined): string | undefined {
  if (!status) return 'the kubelet reports no status for this container';
  if (stream === 'previous') {
    return status.restartCount > 0 ? undefined : 'no previous logs: the container has not restarted';
  }
  if (!status.containerID) {
    const waiting = status.state?.waiting;
    return `no logs: the container never started${waiting ? ` (${waiting.reason}: ${waiting.message ?? ''})` : ''}`;
  }
  return undefined;
}

async function captureLog(
  ctx: PhaseContext,
  pod: V1Pod,
  container: string,
  kind: LogEntry['kind'],
  stream: LogEntry['stream'],
  status: V1ContainerStatus | undefined,
): Promise<LogEntry> {
  const entry: LogEntry = { container, kind, stream };
  const artifact = `logs/${sanitizeSegment(container)}${stream === 'previous' ? '.previous' : ''}.log`;
  const existing = ctx.caseFile.get(artifact);
  if (existing) return { ...entry, artifact, bytes: existing.bytes, sha256: existing.sha256, truncated: existing.truncated };
  const absent = absentReason(stream, status);
  if (absent) return recordAbsent(ctx, entry, absent);

  const { limitBytes, sinceSeconds } = ctx.spec.evidence.logs;
  let response;
  try {
    response = await ctx.kube.streamGet(
      `/api/v1/namespaces/${encodeURIComponent(pod.metadata!.namespace!)}/pods/${encodeURIComponent(pod.metadata!.name!)}/log`,
      { container, previous: stream === 'previous', limitBytes, sinceSeconds: sinceSeconds ?? undefined, timestamps: true },
    );
  } catch (err) {
    // 400 is the kubelet saying this log does not exist (e.g. the previous container was removed).
    if (errorCode(err) === 400 || errorCode(err) === 404) return recordAbsent(ctx, entry, `no ${stream} logs: ${errorMessage(err)}`);
    throw new RetryableError(`reading ${stream} logs of ${container}: ${errorMessage(err)}`);
  }
  const record = await ctx.caseFile.captureOnce(artifact, () => response, {
    phase: 'LogsCaptured',
    limitBytes,
    detail: { container, kind, stream, limitBytes, sinceSeconds },
  });
  if (record.truncated) {
    await ctx.caseFile.record('limitation', {
      finding: `${stream} log of ${container} reached limitBytes (${limitBytes}); anything beyond was not captured`,
    }, 'LogsCaptured');
  }
  return { ...entry, artifact, bytes: record.bytes, sha256: record.sha256, truncated: record.truncated };
}

async function recordAbsent(ctx: PhaseContext, entry: LogEntry, why: string): Promise<LogEntry> {
  await ctx.caseFile.record('negative-finding', { finding: `${entry.container} (${entry.kind}): ${why}` }, 'LogsCaptured');
  return { ...entry, absent: why };
}
