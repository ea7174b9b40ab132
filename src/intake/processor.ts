// What happens to an authenticated, well-formed alert: find its pod, match it against every
// ResponsePolicy, journal one line per matching (non-dry-run) policy, and only then answer 202. The
// Investigation itself is created by the worker, never waited for by the sender: from the journaled
// alert, or (ContainFirst) while the alert is being journaled, so containment does not wait for the fsync.
import type { Logger } from '../log.js';
import { outputField, type FalcoAlert, type ParsedAlert } from './alert-schema.js';
import { JournalFullError, type AlertJournal } from './journal.js';
import type { AlertEntry, JournalEntry } from './journal-format.js';
import { investigationName } from './naming.js';
import type { ActivePolicy } from './policy-cache.js';
import type { ResolvedPod } from './pod-resolver.js';
import { IntakeUnavailableError, type AcceptResult, type IntakeOutcome } from './server.js';
import { errorMessage } from '../errors.js';

export interface AlertProcessorDeps {
  resolver: { resolve(alert: FalcoAlert): Promise<ResolvedPod | undefined> };
  policies: { matching(alert: FalcoAlert, namespace: string): ActivePolicy[] };
  journal: () => AlertJournal | undefined;
  /** Alerts about to be journaled: ContainFirst cases are opened meanwhile (AlertWorker.openAhead). */
  openAhead?: (entries: Omit<AlertEntry, 'seq'>[]) => void;
  onCommitted: (entries: JournalEntry[]) => void;
  log: Logger;
  now?: () => Date;
}

export function alertProcessor(deps: AlertProcessorDeps): (parsed: ParsedAlert, raw: string) => Promise<AcceptResult> {
  return async ({ alert, sender }, raw) => {
    const receivedAt = (deps.now?.() ?? new Date()).toISOString();
    const about = { rule: alert.rule, priority: alert.priority, hostname: alert.hostname, source: sender };
    let pod: ResolvedPod | undefined;
    try {
      pod = await deps.resolver.resolve(alert);
    } catch (err) {
      throw new IntakeUnavailableError(`cannot look up the alert's pod right now (${errorMessage(err)}); retry`);
    }
    if (!pod) {
      deps.log.info({ ...about, containerID: outputField(alert, 'container.id'), pod: outputField(alert, 'k8s.pod.name'), namespace: outputField(alert, 'k8s.ns.name') }, 'alert names no existing pod (host event or pod gone): counted, nothing opened');
      return { outcomes: ['no_pod'], body: { status: 'no_pod', message: 'the alert names no existing pod (a host event, or the pod is gone): counted and logged, no Investigation opened' } };
    }
    const podRef = `${pod.namespace}/${pod.name}`;
    const matched = deps.policies.matching(alert, pod.namespace);
    if (matched.length === 0) {
      deps.log.debug({ ...about, pod: podRef }, 'alert matches no ResponsePolicy');
      return { outcomes: ['unmatched'], body: { status: 'unmatched', message: 'no ResponsePolicy matches this alert: nothing opened', pod: podRef } };
    }
    const outcomes: IntakeOutcome[] = [];
    const dryRun = matched.filter((p) => p.spec.dryRun);
    for (const p of dryRun) {
      outcomes.push('dry_run');
      deps.log.info({ ...about, pod: podRef, policy: `${p.namespace}/${p.name}`, wouldOpen: `${pod.namespace}/${investigationName(p.namespace, p.name, pod.name, pod.uid)}` }, 'dry-run ResponsePolicy matched: nothing opened');
    }
    const live = matched.filter((p) => !p.spec.dryRun);
    if (live.length === 0) {
      return { outcomes, body: { status: 'dry_run', message: 'only dry-run ResponsePolicies match: recorded in the operator log, nothing opened', policies: dryRun.map((p) => `${p.namespace}/${p.name}`) } };
    }
    const entries: Omit<AlertEntry, 'seq'>[] = live.map((p) => ({
      type: 'alert',
      receivedAt,
      source: sender,
      policy: { namespace: p.namespace, name: p.name },
      investigation: { namespace: pod.namespace, name: investigationName(p.namespace, p.name, pod.name, pod.uid) },
      pod: pod.container ? { name: pod.name, uid: pod.uid, container: pod.container } : { name: pod.name, uid: pod.uid },
      alert: { rule: alert.rule, priority: alert.priority, time: alert.time },
      template: p.template,
      raw,
    }));
    const journal = deps.journal();
    if (!journal) throw new IntakeUnavailableError('the alert journal is not open; retry');
    deps.openAhead?.(entries);
    let committed: JournalEntry[];
    try {
      committed = await journal.append(entries);
    } catch (err) {
      if (err instanceof JournalFullError) throw new IntakeUnavailableError(err.message, 'journal_full');
      throw new IntakeUnavailableError(`the alert could not be journaled (${errorMessage(err)}); retry`);
    }
    deps.onCommitted(committed);
    outcomes.push('accepted', ...live.map((): IntakeOutcome => 'matched'));
    return {
      outcomes,
      body: {
        status: 'accepted',
        pod: podRef,
        investigations: committed.map((e) => `${e.investigation.namespace}/${e.investigation.name}`),
        // The alert's journal position; one entry per matching policy, numbered consecutively from here.
        seq: committed[0]!.seq,
      },
    };
  };
}
