import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { collectTree } from './file-tree.js';
import { emitFindings, Findings } from './findings.js';
import { FrameWriter } from './frames.js';
import { parseMountinfoLine, parseOverlayOptions, type MountInfo } from './overlay.js';
import { readProcess } from './processes.js';
import { errorCode, listPids, parseBootTime, parseStat, parseStatus, pidDir, readChunks, startTimeIso, tapLines } from './procfs.js';
import { Run, streamOrNote } from './run.js';

export interface NodeOptions {
  containerId: string;
  /** The host's /proc as mounted in the collector pod. */
  hostProc: string;
  /** Where the host's filesystem paths are mounted ('/host'): runtime dirs and upperdir are read under it. */
  hostPrefix: string;
  /** containerd v2 shim state directory of the Kubernetes namespace, as a host path. */
  runtimeState: string;
  maxFileBytes: number;
  maxHashBytes: number;
  walkSeconds: number;
  maxEntries?: number;
}

export const DEFAULT_RUNTIME_STATE = '/run/containerd/io.containerd.runtime.v2.task/k8s.io';
const NODE_COUNTERS = ['hostPid', 'files', 'copied', 'whiteouts', 'findings'];

/** Joins a host path under the prefix the host's filesystem is mounted at. */
function onHost(prefix: string, hostPath: string): string {
  return path.join(prefix, hostPath);
}

/**
 * The node collector: a short-lived hostPID pod on the target's node. Finds the container's host
 * PID and runtime state, copies its cgroup and mount table, and walks the overlay upper layer
 * (everything the container wrote, and whiteouts for what it deleted).
 */
export async function collectNode(opts: NodeOptions, writer: FrameWriter): Promise<Record<string, number>> {
  const run = new Run(writer, NODE_COUNTERS);
  const findings = new Findings();
  const bundle = path.posix.join(opts.runtimeState, opts.containerId);
  const runtimeDir = onHost(opts.hostPrefix, bundle);

  // --- runtime state (containerd v2 shim: init.pid, config.json, rootfs/, work -> ...) ---
  let files: string[] = [];
  try {
    files = (await readdir(runtimeDir)).sort();
  } catch (err) {
    await run.note('warn', `cannot list runtime state ${bundle}: ${errorCode(err)}`);
  }
  let initPid: number | null = null;
  if (files.includes('init.pid')) {
    const text = (await readFile(path.join(runtimeDir, 'init.pid'), 'utf8').catch(() => '')).trim();
    initPid = /^[1-9]\d*$/.test(text) ? Number(text) : null;
    if (initPid === null) await run.note('warn', `${bundle}/init.pid does not hold a pid: ${JSON.stringify(text.slice(0, 40))}`);
  }

  const hostPid = await findHostPid(opts, initPid, run);
  run.count('hostPid', hostPid ?? 0);

  // --- host process ---
  if (hostPid !== null) {
    const record = await readProcess(opts.hostProc, hostPid).catch(async (err: unknown) => {
      await run.note('warn', `cannot read host pid ${hostPid}: ${errorCode(err)}`);
      return null;
    });
    let bootTime: number | null = null;
    try {
      bootTime = parseBootTime(await readFile(path.join(opts.hostProc, 'stat'), 'utf8'));
    } catch (err) {
      await run.note('warn', `cannot read boot time from ${path.join(opts.hostProc, 'stat')}: ${errorCode(err)}`);
    }
    let status: Record<string, string> = {};
    try {
      status = parseStatus(await readFile(path.join(pidDir(opts.hostProc, hostPid), 'status'), 'utf8'));
    } catch (err) {
      await run.note('warn', `cannot read status of host pid ${hostPid}: ${errorCode(err)}`);
    }
    if (record === null) await run.note('warn', `host pid ${hostPid} could not be read (exited?): host-process.json has its status only`);
    for (const e of record?.errors ?? []) await run.note('warn', e);
    await run.artifact(
      'node/host-process.json',
      `${JSON.stringify(
        {
          containerId: opts.containerId,
          hostPid,
          ppid: record?.ppid ?? null,
          name: record?.name ?? null,
          cmdline: record?.cmdline ?? null,
          exe: record?.exe ?? null,
          startTime: record && bootTime !== null ? startTimeIso(bootTime, record.startTicks) : null,
          cgroup: record?.cgroup ?? null,
          namespaces: record?.namespaces ?? null,
          status,
          errors: record?.errors ?? [],
        },
        null,
        2,
      )}\n`,
    );
  } else {
    await run.artifact('node/host-process.json', `${JSON.stringify({ containerId: opts.containerId, hostPid: null, reason: 'no host process of the container found' }, null, 2)}\n`);
  }

  if (files.includes('config.json')) {
    await run.artifact('node/runtime/config.json', readChunks(path.join(runtimeDir, 'config.json')));
  } else {
    await run.note('warn', `no OCI spec at ${bundle}/config.json`);
  }
  await run.artifact('node/runtime/state.json', `${JSON.stringify({ runtimeDir: bundle, files, initPid, bundle }, null, 2)}\n`);

  // --- cgroup and mount table; the mount table also tells where the upper layer is ---
  let rootMount: MountInfo | null = null;
  if (hostPid !== null) {
    const dir = pidDir(opts.hostProc, hostPid);
    await run.artifact('node/cgroup.txt', streamOrNote(readChunks(path.join(dir, 'cgroup')), `cannot read ${path.join(dir, 'cgroup')}`, run));
    await run.artifact(
      'node/mountinfo.txt',
      streamOrNote(
        tapLines(readChunks(path.join(dir, 'mountinfo')), (line) => {
          const m = parseMountinfoLine(line);
          if (m !== null && m.mountPoint === '/') rootMount = m; // the last "/" mount is the one on top
        }),
        `cannot read ${path.join(dir, 'mountinfo')}`,
        run,
      ),
    );
  }

  // --- overlay upper layer ---
  const root = rootMount as MountInfo | null;
  const upperdir = root?.fsType === 'overlay' ? parseOverlayOptions(root.superOptions) : null;
  if (root === null || upperdir === null || upperdir.upperdir === null) {
    const reason =
      hostPid === null ? 'the container has no host process to read a mount table from'
      : root === null ? 'no "/" mount in the container mount table'
      : root.fsType !== 'overlay' ? `the container root is ${root.fsType}, not overlay`
      : 'the overlay root mount shows no upperdir';
    await run.note('warn', `no upper layer walked: ${reason}`);
    await run.artifact('node/upper-layer.json', `${JSON.stringify({ overlay: root?.fsType === 'overlay', reason })}\n`);
  } else {
    await run.note('info', `overlay root: upperdir ${upperdir.upperdir}, workdir ${upperdir.workdir}, ${upperdir.lowerdir.length} lower layer(s); opaque-directory xattrs are not readable from Node and are omitted`);
    await collectTree(
      onHost(opts.hostPrefix, upperdir.upperdir),
      ['/'],
      { artifact: 'node/upper-layer.json', copyPrefix: 'node/upper/', maxFileBytes: opts.maxFileBytes,
        maxHashBytes: opts.maxHashBytes,
        maxEntries: opts.maxEntries ?? 100_000,
        deadline: Date.now() + opts.walkSeconds * 1000,
        walkSeconds: opts.walkSeconds,
        whiteouts: true,
      },
      run,
      (f) => {
        if (f.whiteout) {
          run.count('whiteouts');
          findings.add({ severity: 'low', kind: 'upper-layer-deleted-file', summary: `${f.path} was deleted in the container (whiteout in the upper layer).`, artifact: 'node/upper-layer.json' });
        }
        if (f.type !== 'file') return;
        if (f.setuid || f.setgid) {
          findings.add({ severity: 'high', kind: 'upper-layer-setuid', summary: `${f.path} is ${f.setuid ? 'setuid' : 'setgid'} (mode ${f.mode}, owner ${f.uid}) and was written in the container.`, artifact: f.copied ?? 'node/upper-layer.json' });
        }
        if (f.executable || f.elf || f.script) {
          findings.add({
            severity: f.executable || f.elf ? 'high' : 'medium',
            kind: 'upper-layer-executable',
            summary: `${f.path} (${f.elf ? 'ELF' : f.script ? 'script' : 'executable'}, mode ${f.mode}, sha256 ${f.sha256 ?? 'unknown'}) was added or changed in the container's writable layer.`,
            artifact: f.copied ?? 'node/upper-layer.json',
          });
        }
      },
    );
  }

  await emitFindings('node/findings.json', findings, run);
  await run.done();
  return run.counts;
}

/** init.pid if its cgroup names the container; otherwise the earliest-started host process whose cgroup does. */
async function findHostPid(opts: NodeOptions, initPid: number | null, run: Run): Promise<number | null> {
  const names = async (pid: number): Promise<boolean> => (await readFile(path.join(pidDir(opts.hostProc, pid), 'cgroup'), 'utf8').catch(() => '')).includes(opts.containerId);
  if (initPid !== null) {
    if (await names(initPid)) return initPid;
    await run.note('warn', `init.pid ${initPid} is not in a cgroup of container ${opts.containerId} (exited or reused): scanning ${opts.hostProc}`);
  }
  let best: { pid: number; start: number } | null = null;
  for (const pid of await listPids(opts.hostProc)) {
    if (!(await names(pid))) continue;
    try {
      const { startTicks } = parseStat(await readFile(path.join(pidDir(opts.hostProc, pid), 'stat'), 'utf8'));
      if (best === null || startTicks < best.start) best = { pid, start: startTicks };
    } catch {
      // exited while scanning
    }
  }
  if (best === null) await run.note('warn', `no host process is in a cgroup of container ${opts.containerId}`);
  else await run.note('info', `host pid ${best.pid} found by scanning cgroups`);
  return best?.pid ?? null;
}
