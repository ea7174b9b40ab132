// Both reports from one real case directory (artifacts in the collectors' and audit's shapes, with a
// suspect's names in them): the SVG timeline and its key moments, findings by severity, the audit
// trail, indicators, the evidence table; nothing external, everything escaped.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { parseSpec } from '../../../src/api/investigation.js';
import { CaseFile } from '../../../src/evidence/store.js';
import { gatherCaseFacts } from '../../../src/report/gather.js';
import { renderReportHtml } from '../../../src/report/html.js';
import { renderReport, type ReportInput } from '../../../src/report/render.js';
import { MAX_EVIDENCE_ROWS } from '../../../src/report/sections.js';
import { timelineSvg } from '../../../src/report/svg.js';
import { HOSTILE_NAME, writeCaseArtifacts } from './fixtures/case-artifacts.js';

const spec = (() => {
  const r = parseSpec({
    target: { pod: 'web-1' },
    alert: { source: 'falco', rule: 'Terminal shell in container', priority: 'Critical', time: '2026-11-20T10:06:00Z' },
    containment: { network: { isolate: true } },
    evidence: { live: { enabled: true } },
  });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
})();

let root: string;
let input: ReportInput;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-report-sections-'));
  const caseFile = await CaseFile.open({ root, namespace: 'shop', name: 'case-1', uid: '0a1b2c3d-0000', actor: 'test' });
  await writeCaseArtifacts(caseFile);
  const facts = await gatherCaseFacts(caseFile, ['live']);
  input = {
    namespace: 'shop', name: 'case-1', uid: '0a1b2c3d-0000', caseDir: 'shop/case-1-0a1b2c3d', spec,
    target: { podUID: 'uid-123', node: 'worker-2', container: 'app' },
    containment: { label: 'casefile.dev/incident-0a1b2c3d=isolated', networkPolicy: 'casefile-0a1b2c3d' },
    conditions: [],
    findings: [
      { severity: 'critical', kind: 'deleted-executable-running', summary: `pid 42 runs /tmp/kworkerd (deleted) as ${HOSTILE_NAME}`, artifact: 'live/findings.json' },
      { severity: 'high', kind: 'exec-into-pod', summary: 'alice exec into shop/web-1', artifact: 'audit/pod-requests.jsonl' },
    ],
    artifacts: caseFile.artifacts(),
    custody: [
      { seq: 1, time: '2026-11-20T10:17:00Z', action: 'case-opened', detail: { investigation: 'shop/case-1' } },
      { seq: 2, time: '2026-11-20T10:17:10Z', action: 'networkpolicy-created', phase: 'NetworkIsolated', artifact: 'containment/networkpolicy.yaml' },
    ],
    notes: [],
    generatedAt: '2026-11-20T10:18:00Z',
    facts,
  };
  await caseFile.close();
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('report.html from a case', () => {
  test('opens with the SVG timeline: a lane per source, the key moments marked and labelled', () => {
    const html = renderReportHtml(input);
    const svg = /<svg class="timeline"[\s\S]*?<\/svg>/.exec(html)![0];
    expect(html.indexOf('<svg')).toBeLessThan(html.indexOf('<h2>'));
    const lanes = [...svg.matchAll(/<g class="lane (\w+)">/g)].map((m) => m[1]);
    expect(lanes).toEqual(['alert', 'audit', 'event', 'pod', 'container', 'process', 'file', 'custody']);
    const marks = [...svg.matchAll(/<g class="moment">[\s\S]*?<text[^>]*>([^<]*)</g)].map((m) => m[1]);
    expect(marks).toEqual(['alert 10:06:00', 'first suspicious activity 10:04:50', 'containment applied 10:17:10', 'sealed 10:18:00']);
    // Facts from before the window (the pod started an hour before) are counted at the lane's start.
    expect(svg).toMatch(/<text class="earlier"[^>]*>\d+ earlier<\/text>/);
    expect(svg).toContain('<title>2026-11-20T10:05:00.000Z process: process started: &lt;img src=x onerror=alert(1)&gt;|[x](https://evil.example)[U+202E]gpj.sh line\none');
  });

  test('sections a responder scans: findings by severity, audit trail, indicators, evidence', () => {
    const html = renderReportHtml(input);
    expect(html).toContain('<h3 class="severity-critical">critical (1)</h3>');
    expect(html).toContain('<h3 class="severity-high">high (1)</h3>');
    const audit = html.split('<h2>Audit trail</h2>')[1]!.split('</section>')[0]!;
    expect(audit).toContain('Who acted on the pod (3 record(s) about it)');
    expect(audit).toContain('alice create pods/exec shop/web-1 -&gt; 101 from 10.0.0.9');
    expect(audit).toContain('mallory delete pods shop/web-1');
    expect(audit).not.toContain('alice get pods');
    expect(audit).toContain('<tr><td>list</td><td>secrets</td><td>shop</td><td>2</td></tr>');
    const indicators = html.split('<h2>Indicators</h2>')[1]!.split('</section>')[0]!;
    expect(indicators).toContain('<code>http://evil.example/payload.sh</code>');
    expect(indicators).toContain('<code>live/memory/42/region-3.bin</code> @4096');
    expect(html).toContain('report: live/indicators.json says the collector stopped listing indicators at its cap');
    expect(html).toContain('<h2>Evidence with hashes</h2>');
  });

  test('nothing external: no script, no src or href, no url() in the style', () => {
    const html = renderReportHtml(input);
    const tags = [...html.matchAll(/<[^>]*>/g)].map((m) => m[0]);
    expect(tags.filter((t) => /^<script|\s(src|href|xlink:href|srcset|action)\s*=/i.test(t))).toEqual([]);
    expect(/<style>([\s\S]*?)<\/style>/.exec(html)![1]).not.toMatch(/url\(|@import|https?:/i);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });

  test('without audit/: says plainly that audit correlation is not configured', () => {
    const html = renderReportHtml({ ...input, facts: { ...input.facts!, audit: undefined } });
    expect(html).toContain('Audit correlation not configured / no records');
    expect(renderReport({ ...input, facts: undefined })).toContain('Audit correlation not configured / no records');
  });

  test('many artifacts (memory regions): listed up to a bound, the rest summed up by directory', () => {
    const many = Array.from({ length: MAX_EVIDENCE_ROWS + 500 }, (_, i) => ({ artifact: `live/memory/42/region-${i}.bin`, sha256: 'c'.repeat(64), bytes: 4096 }));
    const html = renderReportHtml({ ...input, artifacts: many });
    expect(html.match(/<tr><td><code>live\/memory\/42\/region-\d+\.bin<\/code><\/td>/g)).toHaveLength(MAX_EVIDENCE_ROWS);
    expect(html).toContain('500 more file(s) under <code>live/memory</code> (2048000 bytes)');
    expect(renderReport({ ...input, artifacts: many })).toContain('| 500 more file(s) under `live/memory`: see `MANIFEST.sha256` | 2048000 | |');
  });
});

describe('report.md from the same case', () => {
  test('the same sections, the suspect\'s text escaped, the timeline as a table', () => {
    const md = renderReport(input);
    expect(md).toContain('### critical (1)');
    expect(md).toContain('| 2026-11-20T10:04:50Z | alice | alice create pods/exec shop/web-1 -\\> 101 from 10.0.0.9 | \\<img src=x onerror=alert(1)\\>\\|\\[x\\](https://evil.example)\\[U+202E\\]gpj.sh |');
    expect(md).toContain('| list | secrets | shop | 2 |');
    expect(md).toContain('| url | `http://evil.example/payload.sh` | `live/memory/42/region-3.bin` @4096, `live/processes.json` |');
    expect(md).toMatch(/^- The first suspicious activity on record: alice create pods\/exec shop\/web-1 -\\> 101 from 10\.0\.0\.9 \(2026-11-20T10:04:50\.000Z\)\.$/m);
    // Outside code spans (shown literally), no raw HTML tag, link or image from the case survives.
    expect(md.replace(/(`+)[^`]*?\1/g, '')).not.toMatch(/(^|[^\\])<img|(^|[^\\])\[x\]\(/m);
    const timeline = md.split('## Timeline\n')[1]!.split('\n## ')[0]!;
    expect(timeline).toContain('| process: pid 42 | process started: \\<img src=x');
  });
});

describe('timelineSvg edge cases', () => {
  const sealed = { label: 'sealed' as const, time: '2026-11-20T10:18:00Z', what: 'sealed' };
  test('draws whatever has a time: only the seal, one instant, unparseable times; nothing at all says so', () => {
    expect(timelineSvg([], [])).toBe('<p class="none">Nothing with a recorded time to draw.</p>');
    expect(timelineSvg([{ time: 'time not recorded', source: 'finding', what: 'x', artifact: 'a' }], [])).toBe('<p class="none">Nothing with a recorded time to draw.</p>');
    const onlySeal = timelineSvg([], [sealed]);
    expect(onlySeal).toContain('sealed 10:18:00');
    expect(onlySeal).not.toMatch(/NaN|Infinity/);
    const sameInstant = timelineSvg([{ time: '2026-11-20T10:18:00Z', source: 'custody', what: 'x', artifact: 'a' }], [sealed]);
    expect(sameInstant).toContain('<g class="lane custody">');
    expect(sameInstant).not.toMatch(/NaN|Infinity/);
  });
});
