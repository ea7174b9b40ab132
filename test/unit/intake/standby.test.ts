// The standby that holds intake's port while its thread restarts: it answers as a replica that is
// not ready (401 without credentials, 503 with Retry-After with them), and lets go of the port.
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { intakeConfigSchema } from '../../../src/config.js';
import { standbyServer } from '../../../src/intake/standby.js';
import { silent } from './helpers.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('standbyServer', () => {
  it('answers 401 without credentials and 503 with them, then frees the port', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-standby-'));
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, 'secret\n');
    const port = await freePort();
    const standby = standbyServer(intakeConfigSchema.parse({ port, tokenFile }), silent);
    await standby.open(port);
    const post = (headers: Record<string, string>) => fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    expect((await post({})).status).toBe(401);
    const r = await post({ authorization: 'Bearer secret' });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    await standby.close();
    await standby.close(); // idempotent
    // The port is free again: a thread can bind it.
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer().once('error', reject).listen(port, () => s.close(() => resolve()));
    });
    await rm(dir, { recursive: true, force: true });
  });
});
