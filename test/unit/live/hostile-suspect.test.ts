// What a hostile suspect can put in front of the collector: a huge sparse file, names that are not
// text, a walk that takes forever, a command line and environment of any size. Each cap is hit here
// for real, and each hit must show up as a note, never silently.
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { collectTree } from '../../../src/live/file-tree.js';
import { collectLive } from '../../../src/live/live-collector.js';
import { Run } from '../../../src/live/run.js';
import { json, makeProc, runAndDecode } from './fake-proc.js';

const ID = '0123456789abcdef0123456789abcdef';
const TIB = 1024 ** 4;
const ELF_HEAD = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

let tmp: string;
let proc: string;
let t: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-hostile-'));
  proc = path.join(tmp, 'proc');
  t = path.join(tmp, 'fs', 'tmp');
  await mkdir(t, { recursive: true });
  // 1 TiB, all hole but an ELF header: reading it would take hours.
  const fh = await open(path.join(t, 'sparse.bin'), 'w', 0o755);
  await fh.write(ELF_HEAD, 0, 4, 0);
  await fh.truncate(TIB);
  await fh.close();
  await writeFile(path.join(t, 'two\nlines'), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(Buffer.concat([Buffer.from(path.join(t, 'not-utf8-')), Buffer.from([0xc3, 0x28, 0x0a])]), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(path.join(t, `${'..%2F'.repeat(40)}x`), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(path.join(t, 'l'.repeat(255)), '#!/bin/sh\n', { mode: 0o755 });
  const big = 'A'.repeat(200 * 1024);
  await makeProc(proc, [{ pid: 1, ppid: 0, comm: 'app', startTicks: 1, cgroup: `0::/kubepods/p/${ID}\n`, mnt: 'mnt:[A]', exe: '/app', root: '/', cmdline: ['/app', big], environ: [`BIG=${big}`] }], { selfMnt: 'mnt:[SELF]' });
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const live = (over: { walkSeconds?: number } = {}) =>
  runAndDecode((w) =>
    collectLive({ containerId: ID, paths: [t], maxFileBytes: 1 << 20, maxHashBytes: 1 << 20, walkSeconds: 60, redactEnvironment: false, declaredPorts: [], clusterCidrs: [], proc, memoryScope: 'Suspicious', memoryMaxBytes: 1 << 20, ...over }, w),
  );

describe('a hostile suspect', () => {
  it('a 1 TiB sparse file is recorded by size and allocated bytes, not read, and noted', async () => {
    const started = Date.now();
    const d = await live();
    expect(Date.now() - started).toBeLessThan(20_000);
    const files = json(d, 'live/files.json') as any[];
    const sparse = files.find((f) => f.path.endsWith('/sparse.bin'));
    expect(sparse).toMatchObject({ size: TIB, sha256: null, copied: null, elf: true });
    expect(sparse.allocatedBytes).toBeLessThan(1024 * 1024);
    expect(sparse.note).toMatch(/sparse.*over --max-hash-bytes/);
    expect(d.notes.some((n) => n.level === 'warn' && n.message.includes('sparse.bin') && n.message.includes('--max-hash-bytes'))).toBe(true);
    // Still a finding: an executable ELF in a writable path.
    expect((json(d, 'live/file-findings.json') as any[]).some((f) => f.summary.includes('sparse.bin'))).toBe(true);
  });

  it('names with newlines, invalid UTF-8, ../ look-alikes and 255 bytes keep the framing and the copies inside live/files/', async () => {
    const d = await live();
    const files = json(d, 'live/files.json') as any[];
    expect(files.find((f) => f.path.endsWith('/two\nlines'))).toMatchObject({ sha256: expect.any(String) });
    const bad = files.find((f) => f.pathHex !== undefined);
    expect(Buffer.from(bad.pathHex, 'hex').subarray(-3)).toEqual(Buffer.from([0xc3, 0x28, 0x0a]));
    const copies = d.order.filter((n) => n.startsWith('live/files/'));
    expect(copies.length).toBeGreaterThanOrEqual(4);
    for (const c of copies) {
      expect(c.split('/').every((s) => s !== '..' && s !== '.' && !s.includes('\n'))).toBe(true);
    }
    expect(d.summary).not.toBeNull(); // the run reached `done`: nothing broke the protocol
  });

  it('cmdline and environment are kept up to 64 KiB, and the cut is noted', async () => {
    const d = await live();
    const p = (json(d, 'live/processes.json') as any).processes[0];
    expect(p.cmdline.join('\0').length).toBeLessThanOrEqual(64 * 1024);
    expect(p.environment.join('\0').length).toBeLessThanOrEqual(64 * 1024);
    expect(d.notes.filter((n) => n.level === 'warn' && /longer than 65536 bytes/.test(n.message)).map((n) => n.message)).toEqual([
      expect.stringMatching(/cmdline is longer/),
      expect.stringMatching(/environ is longer/),
    ]);
    expect(d.artifacts.get('live/raw/processes.txt')!.length).toBeLessThan(200 * 1024);
  });

  it('a walk past its deadline stops with a note; the findings before it are already written', async () => {
    for (let i = 0; i < 50; i++) await writeFile(path.join(t, `f${i}`), 'x');
    const d = await runAndDecode(async (w) => {
      const run = new Run(w, ['files']);
      await collectTree(path.dirname(t), ['/tmp'], { artifact: 'live/files.json', copyPrefix: 'live/files/', maxFileBytes: 1 << 20, maxHashBytes: 1 << 20, maxEntries: 1000, deadline: Date.now() - 1, walkSeconds: 7, includeStart: true }, run, () => undefined);
      await run.done();
    });
    expect((json(d, 'live/files.json') as any[]).length).toBeLessThan(5);
    expect(d.notes.some((n) => n.level === 'warn' && /stops after 7 s \(--walk-seconds\)/.test(n.message))).toBe(true);

    const full = await live();
    expect(full.order.indexOf('live/findings.json')).toBeLessThan(full.order.indexOf('live/files.json'));
  });
});
