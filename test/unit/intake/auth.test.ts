// Who may post alerts: the bearer token read from a mounted Secret (re-read when it changes, at most
// once a second) and client certificates that really were presented.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { authenticate, TokenFile } from '../../../src/intake/auth.js';
import { silent } from './helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-auth-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A logger that keeps what was logged, and a clock the test moves. */
function recorder() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => lines.push({ level, fields, message });
  const log = { ...silent, info: at('info'), error: at('error') } as unknown as typeof silent;
  return { lines, log };
}

describe('TokenFile', () => {
  it('loads the token trimmed, says so once, and looks at the file at most once a second', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, '  s3cret\n');
    const { lines, log } = recorder();
    let now = 10_000;
    const tokens = new TokenFile(file, log, () => now);
    expect(await tokens.current()).toBe('s3cret');
    expect(lines).toEqual([{ level: 'info', fields: { file, empty: false }, message: 'intake token loaded' }]);

    await writeFile(file, 'rotated-token-of-another-size');
    now += 999;
    expect(await tokens.current()).toBe('s3cret'); // not looked at yet
    now += 1;
    expect(await tokens.current()).toBe('rotated-token-of-another-size');
    expect(lines.at(-1)).toEqual({ level: 'info', fields: { file, empty: false }, message: 'intake token file changed: reloaded' });

    // Unchanged file: nothing re-read, nothing logged.
    now += 5000;
    expect(await tokens.current()).toBe('rotated-token-of-another-size');
    expect(lines).toHaveLength(2);
  });

  it('an empty file accepts no token; a missing one is logged once as an error, then recovers', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, '\n');
    const { lines, log } = recorder();
    let now = 0;
    const tokens = new TokenFile(file, log, () => now);
    expect(await tokens.current()).toBeUndefined();
    expect(lines).toEqual([{ level: 'info', fields: { file, empty: true }, message: 'intake token loaded' }]);

    await unlink(file);
    now += 1000;
    expect(await tokens.current()).toBeUndefined();
    now += 1000;
    expect(await tokens.current()).toBeUndefined();
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).toEqual([{ level: 'error', fields: { err: expect.objectContaining({ code: 'ENOENT' }), file }, message: 'cannot read the intake token file: refusing bearer tokens' }]);

    await writeFile(file, 'back');
    now += 1000;
    expect(await tokens.current()).toBe('back');
  });

  it('a token that disappears is logged, and dropped', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, 'abc');
    const { lines, log } = recorder();
    let now = 0;
    const tokens = new TokenFile(file, log, () => now);
    expect(await tokens.current()).toBe('abc');
    await unlink(file);
    now += 1000;
    expect(await tokens.current()).toBeUndefined();
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
  });
});

describe('authenticate', () => {
  type Socket = { authorized?: boolean; getPeerCertificate?: () => unknown };
  const request = (authorization: string | undefined, socket: Socket = {}) => ({ headers: { authorization }, socket }) as unknown as IncomingMessage;
  const cert = { fingerprint256: 'AA:BB' };

  async function withToken(token: string) {
    const file = path.join(dir, 'token');
    await writeFile(file, token);
    return { tokenFile: new TokenFile(file, silent), mutualTLS: false };
  }

  it('a client certificate counts only when mutual TLS is on, the socket is authorized, and a certificate is there', async () => {
    const mtls = { mutualTLS: true };
    expect(await authenticate(request(undefined, { authorized: true, getPeerCertificate: () => cert }), mtls)).toBe('client-certificate');
    expect(await authenticate(request(undefined, { authorized: true, getPeerCertificate: () => cert }), { mutualTLS: false })).toBeUndefined();
    expect(await authenticate(request(undefined, { authorized: false, getPeerCertificate: () => cert }), mtls)).toBeUndefined();
    // A resumed session: authorized, but no certificate (Node returns {} or null), or an empty fingerprint.
    for (const none of [{}, null, undefined, { fingerprint256: '' }, { fingerprint256: 7 }]) {
      expect(await authenticate(request(undefined, { authorized: true, getPeerCertificate: () => none }), mtls)).toBeUndefined();
    }
    // A plain (non-TLS) socket has no getPeerCertificate at all.
    expect(await authenticate(request(undefined, { authorized: true }), mtls)).toBeUndefined();
  });

  it('without a token file and without mutual TLS nobody is let in', async () => {
    expect(await authenticate(request('Bearer anything'), { mutualTLS: false })).toBeUndefined();
  });

  it('the bearer header: any case, spaces or tabs, trailing space; nothing before or after the token', async () => {
    const auth = await withToken('tok');
    for (const h of ['Bearer tok', 'bearer tok', 'Bearer  tok', 'Bearer\ttok', 'Bearer tok  ']) {
      expect(await authenticate(request(h), auth)).toBe('bearer-token');
    }
    for (const h of [undefined, '', 'Bearer', 'Bearer tok2', 'xBearer tok', 'Basic tok', 'Bearer tok extra', 'Bearertok']) {
      expect(await authenticate(request(h), auth)).toBeUndefined();
    }
  });

  it('an empty token file accepts no bearer token at all', async () => {
    const auth = await withToken('');
    expect(await authenticate(request('Bearer x'), auth)).toBeUndefined();
  });
});
