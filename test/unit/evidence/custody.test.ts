import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { jest } from '@jest/globals';
import { CustodyLog, verifyCustodyChain } from '../../../src/evidence/custody.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-custody-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function threeRecords(file: string): Promise<string[]> {
  const log = await CustodyLog.open(file, 'tester');
  await log.append({ action: 'phase-started', phase: 'LogsCaptured' });
  await log.append({ action: 'artifact', artifact: 'logs/app.log', sha256: sha('x'), bytes: 1, detail: { z: 1, a: { y: 2, b: 3 } } });
  await log.append({ action: 'negative-finding', detail: { summary: 'no previous container logs' } });
  await log.close();
  return (await readFile(file, 'utf8')).split('\n');
}

describe('custody log', () => {
  it('writes a hash-chained, ordered, newline-terminated log', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const lines = await threeRecords(file);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('');
    const recs = lines.slice(0, 3).map((l) => JSON.parse(l));
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(recs[0].prev).toBe('0'.repeat(64));
    expect(recs[1].prev).toBe(sha(lines[0]!));
    expect(recs[2].prev).toBe(sha(lines[1]!));
    expect(Object.keys(recs[1])).toEqual(['seq', 'time', 'actor', 'action', 'artifact', 'sha256', 'bytes', 'detail', 'prev']);
    expect(lines[1]).toContain('"detail":{"a":{"b":3,"y":2},"z":1}');
    expect(recs[0].actor).toBe('tester');
    const v = verifyCustodyChain(await readFile(file, 'utf8'));
    expect(v.ok).toBe(true);
  });

  it('continues the chain after reopening', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const lines = await threeRecords(file);
    const log = await CustodyLog.open(file, 'second');
    expect(log.records()).toHaveLength(3);
    const r = await log.append({ action: 'sealed' });
    await log.close();
    expect(r.seq).toBe(4);
    expect(r.prev).toBe(sha(lines[2]!));
    const v = verifyCustodyChain(await readFile(file, 'utf8'));
    expect(v.ok && v.records.map((x) => x.actor)).toEqual(['tester', 'tester', 'tester', 'second']);
  });

  it('detects a modified middle line and refuses to extend it', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const lines = await threeRecords(file);
    lines[1] = lines[1]!.replace('"bytes":1', '"bytes":2');
    const tampered = lines.join('\n');
    await writeFile(file, tampered);
    expect(verifyCustodyChain(tampered)).toEqual({ ok: false, line: 3, reason: expect.stringContaining('SHA-256 of line 2') });
    await expect(CustodyLog.open(file, 't')).rejects.toThrow(/broken at line 3/);
    expect(await readFile(file, 'utf8')).toBe(tampered);
  });

  it('detects a deleted line', async () => {
    const lines = await threeRecords(path.join(tmp, 'custody.jsonl'));
    lines.splice(1, 1);
    const v = verifyCustodyChain(lines.join('\n'));
    expect(v).toMatchObject({ ok: false, line: 2 });
  });

  it('detects a forged first record, bad JSON and bad fields', async () => {
    const lines = await threeRecords(path.join(tmp, 'custody.jsonl'));
    expect(verifyCustodyChain(`${lines[1]}\n`)).toMatchObject({ ok: false, line: 1 });
    expect(verifyCustodyChain(`${lines[0]}\n{nope\n`)).toEqual({ ok: false, line: 2, reason: 'not valid JSON' });
    const noActor = JSON.stringify({ ...JSON.parse(lines[0]!), actor: '' });
    expect(verifyCustodyChain(`${noActor}\n`)).toMatchObject({ ok: false, line: 1, reason: expect.stringContaining('actor') });
    expect(verifyCustodyChain('')).toEqual({ ok: true, records: [] });
  });

  it('keeps concurrent appends in one unbroken chain', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const log = await CustodyLog.open(file, 'tester');
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append({ action: 'note', detail: { i } })));
    await log.close();
    expect(results.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const v = verifyCustodyChain(await readFile(file, 'utf8'));
    expect(v.ok).toBe(true);
    expect(v.ok && v.records).toEqual([...log.records()]);
  });

  it('preserves a torn last line from a crash and resumes the chain', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    await threeRecords(file);
    const torn = '{"seq":4,"time":"2026-';
    await appendFile(file, torn);
    expect(verifyCustodyChain(await readFile(file, 'utf8'))).toMatchObject({ ok: false, line: 4 });

    const log = await CustodyLog.open(file, 'tester');
    await log.close();
    const v = verifyCustodyChain(await readFile(file, 'utf8'));
    expect(v.ok).toBe(true);
    const last = v.ok ? v.records.at(-1)! : undefined;
    expect(last).toMatchObject({ seq: 4, action: 'custody-torn-tail-preserved', detail: { bytes: torn.length, sha256: sha(torn) } });
    const side = (await readdir(tmp)).find((n) => n.startsWith('custody.jsonl.torn-'));
    expect(side).toBe(last?.detail?.savedAs);
    expect(await readFile(path.join(tmp, side!), 'utf8')).toBe(torn);
  });
});

// Answers to the fourth round's mutation testing of custody.ts as a whole (docs/testing.md): the
// writer, CustodyLog, which the earlier rounds left out.
describe('custody log edges', () => {
  /** The log's file handle, to make its next writes fail as a full or broken volume would. */
  const handleOf = (log: CustodyLog) => (log as unknown as { fh: FileHandle }).fh;

  it('keeps arrays in a detail as arrays, in their order', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const log = await CustodyLog.open(file, 'tester');
    await log.append({ action: 'note', detail: { list: [3, 1, { b: 1, a: 2 }] } });
    await log.close();
    expect(await readFile(file, 'utf8')).toContain('"detail":{"list":[3,1,{"a":2,"b":1}]}');
  });

  it('opens an existing empty log from the genesis value', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    await writeFile(file, '');
    const log = await CustodyLog.open(file, 'tester');
    expect(await log.append({ action: 'note' })).toMatchObject({ seq: 1, prev: '0'.repeat(64) });
    await log.close();
  });

  it('close waits for an append still in flight, then releases the file', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    const log = await CustodyLog.open(file, 'tester');
    const pending = log.append({ action: 'note' });
    await log.close();
    expect(await fds()).toBe(before);
    expect(await pending).toMatchObject({ seq: 1 });
    expect(verifyCustodyChain(await readFile(file, 'utf8'))).toMatchObject({ ok: true, records: [{ seq: 1, action: 'note' }] });
  });

  it('a failed write is not acknowledged, leaves no part line, and the next append continues the chain', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const lines = await threeRecords(file);
    const log = await CustodyLog.open(file, 'tester');
    await log.append({ action: 'note', detail: { n: 4 } });
    const fh = handleOf(log);
    const write = fh.write.bind(fh);
    // Half the line lands, then the volume is full.
    fh.write = (async (buf: Buffer, off: number, len: number) => {
      await write(buf, off, Math.min(len, 10));
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    }) as unknown as FileHandle['write'];
    await expect(log.append({ action: 'note', detail: { n: 5 } })).rejects.toThrow('ENOSPC');
    expect(log.records()).toHaveLength(4);
    fh.write = write as FileHandle['write'];
    const after = await log.append({ action: 'note', detail: { n: 6 } });
    await log.close();
    const text = await readFile(file, 'utf8');
    expect(after.seq).toBe(5);
    expect(text.split('\n').slice(0, 3)).toEqual(lines.slice(0, 3));
    const v = verifyCustodyChain(text);
    expect(v.ok && v.records.map((r) => r.detail?.n)).toEqual([undefined, undefined, undefined, 4, 6]);
  });

  it('a failed write that cannot be cut back breaks the log until it is reopened', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    await threeRecords(file);
    const log = await CustodyLog.open(file, 'tester');
    const fh = handleOf(log);
    fh.write = (async () => {
      throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    }) as unknown as FileHandle['write'];
    fh.truncate = async () => {
      throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    };
    await expect(log.append({ action: 'note' })).rejects.toThrow('EIO');
    await expect(log.append({ action: 'note' })).rejects.toThrow(`custody log ${file} may end in a partial line; reopen it to repair`);
    await log.close();
    const reopened = await CustodyLog.open(file, 'tester');
    expect(await reopened.append({ action: 'note' })).toMatchObject({ seq: 4 });
    await reopened.close();
  });

  it('a log that cannot be read is an error, not an empty log', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    await mkdir(file);
    await expect(CustodyLog.open(file, 'tester')).rejects.toMatchObject({ code: 'EISDIR', syscall: 'read' });
  });

  it('the torn tail is cut from the log before the chain goes on, and its side file is named by a UTC stamp and closed', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    const lines = await threeRecords(file);
    await appendFile(file, '{"seq":4,"ti');
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    const log = await CustodyLog.open(file, 'tester');
    await log.close();
    expect(await fds()).toBe(before); // the side file is closed, as is the log
    const text = await readFile(file, 'utf8');
    expect(text.startsWith(`${lines.slice(0, 3).join('\n')}\n{"seq":4,"time":`)).toBe(true);
    const sides = (await readdir(tmp)).filter((n) => n.startsWith('custody.jsonl.torn-'));
    expect(sides).toHaveLength(1);
    expect(sides[0]).toMatch(/^custody\.jsonl\.torn-\d{8}T\d{9}Z$/);
  });

  it('a torn tail that cannot be preserved: the open fails, the log and its handle are released and nothing is changed', async () => {
    const file = path.join(tmp, 'custody.jsonl');
    await threeRecords(file);
    await appendFile(file, '{"seq":4,"ti');
    const logBefore = await readFile(file, 'utf8');
    // Only Date is faked (fs and timers stay real), so the side file's name is known in advance and
    // can be taken first: its exclusive create then fails.
    jest.useFakeTimers({ now: new Date('2026-12-03T07:08:09.012Z'), doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      await writeFile(path.join(tmp, 'custody.jsonl.torn-20261203T070809012Z'), 'someone else');
      const fds = async () => (await readdir('/proc/self/fd')).length;
      const before = await fds();
      await expect(CustodyLog.open(file, 'tester')).rejects.toMatchObject({ code: 'EEXIST' });
      expect(await fds()).toBe(before);
    } finally {
      jest.useRealTimers();
    }
    expect(await readFile(file, 'utf8')).toBe(logBefore);
    expect(await readFile(path.join(tmp, 'custody.jsonl.torn-20261203T070809012Z'), 'utf8')).toBe('someone else');
  });
});
