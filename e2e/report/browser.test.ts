// A real case's report.html in a real browser: an Investigation of a compromised workload (live
// capture and network isolation) is sealed by the operator, its report.html is read from the evidence
// volume and opened in Debian's Chromium, headless and offline. Every request the page could make
// goes to a recording proxy on loopback (and no name resolves): the test asserts it saw none, takes a
// screenshot, and checks in the rendered DOM that the SVG timeline, the key findings and the pod are there.
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestNamespace, useCleanup } from '../support/cluster.js';
import { caseDirOf, conditionOf, createInvestigation, deployOperator, ensureEvidenceReader, listCaseFiles, readEvidence, run, waitForCondition } from '../operator/support.js';
import { expectCaseVerifies, startClient, token } from '../containment/helpers.js';
import { startC2, startCompromised } from '../live/compromised.js';

useCleanup();

const TEST_TIMEOUT_MS = 300_000;
const WIDTH = 1280;
const HEIGHT = 2400;

let work: string;
let proxy: Server;
const proxied: string[] = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'casefile-report-browser-'));
  proxy = createServer((req, res) => {
    proxied.push(`${req.method} ${req.url}`);
    res.writeHead(403).end();
  });
  proxy.on('connect', (req, socket) => {
    proxied.push(`CONNECT ${req.url}`);
    socket.destroy();
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  await deployOperator();
  await ensureEvidenceReader();
}, 300_000);

afterAll(async () => {
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  await rm(work, { recursive: true, force: true });
});

/** Chromium, headless, offline: no name resolves, and anything it would fetch goes to the recording proxy. */
function chromium(args: string[]) {
  const { port } = proxy.address() as AddressInfo;
  return run('chromium', [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--host-resolver-rules=MAP * ~NOTFOUND', `--proxy-server=http://127.0.0.1:${port}`, '--proxy-bypass-list=<-loopback>',
    `--user-data-dir=${path.join(work, 'profile')}`, ...args,
  ], { timeoutMs: 120_000 });
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('report.html in Chromium', () => {
  test(
    'a sealed case\'s report renders offline: the SVG timeline, the key findings and the pod are on the page, nothing was fetched',
    async () => {
      const ns = await createTestNamespace('report');
      const c2IP = await startC2(ns);
      await startClient(ns);
      const pod = `web-${token()}`;
      await startCompromised(ns, pod, c2IP);
      const inv = `report-${token()}`;
      await createInvestigation(ns, inv, {
        target: { pod, container: 'app' },
        alert: { source: 'falco', rule: 'Drop and execute new binary in container', priority: 'Critical', time: new Date().toISOString() },
        containment: { network: { isolate: true } },
        evidence: { live: { enabled: true, timeoutSeconds: 90 } },
      });
      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 240_000);
      expect(conditionOf(done, 'LiveStateCaptured')).toMatchObject({ status: 'True' });
      const caseDir = caseDirOf(done);
      expect(await listCaseFiles(caseDir)).toEqual(expect.arrayContaining(['timeline.jsonl', 'report.md', 'report.html']));
      await expectCaseVerifies(caseDir);

      // timeline.jsonl: dated facts from the artifacts, in order.
      const timeline = (await readEvidence(`${caseDir}/timeline.jsonl`)).trim().split('\n').map((l) => JSON.parse(l) as { time: string; source: string; what: string; artifact: string });
      for (const source of ['alert', 'pod', 'container', 'event', 'process', 'file', 'custody']) expect(timeline.map((e) => e.source)).toContain(source);
      expect(timeline.find((e) => e.source === 'file' && e.what.includes('/dev/shm/update.sh'))?.artifact).toBe('live/files.json');
      const times = timeline.map((e) => e.time);
      expect([...times].sort()).toEqual(times);

      const html = await readEvidence(`${caseDir}/report.html`);
      // Nothing to fetch in the page itself: no script, and no src or href in any tag.
      const tags = [...html.matchAll(/<[^>]*>/g)].map((m) => m[0]);
      expect(tags.filter((t) => /^<script|\s(src|href|xlink:href|srcset)\s*=/i.test(t))).toEqual([]);
      const page = path.join(work, 'report.html');
      await writeFile(page, html);

      const screenshot = path.join(work, 'report.png');
      const shot = await chromium([`--screenshot=${screenshot}`, `--window-size=${WIDTH},${HEIGHT}`, `file://${page}`]);
      expect({ exitCode: shot.exitCode }).toEqual({ exitCode: 0 });
      const png = await readFile(screenshot);
      expect(pngSize(png)).toEqual({ width: WIDTH, height: HEIGHT });
      // A blank or error page of this size compresses to a few kilobytes; the report is text, tables and a picture.
      expect((await stat(screenshot)).size).toBeGreaterThan(50_000);

      const dump = await chromium(['--dump-dom', `file://${page}`]);
      expect({ exitCode: dump.exitCode }).toEqual({ exitCode: 0 });
      const dom = dump.stdout;
      const svg = /<svg class="timeline"[\s\S]*?<\/svg>/.exec(dom)?.[0] ?? '';
      expect(svg).toContain('<g class="lane process">');
      expect(svg).toMatch(/<g class="moment">[\s\S]*?alert \d\d:\d\d:\d\d/);
      expect(svg).toMatch(/<g class="moment">[\s\S]*?containment applied \d\d:\d\d:\d\d/);
      expect(svg).toMatch(/<g class="moment">[\s\S]*?sealed \d\d:\d\d:\d\d/);
      expect(dom.indexOf('<svg class="timeline"')).toBeLessThan(dom.indexOf('<h2>What happened</h2>'));
      const findings = dom.split('<h2>Findings by severity</h2>')[1]?.split('</section>')[0] ?? '';
      for (const kind of ['deleted-executable-running', 'undeclared-listener', 'executable-in-writable-path']) expect(findings).toContain(kind);
      expect(findings).toContain('/dev/shm/update.sh');
      expect(dom).toContain(`pod ${ns}/${pod}`);
      expect(dom).toContain('<h2>Audit trail</h2>');

      expect(proxied).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
