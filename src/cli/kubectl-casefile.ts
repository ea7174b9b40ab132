#!/usr/bin/env node
// kubectl-casefile: the kubectl plugin (`kubectl casefile ...`). It talks to the cluster through
// kubectl itself, so kubectl's own flags (--kubeconfig, --context, -n, --as, --as-group) mean what they
// always mean and the user's credentials are the only ones used. Arguments go to kubectl as an argv
// array, never through a shell.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { getCondition } from '../api/conditions.js';
import type { Investigation } from '../api/investigation.js';
import { errorMessage } from '../errors.js';
import { verifyAndReport } from './verify.js';
import { caseFilePath, investigationRequest, listTable, outcome, phaseConditions, progress, summary } from './plugin/view.js';

interface Globals {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  as?: string;
  asGroup?: string[];
}

const program = new Command('kubectl-casefile')
  .description('casefile from kubectl: open, follow, list, release and verify Investigations')
  .option('--kubeconfig <file>', 'kubeconfig file (as kubectl)')
  .option('--context <name>', 'kubeconfig context (as kubectl)')
  .option('-n, --namespace <ns>', 'namespace (as kubectl; default: the context\'s)')
  .option('--as <user>', 'impersonate this user (as kubectl)')
  .option('--as-group <group>', 'impersonate this group, repeatable (as kubectl)', (v: string, all: string[] = []) => [...all, v]);

function kubectlFlags(): string[] {
  const g = program.opts<Globals>();
  return [
    ...(g.kubeconfig ? ['--kubeconfig', g.kubeconfig] : []),
    ...(g.context ? ['--context', g.context] : []),
    ...(g.namespace ? ['--namespace', g.namespace] : []),
    ...(g.as ? ['--as', g.as] : []),
    ...(g.asGroup ?? []).flatMap((group) => ['--as-group', group]),
  ];
}

/** kubectl with the user's flags; rejects with kubectl's own message. */
function kubectl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.env.KUBECTL ?? 'kubectl', [...kubectlFlags(), ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(stderr.trim() || err.message));
      else resolve(stdout);
    });
    child.stdin?.end(input ?? '');
  });
}

/**
 * GET a path through the API server with kubectl's credentials (`kubectl get --raw`), streamed into
 * `file` (or stdout for `-`). The file appears only when the whole body arrived: a refused or broken
 * download leaves nothing that looks like a case.
 */
async function kubectlRawTo(apiPath: string, file: string): Promise<void> {
  const temp = file === '-' ? undefined : `${file}.partial-${process.pid}`;
  const out = temp ? createWriteStream(temp, { flags: 'wx' }) : process.stdout;
  const child = spawn(process.env.KUBECTL ?? 'kubectl', [...kubectlFlags(), 'get', '--raw', apiPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  child.stdout.pipe(out, { end: Boolean(temp) });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (temp) await new Promise<void>((resolve, reject) => (out.writableFinished ? resolve() : out.once('finish', resolve).once('error', reject)));
  if (code !== 0) {
    if (temp) await rm(temp, { force: true });
    throw new Error(stderr.trim() || `kubectl get --raw exited with ${code}`);
  }
  if (temp) await rename(temp, file);
}

/** The namespace a command means: -n, else the kubeconfig context's, else default (as kubectl decides). */
async function namespace(): Promise<string> {
  const given = program.opts<Globals>().namespace;
  if (given) return given;
  return (await kubectl(['config', 'view', '--minify', '-o', 'jsonpath={..namespace}']).catch(() => '')).trim() || 'default';
}

const read = async (name: string): Promise<Investigation> => JSON.parse(await kubectl(['get', 'investigations.casefile.dev', name, '-o', 'json'])) as Investigation;

const duration = (value: string): number => {
  const m = /^(\d+)(s|m|h)$/.exec(value);
  if (!m) throw new InvalidArgumentError('a duration such as 90s, 10m or 1h');
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
};

/** What `--wait` waits for: the case's outcome, read from one condition. */
interface Watch {
  until: (inv: Investigation) => 'done' | 'failed' | 'running';
  on: 'Ready' | 'Released';
}

/**
 * Follows a case until it is done or failed: plain progress lines, or on a terminal a phase table
 * redrawn in place. Resolves with the exit code: 0 done, 1 failed, 2 timed out.
 */
async function follow(name: string, timeoutMs: number, watch: Watch = { until: outcome, on: 'Ready' }, from?: Investigation): Promise<number> {
  const tty = process.stdout.isTTY === true;
  const deadline = Date.now() + timeoutMs;
  let last = from;
  let drawn = 0;
  for (;;) {
    const inv = await read(name);
    if (tty) {
      const lines = phaseConditions(inv).map((c) => `  ${c.status === 'True' ? '✔' : c.status === 'False' ? '✘' : '…'} ${c.type.padEnd(22)} ${c.reason}`);
      process.stdout.write(`${drawn > 0 ? `\x1b[${drawn}A\x1b[J` : ''}${[`${name}: ${inv.status?.phase ?? 'Pending'}`, ...lines].join('\n')}\n`);
      drawn = lines.length + 1;
    } else {
      for (const line of progress(last, inv)) console.log(line);
    }
    last = inv;
    const state = watch.until(inv);
    if (state !== 'running') {
      const verdict = getCondition(inv.status?.conditions, watch.on);
      const what = watch.on === 'Ready' ? (inv.status?.phase ?? 'Pending') : `${watch.on} ${verdict?.status ?? ''}`.trim();
      console.log(`${name}: ${what}${verdict ? ` (${verdict.reason}: ${verdict.message})` : ''}`);
      return state === 'done' ? 0 : 1;
    }
    if (Date.now() >= deadline) {
      console.error(`${name}: still ${inv.status?.phase ?? 'Pending'} after the timeout; kubectl casefile status ${name} shows where it is`);
      return 2;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

program
  .command('open')
  .description('open an Investigation of <pod> (manual alert); --wait follows it phase by phase')
  .argument('<pod>')
  .option('--name <name>', 'the Investigation\'s name (default: <pod>-<random>)')
  .option('--contain', 'isolate the pod\'s network first (containment.order ContainFirst)', false)
  .option('--live', 'capture live state from an ephemeral debug container', false)
  .option('--node', 'run the node collector (needs casefile-node-responder)', false)
  .option('--wait', 'follow the case until it is sealed or failed; exit 1 if it failed', false)
  .addOption(new Option('--timeout <duration>', 'how long --wait waits').default(600_000, '10m').argParser(duration))
  .action(async (pod: string, opts: { name?: string; contain: boolean; live: boolean; node: boolean; wait: boolean; timeout: number }) => {
    const created = (await kubectl(['create', '-f', '-', '-o', 'jsonpath={.metadata.name}'], JSON.stringify(investigationRequest(pod, opts)))).trim();
    console.log(`investigation.casefile.dev/${created} created`);
    if (opts.wait) process.exitCode = await follow(created, opts.timeout);
  });

program
  .command('get')
  .description('list Investigations (or one), with phase, pod and readiness')
  .argument('[name]')
  .option('-A, --all-namespaces', 'every namespace', false)
  .action(async (name: string | undefined, opts: { allNamespaces: boolean }) => {
    const items = name
      ? [await read(name)]
      : (JSON.parse(await kubectl(['get', 'investigations.casefile.dev', ...(opts.allNamespaces ? ['--all-namespaces'] : []), '-o', 'json'])) as { items: Investigation[] }).items;
    if (items.length === 0) return console.log('No Investigations found.');
    console.log(listTable(items, new Date(), opts.allNamespaces));
  });

program
  .command('status')
  .description('a readable summary of one case: pod, readiness, containment, case file, findings, every phase')
  .argument('<name>')
  .action(async (name: string) => {
    console.log(summary(await read(name)));
  });

program
  .command('release')
  .description('lift the containment of a case (spec.release: true); --wait until Released')
  .argument('<name>')
  .option('--wait', 'wait until casefile re-read and undid everything it applied', false)
  .addOption(new Option('--timeout <duration>', 'how long --wait waits').default(300_000, '5m').argParser(duration))
  .action(async (name: string, opts: { wait: boolean; timeout: number }) => {
    const before = await read(name);
    await kubectl(['patch', 'investigations.casefile.dev', name, '--type=merge', '-p', '{"spec":{"release":true}}']);
    console.log(`investigation.casefile.dev/${name} release requested`);
    if (!opts.wait) return;
    const released = (inv: Investigation) => {
      const c = getCondition(inv.status?.conditions, 'Released');
      return c?.status === 'True' ? 'done' : c?.status === 'False' ? 'failed' : 'running';
    };
    process.exitCode = await follow(name, opts.timeout, { until: released, on: 'Released' }, before);
  });

program
  .command('export')
  .description('download a sealed case file as a bundle (tar.gz) through the case-file API (needs casefile-viewer)')
  .argument('<name>')
  .option('-o, --output <file>', 'where to write it (- for stdout)', '')
  .option('--uid <uid8>', 'the first 8 hex digits of the UID, for a name whose Investigation was deleted and re-created')
  .action(async (name: string, opts: { output: string; uid?: string }) => {
    const file = opts.output || `${name}.tar.gz`;
    await kubectlRawTo(caseFilePath(await namespace(), name, 'bundle', opts.uid), file);
    if (file !== '-') console.log(`wrote ${file}; check it offline with: kubectl casefile verify ${file}`);
  });

program
  .command('report')
  .description("print a sealed case's report (Markdown), or save it as HTML with --html")
  .argument('<name>')
  .option('--html', 'the HTML report, saved to a file', false)
  .option('-o, --output <file>', 'where to write it (default: stdout for Markdown, <name>.html for HTML)')
  .option('--uid <uid8>', 'the first 8 hex digits of the UID, for a name whose Investigation was deleted and re-created')
  .action(async (name: string, opts: { html: boolean; output?: string; uid?: string }) => {
    const file = opts.output ?? (opts.html ? `${name}.html` : '-');
    await kubectlRawTo(caseFilePath(await namespace(), name, 'report', opts.uid, opts.html ? 'html' : undefined), file);
    if (file !== '-') console.log(`wrote ${file}`);
  });

program
  .command('verify')
  .description('verify a case directory or bundle (.tar.gz) offline: custody chain, MANIFEST.sha256, every file and the signature')
  .argument('<case-dir|bundle.tar.gz>')
  .option('--key <pem-file>', 'a public key the case must be signed by (repeatable: any one of them; ConfigMap casefile-signing-keys has every key casefile used)', (v: string, all: string[] = []) => [...all, v])
  .option('--require-signature', 'fail an unsigned case (without it, and without --key, an unsigned case passes with a warning)', false)
  .action(async (target: string, opts: { key?: string[]; requireSignature: boolean }) => {
    process.exitCode = await verifyAndReport(target, { keys: opts.key, requireSignature: opts.requireSignature });
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`kubectl casefile: ${errorMessage(err)}`);
  process.exitCode = 2;
});
