// report.md: the incident note a reviewer reads first, with the same sections as report.html. Pure:
// everything comes from the status, the custody log and what gather read from the artifacts, so the
// report can never claim something the case file does not hold. Case text is escaped (src/report/text.ts).
import type { Condition, ContainmentStatus, Finding, InvestigationSpec, InvestigationStatus, LiveStatus, TargetStatus } from '../api/investigation.js';
import type { CaseFacts } from './facts.js';
import { auditTrail, evidenceListing, findingsBySeverity, readingNotes, timelineRows, whatHappened } from './sections.js';
import { mdCode, mdText } from './text.js';
import { buildTimeline, type TimelineCustodyRecord } from './timeline.js';

export interface ReportInput {
  namespace: string;
  name: string;
  uid: string;
  caseDir: string;
  spec: InvestigationSpec;
  target?: TargetStatus;
  containment?: ContainmentStatus;
  conditions: Condition[];
  findings: Finding[];
  /** What casefile added to the scene to observe it. */
  live?: LiveStatus;
  /** Alerts the intake attached to this case (the first one opened it). */
  alerts?: InvestigationStatus['alerts'];
  artifacts: { artifact: string; sha256: string; bytes: number; truncated?: boolean }[];
  /** custody.jsonl as recorded when the report was written: the timeline's backbone. */
  custody?: readonly TimelineCustodyRecord[];
  /** Negative findings and limitations recorded in the custody log, in order. */
  notes: { phase?: string; kind: 'negative-finding' | 'limitation' | 'refused'; text: string }[];
  generatedAt: string;
  /** What the artifacts say, read at the seal (src/report/gather.ts): the timeline's dated facts, audit, indicators. */
  facts?: CaseFacts;
  /** The key that will sign the seal (the report is written before it), or why the case will not be signed. */
  signing?: { keyFingerprint: string } | { unsigned: string };
}

/** A table cell or list item of case text. */
const cell = mdText;

export function renderReport(input: ReportInput): string {
  const { spec, target } = input;
  const entries = buildTimeline(input);
  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);
  push(`# Incident case file: ${mdText(input.namespace)}/${mdText(input.name)}`, '');
  push(`Investigation UID \`${input.uid}\`; case directory ${mdCode(input.caseDir)}; report generated ${input.generatedAt}.`, '');

  push('## What happened', '');
  push(...whatHappened(input, entries).map((s) => `- ${mdText(s)}`), '');

  push('## Detection', '');
  if (spec.alert) {
    push(`- Source: ${mdText(spec.alert.source)}`);
    if (spec.alert.rule) push(`- Rule: ${mdText(spec.alert.rule)}`);
    if (spec.alert.priority) push(`- Priority: ${mdText(spec.alert.priority)}`);
    if (spec.alert.time) push(`- Alert time: ${mdText(spec.alert.time)}`);
    push(spec.alert.raw ? '- The original payload is kept verbatim in `alert.json`.' : '- No raw payload was attached.');
    if (input.alerts && input.alerts.count > 1) {
      push(`- ${input.alerts.count} alerts about this pod reached the case (first received ${mdText(input.alerts.first ?? '?')}, last ${mdText(input.alerts.last ?? '?')}); those journaled before the seal are in \`alerts/\`.`);
    }
  } else {
    push('- No alert was attached: the case was opened by hand (`kubectl apply`) or by GitOps.');
  }
  push('');

  push('## Identity chain', '');
  push('| link | value |', '|---|---|');
  push(`| namespace / pod | ${cell(input.namespace)} / ${cell(spec.target.pod)} |`);
  push(`| pod UID | ${cell(target?.podUID ?? 'not resolved')} |`);
  push(`| node | ${cell(target?.node ?? 'not resolved')} |`);
  push(`| container | ${cell(target?.container ?? 'not resolved')} |`);
  push(`| container ID | ${cell(target?.containerID ?? 'not resolved')} |`);
  push(`| image (as specified) | ${cell(target?.image ?? 'not resolved')} |`);
  push(`| image digest (as run) | ${cell(target?.imageID ?? 'not resolved')} |`);
  push(`| ServiceAccount | ${cell(target?.serviceAccount ?? 'not resolved')} |`);
  push(`| owners | ${cell(target?.owners?.map((o) => `${o.kind}/${o.name} (${o.uid})`).join(' -> ') || 'none')} |`);
  push('');
  if (target?.derivation?.length) {
    push('How each link was derived:', '', ...target.derivation.map((d) => `- ${mdText(d)}`), '');
  }

  push('## Findings by severity', '');
  const groups = findingsBySeverity(input.findings);
  if (groups.length === 0) {
    push(spec.evidence.live.enabled
      ? '- No suspicious live state was found by the collectors.'
      : '- Live-state capture was not enabled for this case (`spec.evidence.live.enabled: false`): processes, sockets and open files were not recorded.');
  }
  for (const g of groups) push(`### ${g.severity} (${g.findings.length})`, '', ...g.findings.map((f) => `- **${f.severity}** ${mdText(f.kind)}: ${mdText(f.summary)} (${mdCode(f.artifact)})`), '');
  push('');

  push('## Audit trail', '');
  push(...auditLines(input), '');

  push('## Indicators', '');
  push(...indicatorLines(input), '');

  push('## Containment and its state', '');
  push(...containmentItems(input).map((item) => `- ${item}`));
  push('');

  push('## Timeline', '');
  const { listed, omitted } = timelineRows(entries);
  push('| time (UTC) | from | what | see |', '|---|---|---|---|');
  for (const e of listed) push(`| ${cell(e.time)} | ${cell(e.subject ? `${e.source}: ${e.subject}` : e.source)} | ${cell(e.what)} | ${mdCode(e.artifact)} |`);
  if (omitted) push('', `${omitted} more entries are in \`timeline.jsonl\`.`);
  push('');

  push('## Evidence', '');
  push('Every file below is listed in `MANIFEST.sha256` (`sha256sum -c MANIFEST.sha256` verifies them) and was recorded in `custody.jsonl` as it was written.', '');
  const evidence = evidenceListing(input.artifacts);
  push('| artifact | bytes | sha256 |', '|---|---:|---|');
  for (const a of evidence.listed) push(`| ${cell(a.artifact)}${a.truncated ? ' (truncated at limitBytes)' : ''} | ${a.bytes} | \`${a.sha256}\` |`);
  for (const d of evidence.rest) push(`| ${d.files} more file(s) under ${mdCode(d.directory)}: see \`MANIFEST.sha256\` | ${d.bytes} | |`);
  push('');
  push(...signingLines(input.signing), '');

  push('## Observer effect', '');
  push(...observerEffect(input).map((item) => `- ${item}`));
  push('');

  push('## Phases', '');
  push('| condition | status | reason | message |', '|---|---|---|---|');
  for (const c of input.conditions) push(`| ${c.type} | ${c.status} | ${cell(c.reason)} | ${cell(c.message)} |`);
  push('');

  push('## What could not be captured, and why', '');
  const failed = input.conditions.filter((c) => c.status === 'False');
  const reading = readingNotes(input);
  if (input.notes.length === 0 && failed.length === 0 && reading.length === 0) push('- Nothing: every requested capture succeeded.');
  for (const c of failed) push(`- ${c.type} failed (${mdText(c.reason)}): ${mdText(c.message)}`);
  for (const n of input.notes) push(`- ${n.phase ? `${mdText(n.phase)}: ` : ''}${mdText(n.text)}`);
  for (const n of reading) push(`- report: ${mdText(n)}`);
  push('');

  push('## Limitations of this record', '');
  push('- Kubernetes events are kept for about an hour; older ones were already gone when the case opened.');
  push('- Logs are what the kubelet still holds (rotated logs are not included) and are capped by `limitBytes`.');
  push('- The case file proves what the API server and kubelet reported at capture time; it is not a full disk or memory image.');
  push('- The timeline keeps the most recent entries of each artifact source and says how many it left out; `timeline.jsonl` is the same list.');
  push('');
  return lines.join('\n');
}

function auditLines(input: ReportInput): string[] {
  const trail = auditTrail(input);
  if (trail.absent) return [`- ${mdText(trail.absent)}`];
  const out = [`Who acted on the pod (${trail.podTotal} record(s) about it):`, ''];
  if (trail.podActions.length === 0) out.push('- No exec, attach, port-forward, ephemeral container, change or deletion of the pod on record.');
  else out.push('| time (UTC) | user | request | user agent |', '|---|---|---|---|', ...trail.podActions.map((a) => `| ${cell(a.time)} | ${cell(a.user)} | ${cell(a.request)} | ${cell(a.userAgent)} |`));
  out.push('', `What the pod's token was used for (${trail.tokenTotal} request(s)):`, '');
  if (trail.tokenSummary.length === 0) out.push("- No requests made with the pod's token on record.");
  else out.push('| verb | resource | namespace | requests |', '|---|---|---|---:|', ...trail.tokenSummary.map((t) => `| ${cell(t.verb)} | ${cell(t.resource)} | ${cell(t.namespace || '(cluster)')} | ${t.count} |`));
  out.push('', `From ${trail.artifacts.map(mdCode).join(' and ')}.`);
  return out;
}

function indicatorLines(input: ReportInput): string[] {
  const indicators = input.facts?.indicators;
  if (!indicators) return ['- No indicators artifact in this case (`live/indicators.json` is written by the live capture).'];
  if (indicators.list.length === 0) return ['- The live capture found no URLs, IP addresses or domains.'];
  return [
    '| kind | value | seen in |', '|---|---|---|',
    ...indicators.list.map((i) => `| ${cell(i.kind)} | ${mdCode(i.value)} | ${i.seen.map((s) => `${mdCode(s.artifact)}${s.offset === undefined ? '' : ` @${s.offset}`}`).join(', ')}${i.seenOmitted ? `, and ${i.seenOmitted} more` : ''} |`),
  ];
}

/** What containment changed and did not change, one item a line (Markdown inline code in backticks). */
export function containmentItems(input: ReportInput): string[] {
  const { spec } = input;
  const c = input.containment ?? {};
  if (!spec.containment.network.isolate && !spec.containment.rbac.narrow && !spec.containment.cordonNode) {
    return ['No containment was requested: the pod, its traffic and its permissions were left as they were.'];
  }
  const out: string[] = [];
  out.push(`Order: ${spec.containment.order}${spec.containment.order === 'ContainFirst' ? ' (isolated before the evidence was captured: the manifest shows the incident label)' : ' (evidence captured before anything was changed)'}.`);
  if (c.label) out.push(`Network: the suspect pod alone carries \`${c.label}\`; NetworkPolicy \`${c.networkPolicy}\` denies its ingress and egress.`);
  for (const p of c.patchedPolicies ?? []) out.push(`NetworkPolicy \`${p.name}\` also selected the pod and allowed traffic: patched to exclude the incident label (original: \`${p.original}\`).`);
  if (c.verification) out.push(`Enforcement ${c.verification.blocked ? 'verified' : 'NOT verified'} at ${c.verification.at}: ${(c.verification.details ?? []).join('; ')}.`);
  for (const r of c.rbac ?? []) out.push(`RBAC: ${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}: ${r.action} (original: \`${r.original}\`).`);
  for (const e of c.remainingExposure ?? []) out.push(`Remaining exposure (not narrowed): ${e}.`);
  if (c.sharedServiceAccountPods?.length) out.push(`Blast radius of RBAC narrowing: these pods run as the same ServiceAccount: ${c.sharedServiceAccountPods.join(', ')}.`);
  if (c.cordoned) out.push(`Node ${input.target?.node ?? ''} cordoned${c.nodeWasUnschedulable ? ' (it was already unschedulable)' : ''}: no new pods land there; running processes are not stopped.`);
  out.push('What containment does not do: connections established before isolation may survive on some CNIs; RBAC changes stop future API calls, not a token already copied; cordon does not stop running processes.');
  return out;
}

/** How the sealed case is signed, or why it is not. */
export function signingLines(signing: ReportInput['signing']): string[] {
  if (signing && 'keyFingerprint' in signing) {
    return [
      `This report is written before the seal; the sealed case is then signed with Ed25519 key \`${signing.keyFingerprint}\`: \`MANIFEST.sha256.sig\` signs the manifest and the custody log up to its \`sealed\` record ` +
        '(without that file, signing failed and the EvidenceSealed condition says why). The public key is in ConfigMap `casefile-signing-keys` of the operator\'s namespace; `casefile verify --key <public key> <case>` checks who signed.',
    ];
  }
  return [`This case is not signed (${signing?.unsigned ?? 'no signing key'}): the manifest and custody chain still verify, but nothing proves who sealed them.`];
}

/** What casefile changed in the scene by looking at it, one item a line: a reviewer must be able to subtract it. */
export function observerEffect(input: ReportInput): string[] {
  const live = input.live ?? {};
  const out: string[] = [];
  if (live.debugContainer) {
    out.push(
      `casefile added the ephemeral container \`${live.debugContainer}\` (image \`${live.image ?? ''}\`${live.imageID ? `, ${live.imageID}` : ''}) to the pod at ${live.launchedAt ?? 'an unrecorded time'}, targeting container \`${input.target?.container ?? ''}\`. Kubernetes keeps it in \`spec.ephemeralContainers\` for the pod's life; it cannot be removed.`,
      'It ran as root with only the capabilities SYS_PTRACE and DAC_READ_SEARCH, a read-only root filesystem and no privilege escalation. Its processes (an idle `sleep`, which exits on its own, and the collector) shared the suspect\'s process namespace and are marked `observer` in `live/processes.json`; a process list taken inside the suspect during the capture would show them.',
      'The collectors only read `/proc` and files through `/proc/<pid>/root`; no command ran inside the suspect container. Reading a file updates its access time where the filesystem records one.',
      '`k8s/pod.yaml` was captured before the debug container was added, so it shows the pod as casefile found it.',
    );
  } else if (input.spec.evidence.live.enabled) {
    out.push('Live capture was requested, but no debug container was added (see the DebugContainerLaunched condition).');
  }
  if (live.nodeCollector) {
    out.push(
      `A node collector pod \`${live.nodeCollector.namespace}/${live.nodeCollector.pod}\` ran on node \`${input.target?.node ?? ''}\` with the host's PID namespace and read-only mounts of \`/proc\`, \`/run/containerd\` and \`/var/lib/containerd\`; it was ${live.nodeCollector.removed ? 'removed after its run' : 'NOT confirmed removed: check the collector namespace'} (both recorded in \`custody.jsonl\`).`,
    );
  }
  if (out.length === 0) out.push('casefile added nothing to the pod or its node to observe it (no live or node capture was requested).');
  return out;
}
