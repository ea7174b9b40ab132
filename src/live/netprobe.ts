#!/usr/bin/env node
/**
 * The isolation probe in casefile's debug image (node built-ins only: it starts in tens of ms).
 * One JSON object per line on stdout.
 *
 *   netprobe.js suspect --egress <ip>:<port> --window-ms <n> --attempt-ms <n>
 *       Run by exec in casefile's ephemeral container beside a suspect, so in the suspect's own network
 *       namespace. Listens on a free port on every address (accepting and closing at once: it reads
 *       nothing and answers nothing), checks that the listener answers on 127.0.0.1 (loopback is not
 *       policed, so "nothing listening" is ruled out before anyone tries from outside), prints
 *       {"event":"listening",...}, then tries TCP to the egress target every 100 ms until an attempt
 *       fails or the window ends ({"event":"egress",...} per attempt, then {"event":"egress-done"}). It keeps listening until its
 *       stdin closes (the operator closes the exec when its ingress attempts are done) or the window
 *       and a margin pass, then exits: nothing of it outlives the verification.
 *   netprobe.js listen --port <n>
 *       The warm prober (config/prober): a listener that is not isolated, the ingress control.
 *       Accepts and closes; serves until the pod is deleted.
 */
import net from 'node:net';

export type Attempt = { result: 'open' | 'blocked' | 'error'; detail: string; ms: number };

/** Errors that mean the connection was refused or dropped on the way: what a policy does. */
const BLOCKED_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EPERM']);

/** One TCP connect to host:port, given up after `timeoutMs` (then "blocked": nothing answered). */
export function tryConnect(host: string, port: number, timeoutMs: number): Promise<Attempt> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let settled = false;
    const done = (result: Attempt['result'], detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ result, detail, ms: Date.now() - started });
    };
    const timer = setTimeout(() => done('blocked', `no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done('open', 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(BLOCKED_CODES.has(err.code ?? '') ? 'blocked' : 'error', err.code ?? err.message));
  });
}

/** A listener that accepts and closes: it reads nothing from whoever connects. */
function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => s.destroy());
    server.once('error', reject);
    server.listen({ port }, () => resolve(server));
  });
}

const print = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function flag(args: string[], name: string): string {
  const i = args.indexOf(name);
  const v = i >= 0 ? args[i + 1] : undefined;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
}

function number(args: string[], name: string, max: number): number {
  const n = Number(flag(args, name));
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name} must be an integer from 1 to ${max}`);
  return n;
}

function endpoint(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(value.slice(i + 1));
  if (i <= 0 || net.isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--egress: ${JSON.stringify(value)} is not <ip>:<port>`);
  return { host, port };
}

async function suspect(args: string[]): Promise<void> {
  const egress = endpoint(flag(args, '--egress'));
  const windowMs = number(args, '--window-ms', 60_000);
  const attemptMs = number(args, '--attempt-ms', 10_000);
  const stopAt = Date.now() + windowMs + 2 * attemptMs + 2_000;
  const server = await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  const loopback = await tryConnect('127.0.0.1', port, attemptMs);
  print({ event: 'listening', port, loopback: loopback.result === 'open', detail: loopback.detail });
  const end = () => {
    print({ event: 'done' });
    server.close();
    process.exit(0);
  };
  process.stdin.once('end', end);
  process.stdin.once('close', end);
  process.stdin.resume();
  setTimeout(end, Math.max(0, stopAt - Date.now())).unref();
  const deadline = Date.now() + windowMs;
  for (;;) {
    const a = await tryConnect(egress.host, egress.port, attemptMs);
    print({ event: 'egress', ...a });
    if (a.result !== 'open' || Date.now() >= deadline) break;
    await sleep(100);
  }
  print({ event: 'egress-done' });
  // Wait for stdin to close (or the backstop timer).
  await new Promise<void>(() => undefined);
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...args] = argv;
  if (mode === 'suspect') return suspect(args);
  if (mode === 'listen') {
    const server = await listen(number(args, '--port', 65535));
    print({ event: 'listening', port: (server.address() as net.AddressInfo).port });
    return;
  }
  throw new Error('usage: netprobe.js suspect --egress <ip>:<port> --window-ms <n> --attempt-ms <n> | netprobe.js listen --port <n>');
}

if (process.argv[1]?.endsWith('netprobe.js')) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`netprobe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
