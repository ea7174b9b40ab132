import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { collectLive } from '../../../src/live/live-collector.js';
import { json, runAndDecode } from './fake-proc.js';

/** The collector against this kernel's /proc: a child that listens on TCP and connects to itself. */
describe('live collector on the real /proc', () => {
  let child: ChildProcess;
  let port: number;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-real-'));
    await writeFile(path.join(tmp, 'dropped.sh'), '#!/bin/sh\necho pwned\n', { mode: 0o755 });
    child = spawn(process.execPath, ['-e', `
      const net = require('net');
      const server = net.createServer((s) => s.on('data', () => {})).listen(0, '127.0.0.1', () => {
        const c = net.connect(server.address().port, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
      });
      setTimeout(() => process.exit(0), 60000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
      child.once('exit', () => reject(new Error('child exited')));
    });
  });

  afterAll(async () => {
    child.kill();
    await rm(tmp, { recursive: true, force: true });
  });

  it('finds the child listener with the child as its owner', async () => {
    const cgroup = await readFile(`/proc/${child.pid}/cgroup`, 'utf8');
    // A container ID (or any long hex) in the child's cgroup; none on a plain host: then nothing is
    // a target and the sockets come from our own network namespace, which the child shares.
    const id = /[0-9a-f]{12,64}/.exec(cgroup)?.[0] ?? 'ffffffffffffffff';
    const d = await runAndDecode((w) =>
      collectLive({ containerId: id, paths: [tmp], maxFileBytes: 1 << 20, redactEnvironment: true, declaredPorts: [], clusterCidrs: ['10.0.0.0/8'], proc: '/proc', maxHashBytes: 1 << 20, walkSeconds: 60, memoryScope: 'Suspicious', memoryMaxBytes: 1 << 20 }, w),
    );
    const sockets = json(d, 'live/sockets.json').sockets;
    const listener = sockets.find((s: any) => s.state === 'LISTEN' && s.local.port === port && s.proto.startsWith('tcp'));
    expect(listener).toBeDefined();
    expect(listener.owners.map((o: any) => o.pid)).toContain(child.pid);
    const established = sockets.filter((s: any) => s.state === 'ESTABLISHED' && (s.local.port === port || s.remote.port === port));
    expect(established.length).toBeGreaterThanOrEqual(2);
    expect(established.flatMap((s: any) => s.owners.map((o: any) => o.pid))).toContain(child.pid);
    const me = json(d, 'live/processes.json').processes.find((p: any) => p.pid === child.pid);
    expect(me.cmdline[0]).toBe(process.execPath);
    expect(me.environment.redacted).toBe(true);
    if (id !== 'ffffffffffffffff') expect(me.role).toBe('target');
    expect(d.frames[d.frames.length - 1]!.t).toBe('done');
    if (json(d, 'live/processes.json').entrypointPid !== null) {
      const files = json(d, 'live/files.json');
      // The entrypoint's root may not be ours on every machine; when it is, the dropped script is there.
      if (files.length > 0) expect(files.map((f: any) => f.path)).toContain(path.join(tmp, 'dropped.sh'));
    }
  }, 30000);
});
