// report.html: the case file as one page a person reads in a browser, with one timeline. The page is
// self-contained (inline CSS, no script, nothing loaded, a CSP that forbids all else) because it is
// opened from an evidence store, often offline. Everything from the case is hostile: a suspect names
// its files, processes and alert fields. Case text only ever lands in element content, escaped by
// `escapeHtml()`, never in an attribute or a URL; the markup around it is fixed strings.
import { containmentItems, observerEffect, signingLines, type ReportInput } from './render.js';
import { buildTimeline } from './timeline.js';

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Characters that would hide or reorder what a reader sees (controls, bidi overrides and isolates,
 * zero-width characters, line separators, lone surrogates) are shown as a visible `[U+XXXX]`
 * marker; the artifact keeps the original bytes.
 */
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Case text as HTML element content. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/[&<>"']/g, (c) => ENTITIES[c]!)
    .replace(HIDDEN, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
}

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
h1 { font-size: 1.5rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td, dd, li, p { overflow-wrap: anywhere; white-space: pre-wrap; }
code, .mono { font-family: ui-monospace, monospace; font-size: .9em; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; background: #f6f8fa; padding: .75rem; border: 1px solid #d0d7de; }
dt { font-weight: 600; } dd { margin: 0; }
tr.custody td:nth-child(2) { color: #0550ae; } tr.alert td:nth-child(2) { color: #9a6700; } tr.finding td:nth-child(2) { color: #cf222e; } tr.condition td:nth-child(2) { color: #57606a; }
.none { color: #57606a; font-style: italic; }
@media print { body { margin: 0; max-width: none; } }
`;

const CSP = "default-src 'none'; style-src 'unsafe-inline'";

export function renderReportHtml(input: ReportInput): string {
  const timeline = buildTimeline(input).map(
    (e) => `<tr class="${e.origin}">${[escapeHtml(e.time), escapeHtml(e.subject ? `${e.origin}: ${e.subject}` : e.origin), escapeHtml(e.what), escapeHtml(e.ref)].map((c) => `<td>${c}</td>`).join('')}</tr>`,
  );
  const findings = input.findings.map((f) => row([escapeHtml(f.severity), escapeHtml(f.kind), escapeHtml(f.summary), `<code>${escapeHtml(f.artifact)}</code>`]));
  const evidence = input.artifacts.map((a) => row([`<code>${escapeHtml(a.artifact)}</code>${a.truncated ? ' (truncated at limitBytes)' : ''}`, escapeHtml(a.bytes), `<code>${escapeHtml(a.sha256)}</code>`]));
  const failures = input.conditions.filter((c) => c.status === 'False').map((c) => `${escapeHtml(c.type)} failed (${escapeHtml(c.reason)}): ${escapeHtml(c.message)}`);
  const notes = input.notes.map((n) => `${escapeHtml(n.kind)}${n.phase ? ` · ${escapeHtml(n.phase)}` : ''}: ${escapeHtml(n.text)}`);
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
    `<header>\n<h1>${escapeHtml(title)}</h1>\n${summary(input)}\n</header>`,
    section('Timeline', table(['time (UTC)', 'from', 'what', 'see'], timeline, 'Nothing with a recorded time.')),
    section('Live findings', table(['severity', 'kind', 'summary', 'artifact'], findings, input.spec.evidence.live.enabled ? 'No suspicious live state was found by the collectors.' : 'Live-state capture was not enabled for this case.')),
    section('Containment', list(containmentItems(input).map(inline))),
    section('What could not be captured, and why', failures.length + notes.length ? list([...failures, ...notes]) : '<p class="none">Nothing: every requested capture succeeded.</p>'),
    section('Evidence', `<p>Every file below is listed in <code>MANIFEST.sha256</code> (<code>sha256sum -c MANIFEST.sha256</code> verifies them) and was recorded in <code>custody.jsonl</code> as it was written.</p>\n${signingLines(input.signing).map((l) => `<p>${inline(l)}</p>`).join('\n')}\n${table(['artifact', 'bytes', 'SHA-256'], evidence, 'No artifacts.')}`),
    section('Observer effect', list(observerEffect(input).map(inline))),
    section('Identity chain', identity(input)),
    section('Phases', table(['condition', 'status', 'reason', 'message', 'last transition'], phases, 'No conditions.')),
    section('Limitations of this record', list([
      'Kubernetes events are kept for about an hour; older ones were already gone when the case opened.',
      'Logs are what the kubelet still holds (rotated logs are not included) and are capped by <code>limitBytes</code>.',
      'The case file proves what the API server and kubelet reported at capture time; it is not a full disk or memory image.',
    ])),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
