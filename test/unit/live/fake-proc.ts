import { createHash } from 'node:crypto';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { decodeFrames, FrameWriter, type Frame } from '../../../src/live/frames.js';

/** One process of a fake /proc tree. */
export interface FakeProcess {
  pid: number;
  ppid: number;
  comm: string;
  startTicks: number;
  cgroup: string;
  mnt: string;
  cmdline?: string[];
  environ?: string[];
  exe?: string;
  cwd?: string;
  uid?: number;
  fds?: Record<number, string>;
  maps?: string;
  /** Symlink target of /proc/<pid>/root. */
  root?: string;
  net?: Partial<Record<'tcp' | 'tcp6' | 'udp' | 'udp6', string>>;
  mountinfo?: string;
  /** Contents of /proc/<pid>/mem: bytes at addresses (a sparse file; no file when absent). */
  mem?: { address: number; data: Buffer }[];
  /** Files to leave out (simulating EACCES/exit races). */
  missing?: string[];
}

export const NET_HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

export function netLine(sl: number, local: string, remote: string, st: string, inode: number, uid = 0): string {
  return `   ${sl}: ${local} ${remote} ${st} 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;
}

export function statLine(p: Pick<FakeProcess, 'pid' | 'comm' | 'ppid' | 'startTicks'>, state = 'S'): string {
  // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
  const rest = [state, p.ppid, ...Array<number>(17).fill(0), p.startTicks, 1000, 200, 0];
  return `${p.pid} (${p.comm}) ${rest.join(' ')}\n`;
}

/** Writes a fake proc root: <dir>/stat, <dir>/self/ns/mnt, and one directory per process. */
export async function makeProc(dir: string, procs: FakeProcess[], opts: { btime?: number; selfMnt?: string } = {}): Promise<void> {
  await mkdir(path.join(dir, 'self', 'ns'), { recursive: true });
  await writeFile(path.join(dir, 'stat'), `cpu  1 2 3 4\nbtime ${opts.btime ?? 1_700_000_000}\nprocesses 99\n`);
  await symlink(opts.selfMnt ?? 'mnt:[4026531840]', path.join(dir, 'self', 'ns', 'mnt'));
  for (const p of procs) {
    const d = path.join(dir, String(p.pid));
    await mkdir(path.join(d, 'ns'), { recursive: true });
    await mkdir(path.join(d, 'fd'));
    await mkdir(path.join(d, 'net'));
    const skip = new Set(p.missing ?? []);
    const put = async (name: string, content: string | Buffer): Promise<void> => {
      if (!skip.has(name)) await writeFile(path.join(d, name), content);
    };
    const link = async (name: string, target: string | undefined): Promise<void> => {
      if (target !== undefined && !skip.has(name)) await symlink(target, path.join(d, name));
    };
    await put('stat', statLine(p));
    const uid = p.uid ?? 0;
    await put('status', `Name:\t${p.comm}\nState:\tS (sleeping)\nPPid:\t${p.ppid}\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t0\t0\t0\t0\n`);
    await put('cmdline', Buffer.from((p.cmdline ?? [p.comm]).map((a) => `${a}\0`).join('')));
    await put('environ', Buffer.from((p.environ ?? []).map((a) => `${a}\0`).join('')));
    await put('cgroup', p.cgroup);
    await put('maps', p.maps ?? '');
    await put('mountinfo', p.mountinfo ?? '');
    await link('exe', p.exe);
    await link('cwd', p.cwd ?? '/');
    await link('root', p.root);
    for (const ns of ['mnt', 'pid', 'net', 'uts', 'ipc', 'user', 'cgroup']) {
      if (!skip.has(`ns/${ns}`)) await symlink(ns === 'mnt' ? p.mnt : `${ns}:[4026531${ns.length}00]`, path.join(d, 'ns', ns));
    }
    if (p.mem !== undefined) {
      const handle = await open(path.join(d, 'mem'), 'w');
      for (const { address, data } of p.mem) await handle.write(data, 0, data.length, address);
      await handle.close();
    }
    for (const [fd, target] of Object.entries(p.fds ?? {})) await symlink(target, path.join(d, 'fd', fd));
    for (const [proto, text] of Object.entries(p.net ?? {})) await writeFile(path.join(d, 'net', proto), NET_HEADER + text);
  }
}

export interface Decoded {
  artifacts: Map<string, Buffer>;
  order: string[];
  notes: { level: string; message: string }[];
  summary: Record<string, number> | null;
  frames: Frame[];
}

/** Runs a collector against a PassThrough and decodes its output with decodeFrames, checking every close frame. */
export async function runAndDecode(collect: (w: FrameWriter) => Promise<unknown>): Promise<Decoded> {
  const out = new PassThrough();
  const frames: Frame[] = [];
  const decoding = (async () => {
    for await (const f of decodeFrames(out)) frames.push(f);
  })();
  await collect(new FrameWriter(out));
  out.end();
  await decoding;
  const result: Decoded = { artifacts: new Map(), order: [], notes: [], summary: null, frames };
  let name: string | null = null;
  let parts: Buffer[] = [];
  for (const f of frames) {
    if (f.t === 'open') [name, parts] = [f.artifact, []];
    else if (f.t === 'data') parts.push(f.chunk);
    else if (f.t === 'close') {
      const content = Buffer.concat(parts);
      if (f.sha256 !== createHash('sha256').update(content).digest('hex') || f.bytes !== content.length) throw new Error(`bad close of ${name}`);
      result.artifacts.set(name!, content);
      result.order.push(name!);
    } else if (f.t === 'note') result.notes.push({ level: f.level, message: f.message });
    else result.summary = f.summary;
  }
  return result;
}

export function json<T = any>(d: Decoded, name: string): T {
  const buf = d.artifacts.get(name);
  if (buf === undefined) throw new Error(`no artifact ${name}; have ${[...d.artifacts.keys()].join(', ')}`);
  return JSON.parse(buf.toString('utf8')) as T;
}
