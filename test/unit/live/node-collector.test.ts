import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { collectNode, DEFAULT_RUNTIME_STATE, type NodeOptions } from '../../../src/live/node-collector.js';
import { json, makeProc, runAndDecode, type FakeProcess } from './fake-proc.js';

const ID = 'fedcba9876543210fedcba9876543210';
const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
const UPPER = '/var/lib/containerd/snap/9/fs';
const OVERLAY_ROOT = `1250 1180 0:210 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containerd/snap/3/fs,upperdir=${UPPER},workdir=/var/lib/containerd/snap/9/work\n1251 1250 0:211 / /proc rw - proc proc rw\n`;

let tmp: string;
let host: string;
let hostProc: string;
let runtimeDir: string;
let whiteoutMade = false;

function hostProcess(pid: number, over: Partial<FakeProcess> = {}): FakeProcess {
  return { pid, ppid: 4200, comm: 'nginx', startTicks: 5000, cgroup: `12:memory:/kubepods/pod1/${ID}\n`, mnt: 'mnt:[C]', exe: '/usr/sbin/nginx', cmdline: ['nginx', '-g', 'daemon off;'], mountinfo: OVERLAY_ROOT, ...over };
}

async function setup(procs: FakeProcess[], initPid: string): Promise<void> {
  await makeProc(hostProc, procs);
  runtimeDir = path.join(host, DEFAULT_RUNTIME_STATE, ID);
  await mkdir(path.join(runtimeDir, 'rootfs'), { recursive: true });
  await writeFile(path.join(runtimeDir, 'init.pid'), initPid);
  await writeFile(path.join(runtimeDir, 'config.json'), '{"ociVersion":"1.0.2","process":{"args":["nginx"]}}');
  await symlink(`/var/lib/containerd/io.containerd.runtime.v2.task/k8s.io/${ID}`, path.join(runtimeDir, 'work'));
  const upper = path.join(host, UPPER);
  await mkdir(path.join(upper, 'tmp'), { recursive: true });
  await mkdir(path.join(upper, 'usr', 'bin'), { recursive: true });
  await mkdir(path.join(upper, 'etc'), { recursive: true });
  await writeFile(path.join(upper, 'tmp', 'miner'), ELF, { mode: 0o755 });
  await writeFile(path.join(upper, 'usr', 'bin', 'rootme'), 'x', { mode: 0o755 });
  await chmod(path.join(upper, 'usr', 'bin', 'rootme'), 0o4755);
  await writeFile(path.join(upper, 'etc', 'hosts'), '127.0.0.1 evil\n');
  await symlink('/etc/shadow', path.join(upper, 'etc', 'link'));
  try {
    execFileSync('mknod', [path.join(upper, 'etc', 'motd'), 'c', '0', '0'], { stdio: 'ignore' });
    whiteoutMade = true;
  } catch {
    whiteoutMade = false; // no CAP_MKNOD here: the whiteout assertions are skipped
  }
}

function options(): NodeOptions {
  return { containerId: ID, hostProc, hostPrefix: host, runtimeState: DEFAULT_RUNTIME_STATE, maxFileBytes: 1024, maxHashBytes: 1 << 20, walkSeconds: 60 };
}

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-node-'));
  host = path.join(tmp, 'host');
  hostProc = path.join(tmp, 'hostproc');
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('node collector', () => {
  it('captures the host process, runtime state and the overlay upper layer', async () => {
    await setup([hostProcess(4242), hostProcess(4300, { ppid: 4242, startTicks: 6000 })], '4242\n');
    const d = await runAndDecode((w) => collectNode(options(), w));
    expect(d.order.filter((n) => !n.startsWith('node/upper/'))).toEqual([
      'node/host-process.json', 'node/runtime/config.json', 'node/runtime/state.json', 'node/cgroup.txt', 'node/mountinfo.txt', 'node/upper-layer.json', 'node/findings.json',
    ]);
    expect(json(d, 'node/host-process.json')).toMatchObject({
      containerId: ID, hostPid: 4242, ppid: 4200, cmdline: ['nginx', '-g', 'daemon off;'], exe: '/usr/sbin/nginx',
      startTime: '2023-11-14T22:14:10.000Z', cgroup: `12:memory:/kubepods/pod1/${ID}\n`, namespaces: { mnt: 'mnt:[C]' }, status: { Name: 'nginx' },
    });
    expect(d.artifacts.get('node/runtime/config.json')!.toString()).toBe('{"ociVersion":"1.0.2","process":{"args":["nginx"]}}');
    const bundle = `${DEFAULT_RUNTIME_STATE}/${ID}`;
    expect(json(d, 'node/runtime/state.json')).toEqual({ runtimeDir: bundle, files: ['config.json', 'init.pid', 'rootfs', 'work'], initPid: 4242, bundle });
    expect(d.artifacts.get('node/cgroup.txt')!.toString()).toBe(`12:memory:/kubepods/pod1/${ID}\n`);
    expect(d.artifacts.get('node/mountinfo.txt')!.toString()).toBe(OVERLAY_ROOT);

    const upper = json(d, 'node/upper-layer.json');
    const by = Object.fromEntries(upper.map((f: any) => [f.path, f]));
    expect(Object.keys(by).sort()).toEqual(['/etc', '/etc/hosts', '/etc/link', ...(whiteoutMade ? ['/etc/motd'] : []), '/tmp', '/tmp/miner', '/usr', '/usr/bin', '/usr/bin/rootme'].sort());
    expect(by['/tmp/miner']).toMatchObject({ type: 'file', elf: true, executable: true, whiteout: false, copied: 'node/upper/tmp/miner' });
    expect(by['/usr/bin/rootme']).toMatchObject({ setuid: true, mode: '4755', copied: 'node/upper/usr/bin/rootme' });
    expect(by['/etc/hosts']).toMatchObject({ copied: null, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(by['/etc/link']).toMatchObject({ type: 'symlink', linkTarget: '/etc/shadow' });
    expect(d.artifacts.get('node/upper/tmp/miner')).toEqual(ELF);
    expect(d.notes.map((n) => n.message)).toContainEqual(expect.stringMatching(/upperdir \/var\/lib\/containerd\/snap\/9\/fs.*opaque/));

    const findings = json(d, 'node/findings.json');
    const kinds = findings.map((f: any) => f.kind);
    expect(kinds.filter((k: string) => k === 'upper-layer-executable')).toHaveLength(2);
    expect(kinds).toContain('upper-layer-setuid');
    if (whiteoutMade) {
      expect(by['/etc/motd']).toMatchObject({ type: 'other', whiteout: true, sha256: null });
      expect(findings).toContainEqual(expect.objectContaining({ kind: 'upper-layer-deleted-file', summary: expect.stringMatching(/^\/etc\/motd was deleted/) }));
      expect(d.summary!.whiteouts).toBe(1);
    }
    expect(d.summary).toMatchObject({ hostPid: 4242, copied: 2, findings: findings.length });
  });

  it('scans host cgroups when init.pid is stale', async () => {
    await setup([hostProcess(77, { cgroup: '0::/other\n' }), hostProcess(4300, { startTicks: 9000 }), hostProcess(4242, { startTicks: 5000 })], '77');
    const d = await runAndDecode((w) => collectNode(options(), w));
    expect(json(d, 'node/host-process.json').hostPid).toBe(4242);
    expect(d.notes.map((n) => n.message)).toEqual(expect.arrayContaining([expect.stringMatching(/init.pid 77 is not in a cgroup/), 'host pid 4242 found by scanning cgroups']));
  });

  it('says why when the container root is not overlay', async () => {
    await setup([hostProcess(4242, { mountinfo: '1250 1180 8:1 / / rw - ext4 /dev/sda1 rw\n' })], '4242');
    const d = await runAndDecode((w) => collectNode(options(), w));
    expect(json(d, 'node/upper-layer.json')).toEqual({ overlay: false, reason: 'the container root is ext4, not overlay' });
    expect(d.notes).toContainEqual({ level: 'warn', message: 'no upper layer walked: the container root is ext4, not overlay' });
    expect(d.order.some((n) => n.startsWith('node/upper/'))).toBe(false);
  });
});
