// The audit window of a case, closed once and recorded in custody: a rerun (a restart, a wait for the
// API server's next batch) copies the same window, whatever time it is then.
import { parse } from 'yaml';
import type { SuspectIdentity } from '../../audit/correlate.js';
import { TerminalError } from '../../errors.js';
import type { PhaseContext } from '../phase.js';

const WINDOW_ACTION = 'audit-window';
/** Without the pod's start time (no live pod, no manifest), the window opens this long before the case. */
const FALLBACK_LOOKBACK_MS = 3600_000;

export interface AuditWindow {
  from: string;
  until: string;
  fromSource: 'pod-start' | 'lookback' | 'case-created-minus-1h';
  identity: Omit<SuspectIdentity, 'operatorUsername'>;
}

export async function closeWindow(ctx: PhaseContext): Promise<AuditWindow> {
  const recorded = ctx.caseFile.custodyRecords().find((r) => r.action === WINDOW_ACTION)?.detail as AuditWindow | undefined;
  if (recorded) return recorded;
  const target = ctx.status.target;
  if (!target?.podUID) throw new TerminalError('the target pod has no UID in status.target: nothing to correlate', 'TargetUnavailable');
  const until = new Date().toISOString();
  const lookback = ctx.spec.evidence.audit.lookbackSeconds;
  let from: string;
  let fromSource: AuditWindow['fromSource'];
  const started = lookback === undefined ? await podStart(ctx) : undefined;
  if (lookback !== undefined) {
    from = new Date(Date.parse(until) - lookback * 1000).toISOString();
    fromSource = 'lookback';
  } else if (started) {
    from = started;
    fromSource = 'pod-start';
  } else {
    from = new Date(Date.parse(ctx.investigation.metadata.creationTimestamp ?? until) - FALLBACK_LOOKBACK_MS).toISOString();
    fromSource = 'case-created-minus-1h';
  }
  const window: AuditWindow = {
    from,
    until,
    fromSource,
    identity: { namespace: ctx.investigation.metadata.namespace, pod: ctx.spec.target.pod, podUID: target.podUID, serviceAccount: target.serviceAccount, from, until },
  };
  await ctx.caseFile.record(WINDOW_ACTION, window as unknown as Record<string, unknown>, 'AuditCorrelated');
  return window;
}

/** The pod's start (creation, so an init container's requests count too): live if it still exists, else from the captured manifest. */
async function podStart(ctx: PhaseContext): Promise<string | undefined> {
  const live = await ctx.livePod();
  const fromLive = live?.metadata?.creationTimestamp;
  if (fromLive) return new Date(fromLive).toISOString();
  if (!ctx.caseFile.has('k8s/pod.yaml')) return undefined;
  const manifest = parse(await ctx.caseFile.readText('k8s/pod.yaml')) as { metadata?: { creationTimestamp?: string } } | null;
  const created = manifest?.metadata?.creationTimestamp;
  return created && !Number.isNaN(Date.parse(created)) ? new Date(created).toISOString() : undefined;
}
