// report.html: the case file as one page a person reads in a browser. It opens with the incident's
// timeline as an inline SVG, then the sections a responder scans. The page is self-contained (inline
// CSS, no script, nothing loaded, a CSP that forbids all else) because it is opened from an evidence
// store, often offline. Everything from the case is hostile: a suspect names its files, processes and
// alert fields. Case text only ever lands in element content, escaped by `escapeHtml()`, never in an
// attribute or a URL; the markup around it is fixed strings.
import { containmentItems, observerEffect, signingLines, type ReportInput } from './render.js';
import { auditTrail, evidenceListing, findingsBySeverity, keyMoments, readingNotes, timelineRows, whatHappened } from './sections.js';
import { timelineSvg } from './svg.js';
import { escapeHtml } from './text.js';
import { buildTimeline } from './timeline.js';

export { escapeHtml };

/** Escaped text with the report's Markdown inline code (`like this`) shown as code. */
function inline(value: string): string {
  return escapeHtml(value).replace(/`([^`]*)`/g, '<code>$1</code>');
}

const row = (cells: string[]): string => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;

function table(headers: string[], rows: string[], empty: string): string {
  if (rows.length === 0) return `<p class="none">${escapeHtml(empty)}</p>`;
  return `<table><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`;
}

const list = (items: string[]): string => `<ul>\n${items.map((i) => `<li>${i}</li>`).join('\n')}\n</ul>`;

const section = (title: string, body: string): string => `<section>\n<h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;

/** One line a reader can act on: did every step succeed, and if not which did not. */
function verdict(input: ReportInput): string {
  const failed = input.conditions.filter((c) => c.status === 'False');
  const pending = input.conditions.filter((c) => c.status === 'Unknown');
  if (failed.length === 0 && pending.length === 0) return 'Every requested step succeeded; the case file is sealed.';
  const parts = [];
  if (failed.length) parts.push(`${failed.length} step(s) failed: ${failed.map((c) => `${c.type} (${c.reason})`).join(', ')}`);
  if (pending.length) parts.push(`${pending.length} step(s) unfinished: ${pending.map((c) => c.type).join(', ')}`);
  return `${parts.join('; ')}. The case file is sealed with what was captured.`;
}

function containmentState(input: ReportInput): string {
  const { spec } = input;
  const c = input.containment ?? {};
  const done: string[] = [];
  if (c.networkPolicy) done.push(`network isolated (enforcement ${c.verification ? (c.verification.blocked ? 'verified' : 'NOT verified') : 'not checked'})`);
  if (c.rbac?.length) done.push(`RBAC narrowed (${c.rbac.length} binding(s))`);
  if (c.cordoned) done.push('node cordoned');
  const asked = spec.containment.network.isolate || spec.containment.rbac.narrow || spec.containment.cordonNode;
  if (done.length) return `${done.join('; ')}; order ${spec.containment.order}`;
  return asked ? 'requested, but nothing was applied (see the failures below)' : 'none requested';
}

function summary(input: ReportInput): string {
  const { spec, target } = input;
  const alert = spec.alert;
  const items: [string, string][] = [
    ['Verdict', verdict(input)],
    ['Containment', containmentState(input)],
    ['Target', `pod ${input.namespace}/${spec.target.pod}${target?.container ? `, container ${target.container}` : ''}${target?.node ? ` on node ${target.node}` : ''}`],
    ['Pod UID', target?.podUID ?? 'not resolved'],
    ['Image (as run)', target?.imageID ?? target?.image ?? 'not resolved'],
    ['Alert', alert ? [alert.source, alert.priority, alert.rule, alert.time].filter(Boolean).join(' · ') : 'none: opened by hand or by GitOps'],
    ['Investigation UID', input.uid],
    ['Case directory', input.caseDir],
    ['Report generated', input.generatedAt],
  ];
  return `<dl class="summary">\n${items.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('\n')}\n</dl>`;
}

function identity(input: ReportInput): string {
  const t = input.target ?? {};
  const links: [string, string | undefined][] = [
    ['namespace / pod', `${input.namespace} / ${input.spec.target.pod}`],
    ['pod UID', t.podUID],
    ['node', t.node],
    ['container', t.container],
    ['container ID', t.containerID],
    ['image (as specified)', t.image],
    ['image digest (as run)', t.imageID],
    ['ServiceAccount', t.serviceAccount],
    ['owners', t.owners?.map((o) => `${o.kind}/${o.name} (${o.uid})`).join(' -> ') || 'none'],
  ];
  const chain = table(['link', 'value'], links.map(([k, v]) => row([escapeHtml(k), escapeHtml(v ?? 'not resolved')])), '');
  return t.derivation?.length ? `${chain}\n<p>How each link was derived:</p>\n${list(t.derivation.map(escapeHtml))}` : chain;
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; color: #1b1f24; background: #fff; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; } h3 { font-size: 1rem; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td, dd, li, p { overflow-wrap: anywhere; white-space: pre-wrap; }
code, .mono { font-family: ui-monospace, monospace; font-size: .9em; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; background: #f6f8fa; padding: .75rem; border: 1px solid #d0d7de; }
dt { font-weight: 600; } dd { margin: 0; }
tr.custody td:nth-child(2) { color: #0550ae; } tr.alert td:nth-child(2) { color: #9a6700; } tr.finding td:nth-child(2) { color: #cf222e; } tr.condition td:nth-child(2) { color: #57606a; } tr.audit td:nth-child(2) { color: #8250df; }
.none { color: #57606a; font-style: italic; }
figure.overview { margin: 1rem 0; } svg.timeline { width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg .track { stroke: #d0d7de; } svg .lane-label { text-anchor: end; fill: #57606a; } svg .earlier { fill: #57606a; font-style: italic; }
svg circle { fill: #0550ae; } svg .alert circle { fill: #9a6700; } svg .finding circle, svg circle.suspicious { fill: #cf222e; } svg .audit circle { fill: #8250df; }
svg .moment line { stroke: #cf222e; stroke-dasharray: 4 3; } svg .moment text { fill: #1b1f24; font-weight: 600; } svg .axis line { stroke: #57606a; } svg .axis text { fill: #57606a; }
.severity-critical, .severity-high { color: #cf222e; } .severity-medium { color: #9a6700; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; } h2 { break-after: avoid; } tr, figure.overview, dl.summary { break-inside: avoid; }
  th { background: none; } table { font-size: 9pt; } svg.timeline { max-height: 60vh; }
}
`;

const CSP = "default-src 'none'; style-src 'unsafe-inline'";

function findingsSection(input: ReportInput): string {
  const groups = findingsBySeverity(input.findings);
  if (groups.length === 0) {
    return `<p class="none">${escapeHtml(input.spec.evidence.live.enabled ? 'No suspicious live state was found by the collectors.' : 'No findings. Live-state capture was not enabled for this case.')}</p>`;
  }
  return groups
    .map((g) => `<h3 class="severity-${g.severity}">${g.severity} (${g.findings.length})</h3>\n${table(['kind', 'summary', 'artifact'], g.findings.map((f) => row([escapeHtml(f.kind), escapeHtml(f.summary), `<code>${escapeHtml(f.artifact)}</code>`])), '')}`)
    .join('\n');
}

function auditSection(input: ReportInput): string {
  const trail = auditTrail(input);
  if (trail.absent) return `<p class="none">${escapeHtml(trail.absent)}</p>`;
  const actions = table(['time (UTC)', 'user', 'request', 'user agent'], trail.podActions.map((a) => row([escapeHtml(a.time), escapeHtml(a.user), escapeHtml(a.request), escapeHtml(a.userAgent)])), 'No exec, attach, port-forward, ephemeral container, change or deletion of the pod on record.');
  const tokens = table(['verb', 'resource', 'namespace', 'requests'], trail.tokenSummary.map((t) => row([escapeHtml(t.verb), escapeHtml(t.resource), escapeHtml(t.namespace || '(cluster)'), escapeHtml(t.count)])), 'No requests made with the pod\'s token on record.');
  return [
    `<h3>Who acted on the pod (${trail.podTotal} record(s) about it)</h3>`, actions,
    `<h3>What the pod's token was used for (${trail.tokenTotal} request(s))</h3>`, tokens,
    `<p>From ${trail.artifacts.map((a) => `<code>${escapeHtml(a)}</code>`).join(' and ')}.</p>`,
  ].join('\n');
}

function indicatorsSection(input: ReportInput): string {
  const indicators = input.facts?.indicators;
  if (!indicators) return '<p class="none">No indicators artifact in this case (live/indicators.json is written by the live capture).</p>';
  const seen = (i: { seen: { artifact: string; offset?: number }[]; seenOmitted?: number }) =>
    i.seen.map((s) => `<code>${escapeHtml(s.artifact)}</code>${s.offset === undefined ? '' : ` @${escapeHtml(s.offset)}`}`).join(', ') + (i.seenOmitted ? `, and ${escapeHtml(i.seenOmitted)} more` : '');
  return table(['kind', 'value', 'seen in'], indicators.list.map((i) => row([escapeHtml(i.kind), `<code>${escapeHtml(i.value)}</code>`, seen(i)])), 'The live capture found no URLs, IP addresses or domains.');
}

function evidenceSection(input: ReportInput): string {
  const { listed, rest } = evidenceListing(input.artifacts);
  const rows = listed.map((a) => row([`<code>${escapeHtml(a.artifact)}</code>${a.truncated ? ' (truncated at limitBytes)' : ''}`, escapeHtml(a.bytes), `<code>${escapeHtml(a.sha256)}</code>`]));
  const more = rest.length ? `\n<p>${rest.map((d) => `${escapeHtml(d.files)} more file(s) under <code>${escapeHtml(d.directory)}</code> (${escapeHtml(d.bytes)} bytes)`).join('; ')}: each with its SHA-256 in <code>MANIFEST.sha256</code>.</p>` : '';
  return `<p>Every file below is listed in <code>MANIFEST.sha256</code> (<code>sha256sum -c MANIFEST.sha256</code> verifies them) and was recorded in <code>custody.jsonl</code> as it was written.</p>\n${signingLines(input.signing).map((l) => `<p>${inline(l)}</p>`).join('\n')}\n${table(['artifact', 'bytes', 'SHA-256'], rows, 'No artifacts.')}${more}`;
}

export function renderReportHtml(input: ReportInput): string {
  const entries = buildTimeline(input);
  const { listed, omitted } = timelineRows(entries);
  const timeline = listed.map(
    (e) => `<tr class="${e.source}">${[escapeHtml(e.time), escapeHtml(e.subject ? `${e.source}: ${e.subject}` : e.source), escapeHtml(e.what), escapeHtml(e.artifact)].map((c) => `<td>${c}</td>`).join('')}</tr>`,
  );
  const failures = input.conditions.filter((c) => c.status === 'False').map((c) => `${escapeHtml(c.type)} failed (${escapeHtml(c.reason)}): ${escapeHtml(c.message)}`);
  const notes = [...input.notes.map((n) => `${escapeHtml(n.kind)}${n.phase ? ` · ${escapeHtml(n.phase)}` : ''}: ${escapeHtml(n.text)}`), ...readingNotes(input).map((n) => `report: ${escapeHtml(n)}`)];
  const phases = input.conditions.map((c) => row([escapeHtml(c.type), escapeHtml(c.status), escapeHtml(c.reason), escapeHtml(c.message), escapeHtml(c.lastTransitionTime)]));
  const title = `Incident case file: ${input.namespace}/${input.name}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en" dir="ltr">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<header>\n<h1>${escapeHtml(title)}</h1>\n<figure class="overview">\n${timelineSvg(entries, keyMoments(input, entries))}\n</figure>\n</header>`,
    section('What happened', `${summary(input)}\n${list(whatHappened(input, entries).map(escapeHtml))}`),
    section('Identity chain', identity(input)),
    section('Findings by severity', findingsSection(input)),
    section('Audit trail', auditSection(input)),
    section('Indicators', indicatorsSection(input)),
    section('Containment and its state', `<p>${escapeHtml(`State: ${containmentState(input)}.`)}</p>\n${list(containmentItems(input).map(inline))}`),
    section('Timeline', `${table(['time (UTC)', 'from', 'what', 'see'], timeline, 'Nothing with a recorded time.')}${omitted ? `\n<p>${omitted} more entries are in <code>timeline.jsonl</code>.</p>` : ''}`),
    section('Evidence with hashes', evidenceSection(input)),
    section('Observer effect', list(observerEffect(input).map(inline))),
    section('Phases', table(['condition', 'status', 'reason', 'message', 'last transition'], phases, 'No conditions.')),
    section('What could not be captured, and why', failures.length + notes.length ? list([...failures, ...notes]) : '<p class="none">Nothing: every requested capture succeeded.</p>'),
    section('Limitations of this record', list([
      'Kubernetes events are kept for about an hour; older ones were already gone when the case opened.',
      'Logs are what the kubelet still holds (rotated logs are not included) and are capped by <code>limitBytes</code>.',
      'The case file proves what the API server and kubelet reported at capture time; it is not a full disk or memory image.',
      'The timeline keeps the most recent entries of each artifact source and says how many it left out; <code>timeline.jsonl</code> is the same list.',
    ])),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
