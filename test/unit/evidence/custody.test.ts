import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
