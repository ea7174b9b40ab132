import { createHash } from 'node:crypto';
import { readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { DELETED, errorCode, MAX_PROC_LIST_BYTES, NAMESPACES, parseIds, parseStat, parseStatus, pidDir, readHead, splitNul, type IdSet, type NamespaceName } from './procfs.js';

export type Role = 'target' | 'observer' | 'other';

/** What the collector keeps of one process between stages (the environment is read only when written out). */
export interface ProcessRecord {
  pid: number;
  ppid: number;
  name: string;
  state: string;
  startTicks: number;
  uid: IdSet | null;
  gid: IdSet | null;
  cmdline: string[];
  exe: string | null;
  exeDeleted: boolean;
  cwd: string | null;
  namespaces: Partial<Record<NamespaceName, string>>;
  cgroup: string;
  errors: string[];
  role: Role;
  inEntrypointTree: boolean;
}


/** The path a " (deleted)" exe/fd/map link named, without the suffix. */
export function stripDeleted(link: string): string {
  return link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : link;
}

/**
 * Reads one process. Returns null when it is gone before its stat could be read; any later
 * failure (it exited mid-read, EACCES) is recorded in `errors` and the field left empty.
 */
export async function readProcess(proc: string, pid: number): Promise<ProcessRecord | null> {
  const dir = pidDir(proc, pid);
  const errors: string[] = [];
  const attempt = async <T>(what: string, read: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      errors.push(`cannot read ${path.join(dir, what)}: ${errorCode(err)}`);
      return fallback;
    }
  };
  let stat;
  try {
    stat = parseStat(await readFile(path.join(dir, 'stat'), 'utf8'));
  } catch (err) {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ESRCH') return null;
    throw err;
  }
  const status = await attempt('status', async () => parseStatus(await readFile(path.join(dir, 'status'), 'utf8')), {} as Record<string, string>);
  const cmdline = await attempt(
    'cmdline',
    async () => {
      const { buf, truncated } = await readHead(path.join(dir, 'cmdline'), MAX_PROC_LIST_BYTES);
      if (truncated) errors.push(`${path.join(dir, 'cmdline')} is longer than ${MAX_PROC_LIST_BYTES} bytes: cmdline kept up to there`);
      return splitNul(buf);
    },
    [] as string[],
  );
  const exe = await attempt('exe', () => readlink(path.join(dir, 'exe')), null);
  const cwd = await attempt('cwd', () => readlink(path.join(dir, 'cwd')), null);
  const cgroup = await attempt('cgroup', () => readFile(path.join(dir, 'cgroup'), 'utf8'), '');
  const namespaces: Partial<Record<NamespaceName, string>> = {};
  for (const ns of NAMESPACES) {
    const link = await attempt(`ns/${ns}`, () => readlink(path.join(dir, 'ns', ns)), null);
    if (link !== null) namespaces[ns] = link;
  }
  return {
    pid,
    ppid: stat.ppid,
    name: stat.comm,
    state: stat.state,
    startTicks: stat.startTicks,
    uid: parseIds(status.Uid),
    gid: parseIds(status.Gid),
    cmdline,
    exe,
    exeDeleted: exe !== null && exe.endsWith(DELETED),
    cwd,
    namespaces,
    cgroup,
    errors,
    role: 'other',
    inEntrypointTree: false,
  };
}

export interface Classification {
  entrypointPid: number | null;
  /** How targets were recognised: by the container ID in their cgroup, or the mount-namespace fallback. */
  method: 'cgroup' | 'mount-namespace' | 'none';
}

/**
 * Assigns roles in place. Target: the cgroup names the container ID (cgroupfs v1 paths, systemd
 * cri-containerd-<id>.scope, v2 namespaced paths all contain it). Failing that, the processes in
 * the mount namespace of the lowest pid outside ours. Observer: our own mount namespace.
 */
export function classify(records: ProcessRecord[], containerId: string, selfMnt: string | null): Classification {
  let method: Classification['method'] = 'cgroup';
  const byCgroup = new Set(records.filter((r) => r.cgroup.includes(containerId)).map((r) => r.pid));
  let targets = byCgroup;
  if (targets.size === 0) {
    method = 'mount-namespace';
    const foreign = records.filter((r) => r.namespaces.mnt !== undefined && r.namespaces.mnt !== selfMnt);
    const mnt = foreign[0]?.namespaces.mnt; // records are in ascending pid order
    targets = new Set(foreign.filter((r) => r.namespaces.mnt === mnt).map((r) => r.pid));
    if (targets.size === 0) method = 'none';
  }
  for (const r of records) {
    if (targets.has(r.pid)) r.role = 'target';
    else if (selfMnt !== null && r.namespaces.mnt === selfMnt) r.role = 'observer';
    else r.role = 'other';
  }
  const entry = records
    .filter((r) => r.role === 'target')
    .reduce<ProcessRecord | null>((best, r) => (best === null || r.startTicks < best.startTicks || (r.startTicks === best.startTicks && r.pid < best.pid) ? r : best), null);
  if (entry !== null) {
    const byPid = new Map(records.map((r) => [r.pid, r]));
    for (const r of records) r.inEntrypointTree = reachesAncestor(r, entry.pid, byPid);
  }
  return { entrypointPid: entry?.pid ?? null, method };
}

function reachesAncestor(r: ProcessRecord, ancestor: number, byPid: Map<number, ProcessRecord>): boolean {
  const seen = new Set<number>();
  for (let cur: ProcessRecord | undefined = r; cur !== undefined && !seen.has(cur.pid); cur = byPid.get(cur.ppid)) {
    if (cur.pid === ancestor) return true;
    seen.add(cur.pid);
  }
  return false;
}

export type Environment = string[] | { redacted: true; sha256: string[] };

/** Redacted: each value replaced by its SHA-256, so equal secrets can still be matched across cases. */
export function redactEnvironment(entries: string[]): { redacted: true; sha256: string[] } {
  return {
    redacted: true,
    sha256: entries.map((entry) => {
      const eq = entry.indexOf('=');
      const name = eq === -1 ? entry : entry.slice(0, eq);
      const value = eq === -1 ? '' : entry.slice(eq + 1);
      return `${name}=sha256:${createHash('sha256').update(value, 'utf8').digest('hex')}`;
    }),
  };
}

/** The JSON form of one process in live/processes.json. */
export function processJson(r: ProcessRecord, startTime: string | null, environment: Environment | null): Record<string, unknown> {
  return {
    pid: r.pid,
    ppid: r.ppid,
    role: r.role,
    inEntrypointTree: r.inEntrypointTree,
    name: r.name,
    state: r.state,
    uid: r.uid,
    gid: r.gid,
    startTime,
    cmdline: r.cmdline,
    exe: r.exe,
    exeDeleted: r.exeDeleted,
    cwd: r.cwd,
    environment,
    namespaces: r.namespaces,
    cgroup: r.cgroup,
    errors: r.errors,
  };
}

/** "pid 42 (sh -c curl …)" for finding summaries; command cut so one finding stays one sentence. */
export function describeProcess(r: Pick<ProcessRecord, 'pid' | 'name' | 'cmdline'>): string {
  const cmd = r.cmdline.length > 0 ? r.cmdline.join(' ') : r.name;
  return `pid ${r.pid} (${cmd.length > 120 ? `${cmd.slice(0, 117)}...` : cmd})`;
}
