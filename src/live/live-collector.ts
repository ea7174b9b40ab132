import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { CidrSet, isLoopback, isUnspecified } from './cidrs.js';
import { collectTree, type TreeOptions } from './file-tree.js';
import { emitFindings, Findings, type Finding } from './findings.js';
import { FrameWriter } from './frames.js';
import { inspectChunks } from './files.js';
import { emitIndicators, IndicatorScanner, scannedArtifact } from './indicators.js';
import { jsonArray, jsonObjectWithArray } from './json-stream.js';
import { collectMemory, type MemoryScope } from './memory.js';
import { suspiciousRegion, type SuspiciousRegion } from './maps.js';
import { classify, describeProcess, processJson, readProcess, redactEnvironment, stripDeleted, type Environment, type ProcessRecord } from './processes.js';
import { CLK_TCK, errorCode, lines, listPids, MAX_PROC_LIST_BYTES, parseBootTime, pidDir, readChunks, readHead, splitNul, startTimeIso, tapLines } from './procfs.js';
import { Run, streamOrNote } from './run.js';
import { parseSocketLine, SOCKET_PROTOS, socketInode, type SocketEntry, type SocketOwner } from './sockets.js';

export interface DeclaredPort {
  proto: 'tcp' | 'udp';
  port: number;
}

export interface LiveOptions {
  containerId: string;
  /** Writable paths to walk, as seen in the container. */
  paths: string[];
  maxFileBytes: number;
  redactEnvironment: boolean;
  declaredPorts: DeclaredPort[];
  clusterCidrs: string[];
  proc: string;
  /** Entry cap of the files walk (tests lower it). */
  maxEntries?: number;
  /** Files larger than this are not read (a sparse 16 TiB file): recorded by size and allocated bytes. */
  maxHashBytes: number;
  /** The files walk stops after this long; everything before it is already written. */
  walkSeconds: number;
  memoryScope: MemoryScope;
  /** Bytes of process memory copied per case; regions past it are listed, not copied. */
  memoryMaxBytes: number;
}

const LIVE_COUNTERS = ['processes', 'targetProcesses', 'memoryRegions', 'memoryBytes', 'sockets', 'files', 'copied', 'recovered', 'indicators', 'findings'];

/** Whether `p` (a container path) is `dir` or below it. */
function isUnder(p: string, dir: string): boolean {
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return p === dir || p.startsWith(d);
}

/**
 * The live collector, run in the debug container that shares the suspect's PID namespace.
 * Emits artifacts in order of volatility: processes, memory, fds, sockets, maps, mountinfo, recovered
 * executables, findings, then the files walk (the suspect controls how long that takes; it has its
 * own deadline), the indicators found in memory and dropped files, and the findings about files; then `done`.
 */
export async function collectLive(opts: LiveOptions, writer: FrameWriter): Promise<Record<string, number>> {
  const run = new Run(writer, LIVE_COUNTERS);
  const findings = new Findings();
  const indicators = new IndicatorScanner();
  run.observer = { open: (artifact) => (scannedArtifact(artifact) ? indicators.open(artifact) : null) };
  const proc = opts.proc;

  // --- processes ---
  let selfMnt: string | null = null;
  try {
    selfMnt = await readlink(path.join(proc, 'self', 'ns', 'mnt'));
  } catch (err) {
    await run.note('warn', `cannot read ${path.join(proc, 'self/ns/mnt')}: ${errorCode(err)}; observer processes cannot be told apart`);
  }
  let bootTime: number | null = null;
  try {
    bootTime = parseBootTime(await readFile(path.join(proc, 'stat'), 'utf8'));
  } catch (err) {
    await run.note('warn', `cannot read boot time from ${path.join(proc, 'stat')}: ${errorCode(err)}; start times omitted`);
  }
  const records: ProcessRecord[] = [];
  for (const pid of await listPids(proc)) {
    try {
      const r = await readProcess(proc, pid);
      if (r === null) await run.note('info', `pid ${pid} exited before it could be read`);
      else records.push(r);
    } catch (err) {
      await run.note('warn', `cannot read ${path.join(pidDir(proc, pid), 'stat')}: ${errorCode(err)}`);
    }
  }
  for (const r of records) for (const e of r.errors) await run.note('warn', e);
  const { entrypointPid, method } = classify(records, opts.containerId, selfMnt);
  const targets = records.filter((r) => r.role === 'target');
  run.count('processes', records.length);
  run.count('targetProcesses', targets.length);
  if (method === 'mount-namespace') await run.note('warn', `no process cgroup names container ${opts.containerId}: targets chosen by mount namespace (that of pid ${entrypointPid})`);
  if (method === 'none') await run.note('warn', `no process of container ${opts.containerId} found: no cgroup names it and no process is outside the collector's mount namespace`);
  const entry = records.find((r) => r.pid === entrypointPid) ?? null;
  const startTime = (r: ProcessRecord): string | null => (bootTime === null ? null : startTimeIso(bootTime, r.startTicks));

  await run.artifact(
    'live/processes.json',
    jsonObjectWithArray(
      {
        capturedAt: new Date().toISOString(),
        containerId: opts.containerId,
        entrypointPid,
        bootTime: bootTime === null ? null : new Date(bootTime * 1000).toISOString(),
        classification: method,
        clockTicksPerSecond: CLK_TCK,
      },
      'processes',
      (async function* () {
        for (const r of records) yield processJson(r, startTime(r), await readEnvironment(proc, r, opts.redactEnvironment, run));
      })(),
    ),
  );
  await run.artifact('live/raw/processes.txt', rawProcesses(proc, records));
  processFindings(targets, entry, opts.paths, findings);

  // --- memory of the target's processes (never of the observer's) ---
  await collectMemory(proc, targets, { scope: opts.memoryScope, maxBytes: opts.memoryMaxBytes }, run, findings);

  // --- fds (every process is read: any of them may own a socket; only targets are written) ---
  const owners = new Map<number, SocketOwner[]>();
  await run.artifact(
    'live/fds.json',
    jsonArray(
      (async function* () {
        for (const r of records) {
          const fds = await readFds(proc, r, run);
          for (const fd of fds) {
            const inode = socketInode(fd.target);
            if (inode === null) continue;
            const list = owners.get(inode) ?? [];
            list.push({ pid: r.pid, fd: fd.fd, name: r.name, role: r.role });
            owners.set(inode, list);
          }
          if (r.role === 'target') yield { pid: r.pid, fds };
        }
      })(),
    ),
  );

  // --- sockets: one network namespace for the pod; the entrypoint's, else our own (same pod) ---
  const netPid = entrypointPid ?? 'self';
  const cidrs = new CidrSet(opts.clusterCidrs);
  await run.artifact(
    'live/sockets.json',
    jsonObjectWithArray(
      { netNamespaceOf: netPid },
      'sockets',
      (async function* () {
        for (const proto of SOCKET_PROTOS) {
          const file = path.join(pidDir(proc, netPid), 'net', proto);
          try {
            for await (const line of lines(readChunks(file))) {
              let parsed;
              try {
                parsed = parseSocketLine(proto, line);
              } catch (err) {
                await run.note('warn', `${file}: unparsable line ${JSON.stringify(line.slice(0, 200))}: ${(err as Error).message}`);
                continue;
              }
              if (parsed === null) continue;
              const socket: SocketEntry = { ...parsed, owners: owners.get(parsed.inode) ?? [] };
              run.count('sockets');
              socketFindings(socket, cidrs, opts.declaredPorts, findings);
              yield socket;
            }
          } catch (err) {
            await run.note(errorCode(err) === 'ENOENT' ? 'info' : 'warn', `cannot read ${file}: ${errorCode(err)}`);
          }
        }
      })(),
    ),
  );
  for (const proto of SOCKET_PROTOS) {
    const file = path.join(pidDir(proc, netPid), 'net', proto);
    await run.artifact(`live/raw/net-${proto}.txt`, streamOrNote(readChunks(file), `cannot read ${file}`, run));
  }

  // --- maps ---
  const regions = new Map<number, SuspiciousRegion[]>();
  await run.artifact(
    'live/maps.txt',
    (async function* () {
      for (const r of targets) {
        const file = path.join(pidDir(proc, r.pid), 'maps');
        yield `==> ${file} <==\n`;
        const found: SuspiciousRegion[] = [];
        yield* streamOrNote(
          tapLines(readChunks(file), (line) => {
            const region = suspiciousRegion(line);
            if (region !== null) found.push(region);
          }),
          `cannot read ${file}`,
          run,
        );
        if (found.length > 0) regions.set(r.pid, found);
      }
    })(),
  );
  await run.artifact('live/maps.json', jsonArray([...regions].map(([pid, list]) => ({ pid, regions: list }))));
  for (const r of targets) {
    const list = regions.get(r.pid);
    if (list !== undefined) mapsFindings(r, list, findings);
  }

  // --- mountinfo ---
  const mountinfo = path.join(pidDir(proc, netPid), 'mountinfo');
  await run.artifact('live/mountinfo.txt', streamOrNote(readChunks(mountinfo), `cannot read ${mountinfo}`, run));

  // --- recovered deleted executables ---
  await recoverExecutables(proc, targets, opts.maxFileBytes, run);

  // --- findings so far: written before the walk, so a walk the suspect makes slow loses none ---
  await emitFindings('live/findings.json', findings, run);

  // --- files in writable paths, seen through the entrypoint's root ---
  const fileFindings = new Findings();
  const treeOptions: TreeOptions = {
    artifact: 'live/files.json',
    copyPrefix: 'live/files/',
    maxFileBytes: opts.maxFileBytes,
    maxHashBytes: opts.maxHashBytes,
    maxEntries: opts.maxEntries ?? 100_000,
    deadline: Date.now() + opts.walkSeconds * 1000,
    walkSeconds: opts.walkSeconds,
    includeStart: true,
  };
  if (entry === null) {
    await run.note('warn', 'no target process: writable paths cannot be walked (no root to see them through)');
    await run.artifact('live/files.json', '[]\n');
  } else {
    await collectTree(path.join(pidDir(proc, entry.pid), 'root'), opts.paths, treeOptions, run, (f) => {
      if (f.type !== 'file') return;
      if (f.setuid || f.setgid) {
        fileFindings.add({
          severity: 'high',
          kind: 'setuid-file-in-writable-path',
          summary: `${f.path} is ${f.setuid ? 'setuid' : 'setgid'} (mode ${f.mode}, owner ${f.uid}) in a writable path.`,
          artifact: f.copied ?? 'live/files.json',
        });
      }
      if (f.executable || f.elf || f.script) {
        const what = [f.elf ? 'an ELF binary' : f.script ? 'a script' : 'a file', f.executable ? 'with execute permission' : 'without execute permission'].join(' ');
        fileFindings.add({
          severity: f.executable || f.elf ? 'high' : 'medium',
          kind: 'dropped-file',
          summary: `${f.path} is ${what} (mode ${f.mode}, ${f.size} bytes, sha256 ${f.sha256 ?? 'unknown'}) in a writable path.`,
          artifact: f.copied ?? 'live/files.json',
        });
      }
    });
  }

  await emitIndicators(indicators, run, fileFindings);
  await emitFindings('live/file-findings.json', fileFindings, run);
  await run.done();
  return run.counts;
}

async function readEnvironment(proc: string, r: ProcessRecord, redact: boolean, run: Run): Promise<Environment | null> {
  const file = path.join(pidDir(proc, r.pid), 'environ');
  try {
    const { buf, truncated } = await readHead(file, MAX_PROC_LIST_BYTES);
    if (truncated) await run.note('warn', `${file} is longer than ${MAX_PROC_LIST_BYTES} bytes: environment kept up to there`);
    const entries = splitNul(buf);
    return redact ? redactEnvironment(entries) : entries;
  } catch (err) {
    const message = `cannot read ${file}: ${errorCode(err)}`;
    r.errors.push(message);
    await run.note('warn', message);
    return null;
  }
}

const RAW_FILES = ['status', 'stat', 'cmdline', 'cgroup'] as const;

async function* rawProcesses(proc: string, records: ProcessRecord[]): AsyncGenerator<Buffer | string> {
  for (const r of records) {
    for (const name of RAW_FILES) {
      const file = path.join(pidDir(proc, r.pid), name);
      yield `==> ${file} <==\n`;
      try {
        for await (const chunk of readChunks(file, MAX_PROC_LIST_BYTES)) yield name === 'cmdline' ? Buffer.from(chunk.map((b) => (b === 0 ? 0x20 : b))) : chunk;
        if (name === 'cmdline') yield '\n';
      } catch (err) {
        yield `(cannot read: ${errorCode(err)})\n`;
      }
    }
  }
}

async function readFds(proc: string, r: ProcessRecord, run: Run): Promise<{ fd: number; target: string }[]> {
  const dir = path.join(pidDir(proc, r.pid), 'fd');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const message = `cannot list ${dir}: ${errorCode(err)}`;
    r.errors.push(message);
    if (r.role === 'target') await run.note('warn', message);
    return [];
  }
  const fds: { fd: number; target: string }[] = [];
  for (const name of names.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b))) {
    try {
      fds.push({ fd: Number(name), target: await readlink(path.join(dir, name)) });
    } catch (err) {
      // A descriptor closed between readdir and readlink is ordinary churn, not a finding.
      if (errorCode(err) !== 'ENOENT' && r.role === 'target') await run.note('warn', `cannot read ${path.join(dir, name)}: ${errorCode(err)}`);
    }
  }
  return fds;
}

function processFindings(targets: ProcessRecord[], entry: ProcessRecord | null, writable: string[], findings: Findings): void {
  for (const r of targets) {
    const who = describeProcess(r);
    if (r.exe !== null) {
      const exePath = stripDeleted(r.exe);
      const dir = writable.find((w) => isUnder(exePath, w));
      if (dir !== undefined) {
        findings.add({
          severity: 'critical',
          kind: 'executable-in-writable-path',
          summary: `${who} runs ${r.exe}, an executable under the writable path ${dir}.`,
          artifact: 'live/processes.json',
          pid: r.pid,
        });
      }
    }
    if (r.exeDeleted) {
      findings.add({
        severity: 'high',
        kind: 'deleted-executable-running',
        summary: `${who} runs ${r.exe}: its executable was deleted after it started; the binary is recovered from /proc/${r.pid}/exe.`,
        artifact: 'live/recovered.json',
        pid: r.pid,
      });
    }
    if (entry !== null && !r.inEntrypointTree) {
      findings.add({
        severity: 'high',
        kind: 'process-outside-entrypoint-tree',
        summary: `${who} is not a descendant of the entrypoint ${describeProcess(entry)}: it was started by an exec into the container or has escaped its parent.`,
        artifact: 'live/processes.json',
        pid: r.pid,
      });
    }
  }
}

function ownersText(owners: SocketOwner[]): string {
  if (owners.length === 0) return 'no visible process holds it';
  return `held by ${owners.map((o) => `pid ${o.pid} (${o.name}, ${o.role})`).join(', ')}`;
}

function endpoint(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function socketFindings(s: SocketEntry, cidrs: CidrSet, declared: DeclaredPort[], findings: Findings): void {
  const firstOwner = s.owners[0]?.pid;
  const withPid = (f: Finding): Finding => (firstOwner === undefined ? f : { ...f, pid: firstOwner });
  const remote = s.remote.address;
  if ((s.state === 'ESTABLISHED' || s.state === 'SYN_SENT') && !isLoopback(remote) && !isUnspecified(remote) && !cidrs.has(remote)) {
    findings.add(
      withPid({
        severity: 'high',
        kind: 'external-connection',
        summary: `${s.proto} ${endpoint(s.local)} -> ${endpoint(s.remote)} is ${s.state} to an address outside the cluster CIDRs, ${ownersText(s.owners)}.`,
        artifact: 'live/sockets.json',
      }),
    );
  }
  const proto = s.proto.startsWith('tcp') ? 'tcp' : 'udp';
  const listening = proto === 'tcp' ? s.state === 'LISTEN' : isUnspecified(remote) && s.remote.port === 0;
  if (listening && !declared.some((d) => d.proto === proto && d.port === s.local.port)) {
    const loopback = isLoopback(s.local.address);
    findings.add(
      withPid({
        severity: loopback ? 'low' : 'medium',
        kind: 'undeclared-listener',
        summary: `${s.proto} port ${s.local.port} is bound on ${s.local.address}${loopback ? ' (loopback only: reachable from inside the pod)' : ''} but not declared, ${ownersText(s.owners)}.`,
        artifact: 'live/sockets.json',
      }),
    );
  }
}

function mapsFindings(r: ProcessRecord, list: SuspiciousRegion[], findings: Findings): void {
  const deleted = list.filter((x) => x.reason === 'deleted-file-executable');
  const jitLike = list.some((x) => x.reason !== 'deleted-file-executable');
  const reasons = [...new Set(list.map((x) => x.reason))].join(', ');
  findings.add({
    severity: deleted.length > 0 ? 'high' : 'low',
    kind: 'writable-executable-memory',
    summary:
      `${describeProcess(r)} has ${list.length} suspicious executable memory region(s) (${reasons})` +
      (deleted.length > 0 ? `, code mapped from deleted file ${deleted[0]!.path}` : '') +
      (jitLike ? '; JIT runtimes (Java, Node.js, .NET, browsers) create rwx and anonymous executable regions legitimately.' : '.'),
    artifact: 'live/maps.json',
    pid: r.pid,
  });
}

/** Copies each deleted executable once per (dev, inode), hashed always, copied within the size cap. */
async function recoverExecutables(proc: string, targets: ProcessRecord[], maxFileBytes: number, run: Run): Promise<void> {
  const seen = new Map<string, { sha256: string | null; bytes: number | null; copied: string | null }>();
  const entries: Record<string, unknown>[] = [];
  for (const r of targets.filter((t) => t.exeDeleted)) {
    const exeLink = path.join(pidDir(proc, r.pid), 'exe');
    let st;
    try {
      st = await stat(exeLink);
    } catch (err) {
      await run.note('warn', `cannot recover ${r.exe} of pid ${r.pid}: ${errorCode(err)}`);
      entries.push({ pid: r.pid, exe: r.exe, sha256: null, bytes: null, copied: null, error: errorCode(err) });
      continue;
    }
    const key = `${st.dev}:${st.ino}`;
    let result = seen.get(key);
    if (result === undefined) {
      result = await recoverOne(exeLink, r, st.size, maxFileBytes, run);
      seen.set(key, result);
    }
    entries.push({ pid: r.pid, exe: r.exe, dev: st.dev, inode: st.ino, ...result });
  }
  if (entries.length === 0) await run.note('info', 'no target process runs a deleted executable');
  await run.artifact('live/recovered.json', jsonArray(entries));
}

async function recoverOne(exeLink: string, r: ProcessRecord, size: number, maxFileBytes: number, run: Run): Promise<{ sha256: string | null; bytes: number | null; copied: string | null }> {
  // Opening /proc/<pid>/exe reaches the running inode even though its name is gone.
  if (size <= maxFileBytes) {
    const name = `live/recovered/${r.pid}-exe`;
    const sent = await run.artifact(name, readChunks(exeLink, maxFileBytes));
    if (sent === null) return { sha256: null, bytes: null, copied: null };
    run.count('recovered');
    run.count('copied');
    return { ...sent, copied: name };
  }
  try {
    const { sha256, bytes } = await inspectChunks(readChunks(exeLink));
    run.count('recovered');
    await run.note('info', `${r.exe} of pid ${r.pid} is ${bytes} bytes, over --max-file-bytes ${maxFileBytes}: hashed (${sha256}), not copied`);
    return { sha256, bytes, copied: null };
  } catch (err) {
    await run.note('warn', `cannot hash ${r.exe} of pid ${r.pid}: ${errorCode(err)}`);
    return { sha256: null, bytes: null, copied: null };
  }
}


