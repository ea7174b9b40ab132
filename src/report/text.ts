// Case text as the two reports show it. Every string from the case is hostile: a suspect names its
// files and processes, writes event messages and user agents. Both renderers show characters that
// would hide or reorder text as visible markers, and Markdown gets escapes for what would otherwise
// become a table border, a link, emphasis or raw HTML.

/**
 * Characters that would hide or reorder what a reader sees (controls, bidi overrides and isolates,
 * zero-width characters, line separators, lone surrogates) are shown as a visible `[U+XXXX]`
 * marker; the artifact keeps the original bytes.
 */
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function showHidden(value: string): string {
  return value.replace(HIDDEN, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Case text as HTML (or SVG) element content. */
export function escapeHtml(value: unknown): string {
  return showHidden(String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]!));
}

/**
 * Markdown specials that change what a line means anywhere in it: table cells (`|`), links and
 * images (`[`, `]`), raw HTML and autolinks (`<`, `>`), entities (`&`), emphasis and code.
 */
const MD_SPECIALS = /[\\`*_[\]<>|&~]/g;

/** Case text as Markdown prose or a table cell: one line, nothing in it interpreted. */
export function mdText(value: unknown): string {
  const text = showHidden(String(value ?? '').replace(/\r?\n/g, ' ')).replace(MD_SPECIALS, (c) => `\\${c}`);
  // A leading # + - = or "1." would start a heading or a list inside a list item.
  return text.replace(/^([#+=-]|\d+[.)])/, (m) => `\\${m}`);
}

/**
 * Case text as a Markdown code span (paths, names, URLs: shown literally, never a link). The fence is
 * longer than any run of backticks inside; `|` stays escaped because GFM splits table cells first.
 */
export function mdCode(value: unknown): string {
  const text = showHidden(String(value ?? '').replace(/\r?\n/g, ' ')).replace(/\|/g, '\\|');
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') || text === '' ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}
