// report.html is opened in a browser from an evidence store: every string of the case is a suspect's
// to choose, so these tests fill every field with markup, quotes, bidi overrides, NUL and a very long
// string, and check that only the renderer's own fixed markup comes out.
import { describe, expect, test } from '@jest/globals';
import { parseSpec, type Condition } from '../../../src/api/investigation.js';
import { escapeHtml, renderReportHtml } from '../../../src/report/html.js';
import type { ReportInput } from '../../../src/report/render.js';

const SCRIPT = '<script>alert(1)</script>';
const ATTR = `"><img src=x onerror=alert(1)>`;
const SINGLE = `' onmouseover='alert(1)`;
const RTL = 'invoice\u202Efdp.exe';
const NUL = 'before\u0000after';
const LONG = `/tmp/${'A'.repeat(100_000)}`;
const HOSTILE = [SCRIPT, ATTR, SINGLE, RTL, NUL, LONG, 'a & b', '`<b>in code</b>`', 'https://evil.example/x.png'];
const evil = (i: number) => HOSTILE[i % HOSTILE.length]!;

const spec = (() => {
  const r = parseSpec({
    target: { pod: 'web-1' },
    alert: { source: 'falco', rule: SCRIPT, priority: 'Critical', time: '2026-11-20T10:16:58Z', raw: '{}' },
    containment: { order: 'ContainFirst', network: { isolate: true, verify: true } },
    evidence: { live: { enabled: true } },
  });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
})();
const condition = (type: Condition['type'], status: Condition['status'], message: string): Condition => ({
  type, status, reason: 'Because', message, lastTransitionTime: '2026-11-20T10:17:03Z', observedGeneration: 1,
});

const input: ReportInput = {
  namespace: 'shop',
  name: `web-shell ${ATTR}`,
  uid: '6f1c0000-1111-2222-3333-444455556666',
  caseDir: `shop/${SINGLE}`,
  spec,
  target: {
    podUID: 'uid-123', node: RTL, container: SCRIPT, containerID: NUL, image: ATTR, imageID: 'registry.example.com/web@sha256:abcd',
    serviceAccount: SINGLE, owners: [{ kind: 'ReplicaSet', name: SCRIPT, uid: 'rs-1' }], derivation: [ATTR, RTL],
  },
  containment: {
    label: `casefile.dev/incident-6f1c=${SCRIPT}`,
    networkPolicy: ATTR,
    patchedPolicies: [{ name: 'x</code><script>', original: SINGLE }],
    verification: { blocked: true, at: '2026-11-20T10:17:10Z', method: 'canary', details: [SCRIPT] },
    remainingExposure: ['`<b>in code</b>`'],
  },
  conditions: [condition('TargetResolved', 'True', SCRIPT), condition('LogsCaptured', 'False', ATTR), condition('NetworkIsolated', 'True', RTL)],
  findings: [
    { severity: 'high', kind: SCRIPT, summary: `process ${ATTR} runs from ${LONG}`, artifact: `live/files/${SINGLE}` },
    { severity: 'critical', kind: 'deleted-executable', summary: NUL, artifact: 'live/findings.json' },
  ],
  live: { debugContainer: SCRIPT, image: ATTR, launchedAt: RTL },
  alerts: { count: 2, first: '2026-11-20T10:16:59Z', last: '2026-11-20T10:18:00Z' },
  artifacts: [
    { artifact: `live/files/tmp/${SCRIPT}`, sha256: 'a'.repeat(64), bytes: 12 },
    { artifact: 'logs/app.log', sha256: 'b'.repeat(64), bytes: 4096, truncated: true },
  ],
  custody: HOSTILE.map((h, i) => ({ seq: i + 1, time: `2026-11-20T10:17:${String(10 + i).padStart(2, '0')}Z`, action: 'negative-finding', phase: evil(i + 1), detail: { finding: h } })),
  notes: [{ phase: SCRIPT, kind: 'refused', text: ATTR }],
  generatedAt: '2026-11-20T10:20:00Z',
};

/** Every tag in the page, as written. */
const tagsOf = (html: string): string[] => [...html.matchAll(/<[^>]*>/g)].map((m) => m[0]);

describe('report.html', () => {
  const html = renderReportHtml(input);
  const tags = tagsOf(html);

  test('emits only the renderer\'s own elements, whatever the case holds', () => {
    const names = new Set(tags.map((t) => /^<\/?([a-zA-Z0-9!]+)/.exec(t)?.[1]?.toLowerCase()));
    expect([...names].sort()).toEqual(
      ['!doctype', 'body', 'circle', 'code', 'dd', 'dl', 'dt', 'figure', 'g', 'h1', 'h2', 'h3', 'head', 'header', 'html', 'li', 'line', 'meta', 'p', 'section', 'style', 'svg', 'table', 'tbody', 'td', 'text', 'th', 'thead', 'title', 'tr', 'ul'].sort(),
    );
    expect(tags.filter((t) => /\b(on\w+|src|href|action|formaction|srcdoc)\s*=/i.test(t))).toEqual([]);
  });

  test('puts no case data in an attribute: every attribute is one of a fixed few, or a number the SVG computed', () => {
    const attributes = new Set(tags.flatMap((t) => [...t.matchAll(/\s([a-zA-Z-]+)=("[^"]*"|'[^']*'|\S+)/g)].map((m) => `${m[1]}=${m[2]}`)));
    const numeric = /^(cx|cy|r|x|y|x1|y1|x2|y2|width|height)="-?\d+(\.\d+)?"$/;
    expect([...attributes].filter((a) => !numeric.test(a)).sort()).toEqual([
      'aria-label="Timeline of the incident"',
      'charset="utf-8"',
      'class="alert"',
      'class="axis"',
      'class="condition"',
      'class="custody"',
      'class="finding"',
      'class="lane alert"',
      'class="lane condition"',
      'class="lane custody"',
      'class="lane-label"',
      'class="moment"',
      'class="none"',
      'class="overview"',
      'class="severity-critical"',
      'class="severity-high"',
      'class="summary"',
      'class="timeline"',
      'class="track"',
      'content="default-src \'none\'; style-src \'unsafe-inline\'"',
      'content="width=device-width, initial-scale=1"',
      'dir="ltr"',
      'http-equiv="Content-Security-Policy"',
      'lang="en"',
      'name="viewport"',
      'role="img"',
      'text-anchor="end"',
      'text-anchor="middle"',
      'text-anchor="start"',
      'viewBox="0 0 1000 164"',
    ]);
  });

  test('carries the strict Content-Security-Policy, no script and nothing to load', () => {
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(style).not.toMatch(/url\(|@import|expression\(|https?:/i);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<img/i);
  });

  test('escapes the five HTML specials in case text', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&#39; onmouseover=&#39;alert(1)');
    expect(html).toContain('a &amp; b');
  });

  test('markdown code spans from the report stay inert: their content is escaped before it is wrapped', () => {
    expect(html).toContain('NetworkPolicy <code>x&lt;/code&gt;&lt;script&gt;</code> also selected the pod');
    expect(html).toContain('<code>&lt;b&gt;in code&lt;/b&gt;</code>');
  });

  test('shows bidi overrides, NUL and other hidden characters as visible markers', () => {
    expect(html).not.toMatch(/[\u0000\u202a-\u202e\u2066-\u2069\u200b-\u200f\ufeff]/);
    expect(html).toContain('invoice[U+202E]fdp.exe');
    expect(html).toContain('before[U+0000]after');
    expect(escapeHtml('a\u2067b\u200bc\ud800d\r')).toBe('a[U+2067]b[U+200B]c[U+D800]d[U+000D]');
    expect(escapeHtml('line one\nline\ttwo 🙂 שלום')).toBe('line one\nline\ttwo 🙂 שלום');
  });

  test('keeps a very long string whole (the page wraps it; the reader may need all of it)', () => {
    expect(html).toContain(`/tmp/${'A'.repeat(100_000)}`);
    expect(html).toMatch(/overflow-wrap: anywhere/);
  });

  test('has the parts a reader needs: summary, timeline, findings, containment, evidence with SHA-256, notes', () => {
    const headings = [...html.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
    expect(headings).toEqual([
      'What happened', 'Identity chain', 'Findings by severity', 'Audit trail', 'Indicators', 'Containment and its state', 'Timeline', 'Evidence with hashes', 'Observer effect', 'Phases',
      'What could not be captured, and why', 'Limitations of this record',
    ]);
    expect(html).toContain('<dt>Verdict</dt><dd>1 step(s) failed: LogsCaptured (Because). The case file is sealed with what was captured.</dd>');
    expect(html).toContain('<dt>Containment</dt><dd>network isolated (enforcement verified); order ContainFirst</dd>');
    expect(html).toContain(`<code>${'a'.repeat(64)}</code>`);
    expect(html).toContain('logs/app.log</code> (truncated at limitBytes)');
    expect(html).toContain('refused · &lt;script&gt;alert(1)&lt;/script&gt;: &quot;&gt;&lt;img');
    // The timeline: the alert first, then every custody record, in time order.
    const rows = [...html.matchAll(/<tr class="(\w+)"><td>([^<]*)<\/td>/g)].map((m) => `${m[2]} ${m[1]}`);
    expect(rows.slice(0, 3)).toEqual(['2026-11-20T10:16:58.000Z alert', '2026-11-20T10:16:59.000Z alert', '2026-11-20T10:17:03.000Z condition']);
    expect(rows.filter((r) => r.endsWith('custody'))).toHaveLength(HOSTILE.length);
    expect([...rows].sort()).toEqual(rows);
  });

  test('says plainly when nothing was contained or found', () => {
    const plain = parseSpec({ target: { pod: 'web-1' } });
    if (!plain.ok) throw new Error(plain.message);
    const quiet = renderReportHtml({ ...input, spec: plain.spec, containment: undefined, findings: [], conditions: [], notes: [], custody: [] });
    expect(quiet).toContain('<dt>Containment</dt><dd>none requested</dd>');
    expect(quiet).toContain('<dt>Verdict</dt><dd>Every requested step succeeded; the case file is sealed.</dd>');
    expect(quiet).toContain('Live-state capture was not enabled for this case.');
    expect(quiet).toContain('Nothing: every requested capture succeeded.');
  });
});
