import { createHash } from 'node:crypto';
import { CidrSet, isLoopback, isUnspecified, parseCidr } from '../../../src/live/cidrs.js';
import { Findings } from '../../../src/live/findings.js';
import { jsonArray, jsonObjectWithArray, toAsync } from '../../../src/live/json-stream.js';
import { suspiciousRegion } from '../../../src/live/maps.js';
import { parseMountinfoLine, parseOverlayOptions } from '../../../src/live/overlay.js';
import { classify, redactEnvironment, type ProcessRecord } from '../../../src/live/processes.js';
import { lines, parseBootTime, parseIds, parseStat, splitNul, startTimeIso, tapLines } from '../../../src/live/procfs.js';
import { decodeAddress, decodeState, formatIpv6, parseSocketLine, socketInode } from '../../../src/live/sockets.js';
import { netLine } from './fake-proc.js';

describe('parseStat', () => {
  it('reads a plain stat line', () => {
    const s = parseStat('42 (nginx) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 1000 200\n');
    expect(s).toEqual({ comm: 'nginx', state: 'S', ppid: 1, startTicks: 12345 });
  });
  it('keeps spaces, parentheses and ") " inside the comm', () => {
    const s = parseStat('77 (evil) S 1 (x) ) R 9 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 1 2\n');
    expect(s).toEqual({ comm: 'evil) S 1 (x) ', state: 'R', ppid: 9, startTicks: 999 });
  });
  it('throws on a truncated line', () => {
    expect(() => parseStat('1 (x) S 0')).toThrow(/malformed/);
    expect(() => parseStat('garbage')).toThrow(/malformed/);
  });
  it('turns ticks into an ISO time from btime at 100 ticks a second', () => {
    expect(parseBootTime('cpu 1\nbtime 1700000000\n')).toBe(1_700_000_000);
    expect(startTimeIso(1_700_000_000, 250)).toBe('2023-11-14T22:13:22.500Z');
  });
  it('parses id sets and NUL lists', () => {
    expect(parseIds('0\t1000\t1000\t1000')).toEqual({ real: 0, effective: 1000, saved: 1000, fs: 1000 });
    expect(parseIds('x')).toBeNull();
    expect(splitNul(Buffer.from('sh\0-c\0echo a b\0'))).toEqual(['sh', '-c', 'echo a b']);
    expect(splitNul(Buffer.alloc(0))).toEqual([]);
  });
});

describe('line splitting', () => {
  it('splits lines across chunk and UTF-8 boundaries', async () => {
    const text = Buffer.from('héllo\nwörld\nlast');
    const chunks = toAsync([...text].map((b) => Buffer.from([b])));
    const got: string[] = [];
    for await (const l of lines(chunks)) got.push(l);
    expect(got).toEqual(['héllo', 'wörld', 'last']);
    const tapped: string[] = [];
    const passed: Buffer[] = [];
    for await (const c of tapLines(toAsync([text.subarray(0, 3), text.subarray(3)]), (l) => tapped.push(l))) passed.push(c);
    expect(Buffer.concat(passed)).toEqual(text);
    expect(tapped).toEqual(['héllo', 'wörld', 'last']);
  });
});

function rec(pid: number, ppid: number, start: number, cgroup: string, mnt: string): ProcessRecord {
  return { pid, ppid, name: `p${pid}`, state: 'S', startTicks: start, uid: null, gid: null, cmdline: [], exe: null, exeDeleted: false, cwd: null, namespaces: { mnt }, cgroup, errors: [], role: 'other', inEntrypointTree: false };
}

describe('classify', () => {
  const id = 'abc123def4567890';
  it.each([
    ['cgroupfs v1', `4:memory:/kubepods/besteffort/pod1234/${id}\n`],
    ['systemd', `0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope\n`],
    ['cgroup v2 namespaced', `0::/../cri-containerd-${id}.scope\n`],
  ])('recognises targets by %s cgroup paths', (_name, cgroup) => {
    const records = [rec(1, 0, 10, cgroup, 'mnt:[1]'), rec(5, 0, 50, '0::/pause\n', 'mnt:[2]'), rec(9, 0, 90, '0::/debug\n', 'mnt:[self]')];
    expect(classify(records, id, 'mnt:[self]')).toEqual({ entrypointPid: 1, method: 'cgroup' });
    expect(records.map((r) => r.role)).toEqual(['target', 'other', 'observer']);
  });

  it('picks the earliest start as entrypoint, lowest pid on ties, and follows ppid chains', () => {
    const cg = `0::/x/${id}\n`;
    const records = [rec(3, 0, 10, cg, 'mnt:[1]'), rec(7, 0, 10, cg, 'mnt:[1]'), rec(8, 3, 20, cg, 'mnt:[1]'), rec(9, 8, 30, cg, 'mnt:[1]'), rec(12, 0, 40, cg, 'mnt:[1]'), rec(13, 13, 50, cg, 'mnt:[1]')];
    expect(classify(records, id, 'mnt:[self]').entrypointPid).toBe(3);
    expect(Object.fromEntries(records.map((r) => [r.pid, r.inEntrypointTree]))).toEqual({ 3: true, 7: false, 8: true, 9: true, 12: false, 13: false });
  });

  it('falls back to the mount namespace of the lowest foreign pid', () => {
    const records = [rec(1, 0, 5, '0::/\n', 'mnt:[self]'), rec(4, 0, 10, '0::/\n', 'mnt:[A]'), rec(6, 4, 20, '0::/\n', 'mnt:[A]'), rec(8, 0, 1, '0::/\n', 'mnt:[B]')];
    expect(classify(records, id, 'mnt:[self]')).toEqual({ entrypointPid: 4, method: 'mount-namespace' });
    expect(records.map((r) => r.role)).toEqual(['observer', 'target', 'target', 'other']);
  });

  it('reports when nothing matches', () => {
    const records = [rec(1, 0, 5, '0::/\n', 'mnt:[self]')];
    expect(classify(records, id, 'mnt:[self]')).toEqual({ entrypointPid: null, method: 'none' });
  });
});

describe('redactEnvironment', () => {
  it('keeps names and hashes values', () => {
    const r = redactEnvironment(['TOKEN=s3cret', 'EMPTY=', 'ODD']);
    expect(r.redacted).toBe(true);
    expect(r.sha256[0]).toBe(`TOKEN=sha256:${createHash('sha256').update('s3cret').digest('hex')}`);
    expect(r.sha256[0]).not.toContain('s3cret');
    expect(r.sha256[1]).toBe('EMPTY=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(r.sha256[2]).toMatch(/^ODD=sha256:/);
  });
});

describe('socket decoding', () => {
  it('decodes little-endian IPv4 and IPv6 words', () => {
    expect(decodeAddress('0100007F', true)).toBe('127.0.0.1');
    expect(decodeAddress('0558000A', true)).toBe('10.0.88.5');
    expect(decodeAddress('7F000001', false)).toBe('127.0.0.1');
    expect(decodeAddress('00000000000000000000000001000000', true)).toBe('::1');
    expect(decodeAddress('00000000000000000000000000000000', true)).toBe('::');
    expect(decodeAddress('B80D0120000000000000000001000000', true)).toBe('2001:db8::1');
    expect(decodeAddress('0000000000000000FFFF0000097100CB', true)).toBe('::ffff:203.0.113.9');
    expect(() => decodeAddress('XYZ', true)).toThrow();
  });
  it('formats IPv6 per RFC 5952', () => {
    const b = (groups: number[]): number[] => groups.flatMap((g) => [g >> 8, g & 0xff]);
    expect(formatIpv6(b([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]))).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(b([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]))).toBe('2001:db8:0:1:1:1:1:1');
    expect(formatIpv6(b([0xfe80, 0, 0, 0, 0, 0, 0, 0]))).toBe('fe80::');
  });
  it('parses tcp and udp lines with decoded states', () => {
    const listen = parseSocketLine('tcp', netLine(0, '0100007F:1F90', '00000000:0000', '0A', 555, 1000));
    expect(listen).toEqual({ proto: 'tcp', state: 'LISTEN', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '0.0.0.0', port: 0 }, uid: 1000, inode: 555 });
    const est = parseSocketLine('tcp6', netLine(1, '0000000000000000FFFF00000500580A:A1B2', '0000000000000000FFFF0000097100CB:115C', '01', 556));
    expect(est).toMatchObject({ state: 'ESTABLISHED', local: { address: '::ffff:10.88.0.5', port: 0xa1b2 }, remote: { address: '::ffff:203.0.113.9', port: 4444 } });
    expect(parseSocketLine('udp', '  sl  local_address rem_address   st')).toBeNull();
    expect(decodeState('02')).toBe('SYN_SENT');
    expect(decodeState('FF')).toBe('UNKNOWN(0xFF)');
    expect(socketInode('socket:[12345]')).toBe(12345);
    expect(socketInode('/tmp/x (deleted)')).toBeNull();
  });
});

describe('addresses', () => {
  it('classifies loopback, unspecified and cluster addresses, IPv4-mapped too', () => {
    const cidrs = new CidrSet(['10.88.0.0/16', 'fd00::/8']);
    expect(cidrs.has('10.88.3.4')).toBe(true);
    expect(cidrs.has('::ffff:10.88.3.4')).toBe(true);
    expect(cidrs.has('10.89.0.1')).toBe(false);
    expect(cidrs.has('fd12::1')).toBe(true);
    expect(isLoopback('127.0.0.53')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isUnspecified('::')).toBe(true);
    expect(isUnspecified('0.0.0.0')).toBe(true);
    expect(() => parseCidr('10.0.0.0/33')).toThrow();
    expect(() => parseCidr('nope/8')).toThrow();
  });
});

describe('suspiciousRegion', () => {
  it.each([
    ['7f00-7f10 rwxp 00000000 00:00 0 ', 'rwx', ''],
    ['7f00-7f10 r-xp 00000000 00:00 0 ', 'anonymous-executable', ''],
    ['7f00-7f10 r-xp 00000000 00:01 77                         /memfd:x (deleted)', 'deleted-file-executable', '/memfd:x (deleted)'],
    ['7f00-7f10 r-xp 00000000 08:01 99                         /tmp/my lib.so (deleted)', 'deleted-file-executable', '/tmp/my lib.so (deleted)'],
    ['7f00-7f10 rwxp 00000000 00:00 0                          [heap]', 'rwx', '[heap]'],
  ])('%s -> %s', (line, reason, p) => {
    expect(suspiciousRegion(line)).toEqual({ range: '7f00-7f10', perms: line.split(' ')[1], path: p, reason });
  });
  it.each([
    '7f00-7f10 r-xp 00000000 08:01 99                         /usr/lib/libc.so.6',
    '7f00-7f10 rw-p 00000000 00:00 0 ',
    'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]',
    '7ffd-7ffe r-xp 00000000 00:00 0                          [vdso]',
  ])('ignores %s', (line) => {
    expect(suspiciousRegion(line)).toBeNull();
  });
});

describe('overlay', () => {
  const line =
    '1250 1180 0:210 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/containerd/snap/3/fs:/var/lib/containerd/snap/2/fs,upperdir=/var/lib/containerd/snap/9/fs,workdir=/var/lib/containerd/snap/9/work';
  it('parses the root mount and its super options', () => {
    const m = parseMountinfoLine(line)!;
    expect(m).toMatchObject({ mountId: 1250, parentId: 1180, mountPoint: '/', fsType: 'overlay', source: 'overlay' });
    expect(parseOverlayOptions(m.superOptions)).toEqual({
      upperdir: '/var/lib/containerd/snap/9/fs',
      workdir: '/var/lib/containerd/snap/9/work',
      lowerdir: ['/var/lib/containerd/snap/3/fs', '/var/lib/containerd/snap/2/fs'],
    });
  });
  it('unescapes octal escapes, escaped colons and lowerdir+ options', () => {
    const m = parseMountinfoLine('36 35 98:0 / /mnt\\040dir rw shared:1 - ext4 /dev/sda1 rw')!;
    expect(m.mountPoint).toBe('/mnt dir');
    expect(parseOverlayOptions('rw,lowerdir=/a\\134:b:/c,upperdir=/u\\054x,workdir=/w')).toEqual({ upperdir: '/u,x', workdir: '/w', lowerdir: ['/a:b', '/c'] });
    expect(parseOverlayOptions('rw,lowerdir+=/l1,lowerdir+=/l2,upperdir=/u').lowerdir).toEqual(['/l1', '/l2']);
    expect(parseMountinfoLine('short line')).toBeNull();
  });
});

describe('Findings', () => {
  it('keeps the most severe, first come first within a severity, and counts all', () => {
    const f = new Findings(3);
    const add = (severity: 'critical' | 'high' | 'medium' | 'low', kind: string): void => f.add({ severity, kind, summary: kind, artifact: 'a' });
    add('low', 'l1');
    add('high', 'h1');
    add('medium', 'm1');
    add('critical', 'c1');
    add('high', 'h2');
    add('low', 'l2');
    expect(f.list().map((x) => x.kind)).toEqual(['c1', 'h1', 'h2']);
    expect(f.total).toBe(6);
    expect(f.truncated).toBe(true);
  });
});

describe('json streaming', () => {
  it('writes valid arrays and objects element by element', async () => {
    const join = async (g: AsyncIterable<string>): Promise<string> => {
      let s = '';
      for await (const p of g) s += p;
      return s;
    };
    expect(JSON.parse(await join(jsonArray(toAsync([]))))).toEqual([]);
    expect(JSON.parse(await join(jsonArray(toAsync([{ a: 1 }, 2]))))).toEqual([{ a: 1 }, 2]);
    expect(JSON.parse(await join(jsonObjectWithArray({ x: 'y' }, 'items', toAsync([1, 2]))))).toEqual({ x: 'y', items: [1, 2] });
    expect(JSON.parse(await join(jsonObjectWithArray({}, 'items', toAsync([]))))).toEqual({ items: [] });
  });
});
