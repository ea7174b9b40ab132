#!/usr/bin/env node
/**
 * Entry of the collectors in casefile's debug image. Imports only node built-ins and src/live
 * (startup time matters, and the image carries nothing else). Writes the frame stream of
 * frames.ts to stdout; exit 2 with a message on stderr for bad arguments.
 *
 *   collector-cli.js live --container-id <hex> --paths /tmp,/var/tmp,/dev/shm --max-file-bytes <n>
 *       [--redact-environment] [--declared-ports tcp/8080,udp/53] [--cluster-cidrs 10.88.0.0/16] [--proc /proc]
 *       [--memory-scope Suspicious|Anonymous|None] [--memory-max-bytes 268435456]
 *   collector-cli.js node --container-id <hex> --host-proc /host/proc --host-prefix /host --max-file-bytes <n>
 *       [--runtime-state /run/containerd/io.containerd.runtime.v2.task/k8s.io]
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCidr } from './cidrs.js';
import { FrameWriter } from './frames.js';
import { collectLive, type DeclaredPort, type LiveOptions } from './live-collector.js';
import { DEFAULT_MEMORY_MAX_BYTES, MEMORY_SCOPES, type MemoryScope } from './memory.js';
import { collectNode, DEFAULT_RUNTIME_STATE, type NodeOptions } from './node-collector.js';

export class UsageError extends Error {}

/** Files over this are not read: a suspect's 16 TiB sparse file is recorded by size and allocated bytes. */
const DEFAULT_MAX_HASH_BYTES = 256 * 1024 * 1024;
/** The files walk's own deadline: the suspect decides how many files there are and how slow they are to read. */
const DEFAULT_WALK_SECONDS = 60;

const USAGE = `usage:
  collector-cli.js live --container-id <hex> --paths <p1,p2,...> --max-file-bytes <n> [--redact-environment]
                        [--declared-ports tcp/8080,udp/53] [--cluster-cidrs 10.88.0.0/16,...] [--proc /proc]
                        [--max-hash-bytes ${DEFAULT_MAX_HASH_BYTES}] [--walk-seconds ${DEFAULT_WALK_SECONDS}]
                        [--memory-scope ${MEMORY_SCOPES.join('|')}] [--memory-max-bytes ${DEFAULT_MEMORY_MAX_BYTES}]
  collector-cli.js node --container-id <hex> --host-proc <dir> --host-prefix <dir> --max-file-bytes <n>
                        [--runtime-state ${DEFAULT_RUNTIME_STATE}] [--max-hash-bytes <n>] [--walk-seconds <n>]`;

const FLAGS = new Set(['--redact-environment']);
const VALUED: Record<'live' | 'node', string[]> = {
  live: ['--container-id', '--paths', '--max-file-bytes', '--declared-ports', '--cluster-cidrs', '--proc', '--max-hash-bytes', '--walk-seconds', '--memory-scope', '--memory-max-bytes'],
  node: ['--container-id', '--host-proc', '--host-prefix', '--max-file-bytes', '--runtime-state', '--max-hash-bytes', '--walk-seconds'],
};

export type Command = { mode: 'live'; options: LiveOptions } | { mode: 'node'; options: NodeOptions };

function splitList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** An absolute path, normalised, with no '..' (it names a place inside the container or on the host). */
function absolutePath(value: string, flag: string): string {
  if (!value.startsWith('/') || value.split('/').includes('..') || value.includes('\0')) throw new UsageError(`${flag}: ${JSON.stringify(value)} is not an absolute path without '..'`);
  const normal = path.posix.normalize(value);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

function containerId(value: string | undefined): string {
  if (value === undefined) throw new UsageError('--container-id is required');
  if (!/^[0-9a-f]{12,128}$/.test(value)) throw new UsageError(`--container-id: ${JSON.stringify(value)} is not a lowercase hex container ID`);
  return value;
}

function count(flag: string, value: string | undefined, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`);
    return fallback;
  }
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`${flag}: ${JSON.stringify(value)} is not a whole number`);
  return Number(value);
}

function bounds(values: Map<string, string>): { maxFileBytes: number; maxHashBytes: number; walkSeconds: number } {
  const walkSeconds = count('--walk-seconds', values.get('--walk-seconds'), DEFAULT_WALK_SECONDS);
  if (walkSeconds < 1) throw new UsageError('--walk-seconds must be at least 1');
  return {
    maxFileBytes: count('--max-file-bytes', values.get('--max-file-bytes')),
    maxHashBytes: count('--max-hash-bytes', values.get('--max-hash-bytes'), DEFAULT_MAX_HASH_BYTES),
    walkSeconds,
  };
}

function memoryScope(value: string | undefined): MemoryScope {
  if (value === undefined) return 'Suspicious';
  if (!(MEMORY_SCOPES as readonly string[]).includes(value)) throw new UsageError(`--memory-scope: ${JSON.stringify(value)} is not one of ${MEMORY_SCOPES.join(', ')}`);
  return value as MemoryScope;
}

function declaredPorts(value: string | undefined): DeclaredPort[] {
  return splitList(value ?? '').map((item) => {
    const m = /^(tcp|udp)\/(\d{1,5})$/.exec(item);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) throw new UsageError(`--declared-ports: ${JSON.stringify(item)} is not <tcp|udp>/<port>`);
    return { proto: m[1] as 'tcp' | 'udp', port };
  });
}

function cidrs(value: string | undefined): string[] {
  const list = splitList(value ?? '');
  for (const c of list) {
    try {
      parseCidr(c);
    } catch (err) {
      throw new UsageError(`--cluster-cidrs: ${(err as Error).message}`);
    }
  }
  return list;
}

/** Parses argv (without node and the script); throws UsageError. Accepts "--opt value" and "--opt=value". */
export function parseArgs(argv: string[]): Command {
  const [mode, ...rest] = argv;
  if (mode !== 'live' && mode !== 'node') throw new UsageError(mode === undefined ? 'a mode is required: live or node' : `unknown mode ${JSON.stringify(mode)}: live or node`);
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    if (mode === 'live' && FLAGS.has(name)) {
      if (eq !== -1) throw new UsageError(`${name} takes no value`);
      flags.add(name);
      continue;
    }
    if (!VALUED[mode].includes(name)) throw new UsageError(`unknown argument for ${mode}: ${JSON.stringify(arg)}`);
    if (values.has(name)) throw new UsageError(`${name} given twice`);
    const value = eq !== -1 ? arg.slice(eq + 1) : rest[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    values.set(name, value);
  }
  if (mode === 'live') {
    const paths = splitList(values.get('--paths') ?? '').map((p) => absolutePath(p, '--paths'));
    if (paths.length === 0) throw new UsageError('--paths is required (comma-separated absolute paths)');
    return {
      mode,
      options: {
        containerId: containerId(values.get('--container-id')),
        paths,
        ...bounds(values),
        redactEnvironment: flags.has('--redact-environment'),
        declaredPorts: declaredPorts(values.get('--declared-ports')),
        clusterCidrs: cidrs(values.get('--cluster-cidrs')),
        proc: absolutePath(values.get('--proc') ?? '/proc', '--proc'),
        memoryScope: memoryScope(values.get('--memory-scope')),
        memoryMaxBytes: count('--memory-max-bytes', values.get('--memory-max-bytes'), DEFAULT_MEMORY_MAX_BYTES),
      },
    };
  }
  const required = (flag: string): string => {
    const v = values.get(flag);
    if (v === undefined) throw new UsageError(`${flag} is required`);
    return absolutePath(v, flag);
  };
  return {
    mode,
    options: {
      containerId: containerId(values.get('--container-id')),
      hostProc: required('--host-proc'),
      hostPrefix: required('--host-prefix'),
      ...bounds(values),
      runtimeState: absolutePath(values.get('--runtime-state') ?? DEFAULT_RUNTIME_STATE, '--runtime-state'),
    },
  };
}

export async function main(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let command: Command;
  try {
    command = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`collector-cli: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  const writer = new FrameWriter(out);
  try {
    if (command.mode === 'live') await collectLive(command.options, writer);
    else await collectNode(command.options, writer);
    return 0;
  } catch (e) {
    // The stream ends without `done`: the operator records the capture as incomplete.
    err.write(`collector-cli: ${command.mode} collection failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

// Run when executed directly (argv[1] may be a symlink; Node reports this module by its real path).
if (process.argv[1] !== undefined && realpathSync(path.resolve(process.argv[1])) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2), process.stdout, process.stderr);
}
