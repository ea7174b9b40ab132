// Exec stdout backpressure against a real WebSocket: a collector in another process writes as fast
// as it can, the reader here is slow, and the operator's buffer must stay near the pause threshold
// (the socket pauses, TCP pushes back on the writer) instead of growing with the stream.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from '@jest/globals';

/** The client the Kubernetes library uses (ws); it ships no types of its own here. */
interface WsClient {
  on(event: 'message', listener: (data: Buffer) => void): void;
  once(event: 'open', listener: () => void): void;
  pause(): void;
  resume(): void;
  terminate(): void;
}
const WebSocket = createRequire(import.meta.url)('ws') as new (url: string) => WsClient;
import { EXEC_PAUSE_AT_BYTES, ExecOutputPipe } from '../../../src/kube/exec-output.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WebSocket server in a child process that sends 64 KiB messages back to back, each after the previous one reached the kernel. */
const FLOODER = `
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' }, () => console.log(wss.address().port));
const chunk = Buffer.alloc(65536, 0x41);
wss.on('connection', (ws) => {
  let sent = 0;
  const next = (err) => { if (err || ws.readyState !== 1) return; sent += chunk.length; if (sent % 1048576 === 0) process.stderr.write(sent + '\\n'); ws.send(chunk, next); };
  next();
});`;

let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill();
  child = undefined;
});

async function flooder(): Promise<{ port: number; sent: () => number }> {
  child = spawn(process.execPath, ['-e', FLOODER], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  let sent = 0;
  let tail = '';
  child.stderr!.on('data', (d: Buffer) => {
    const lines = (tail + d.toString()).split('\n');
    tail = lines.pop()!;
    if (lines.length) sent = Number(lines[lines.length - 1]);
  });
  const port = await new Promise<number>((resolve, reject) => {
    child!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child!.once('exit', (code) => reject(new Error(`flooder exited ${code}`)));
  });
  return { port, sent: () => sent };
}

describe('ExecOutputPipe', () => {
  it('pauses a real socket while the reader is behind: the buffer stays near 1 MiB while the writer could send without end', async () => {
    const { port, sent } = await flooder();
    const overflows: number[] = [];
    const pipe = new ExecOutputPipe((b) => overflows.push(b));
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    let maxBuffered = 0;
    ws.on('message', (data: Buffer) => {
      pipe.write(data);
      maxBuffered = Math.max(maxBuffered, pipe.output.readableLength);
    });
    await new Promise<void>((r) => ws.once('open', r));
    pipe.attach(ws);

    // A reader much slower than loopback: about 10 MiB/s, for 24 MiB.
    let read = 0;
    for await (const chunk of pipe.output) {
      read += (chunk as Buffer).length;
      await sleep(((chunk as Buffer).length / (10 * MiB)) * 1000);
      if (read >= 24 * MiB) break;
    }
    const sentAtEnd = sent();
    pipe.discard();
    ws.terminate();

    expect(overflows).toEqual([]);
    expect(maxBuffered).toBeLessThanOrEqual(EXEC_PAUSE_AT_BYTES + MiB);
    // The writer was held back: it got no further than what was read plus socket buffers.
    expect(sentAtEnd).toBeLessThan(read + 16 * MiB);
  }, 30_000);

  it('a source that does not pause: past the abort limit it reports the overflow once, keeps what was buffered and drops the rest', async () => {
    const overflows: number[] = [];
    const pipe = new ExecOutputPipe((b) => overflows.push(b), { pauseAtBytes: 64 * 1024, abortAtBytes: MiB });
    let pauses = 0;
    pipe.attach({ pause: () => pauses++, resume: () => undefined });
    for (let i = 0; i < 64; i++) pipe.write(Buffer.alloc(64 * 1024, i));
    await sleep(10);
    expect(pauses).toBe(1);
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toBeGreaterThan(MiB);
    expect(pipe.overflowed).toBe(overflows[0]);
    pipe.end();
    let kept = 0;
    for await (const chunk of pipe.output) kept += (chunk as Buffer).length;
    expect(kept).toBe(overflows[0]);
  });

  it('resumes the source once the reader catches up', async () => {
    const pipe = new ExecOutputPipe(() => undefined, { pauseAtBytes: 64 * 1024, abortAtBytes: MiB });
    const calls: string[] = [];
    pipe.attach({ pause: () => calls.push('pause'), resume: () => calls.push('resume') });
    for (let i = 0; i < 4; i++) pipe.write(Buffer.alloc(32 * 1024));
    await sleep(10);
    expect(calls).toEqual(['pause']);
    pipe.output.read();
    await sleep(10);
    expect(calls).toEqual(['pause', 'resume']);
  });
});
