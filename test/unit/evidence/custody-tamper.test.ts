// One test per way to tamper with a custody log. Each pins one check of verifyCustodyChain: with that
// check removed, the tampered log would verify (or fail for a reason that does not name the change).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CustodyLog, GENESIS_PREV, verifyCustodyChain } from '../../../src/evidence/custody.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let tmp: string;
/** A real log written by CustodyLog: four lines, newline-terminated. */
let lines: string[];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-custody-tamper-'));
  const file = path.join(tmp, 'custody.jsonl');
  const log = await CustodyLog.open(file, 'tester');
  await log.append({ action: 'phase-started', phase: 'LogsCaptured' });
  await log.append({ action: 'artifact', artifact: 'logs/app.log', sha256: sha('x'), bytes: 1 });
  await log.append({ action: 'negative-finding', detail: { summary: 'no previous container logs' } });
  await log.append({ action: 'artifact', artifact: 'logs/other.log', sha256: sha('y'), bytes: 1 });
  await log.close();
  lines = (await readFile(file, 'utf8')).split('\n').slice(0, -1);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const text = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
const rec = (line: string) => JSON.parse(line) as Record<string, unknown>;
/** Serialises a record the way an attacker re-linking the chain would: prev = SHA-256 of the line before. */
function relink(records: Record<string, unknown>[], firstPrev = GENESIS_PREV): string[] {
  const out: string[] = [];
  let prev = firstPrev;
  for (const r of records) {
    const line = JSON.stringify({ ...r, prev });
    out.push(line);
    prev = sha(line);
  }
  return out;
}

describe('verifyCustodyChain catches', () => {
  test('nothing on the untouched log (the baseline every tamper test below departs from)', () => {
    const v = verifyCustodyChain(text(lines));
    expect(v.ok).toBe(true);
    expect(v.ok && v.records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
  });

  test('the last line renumbered (its prev link is still intact, only seq gives it away)', () => {
    const tampered = [...lines.slice(0, 3), lines[3]!.replace('"seq":4', '"seq":5')];
    expect(verifyCustodyChain(text(tampered))).toEqual({ ok: false, line: 4, reason: 'seq is 5, expected 4' });
  });

  test('a middle line removed and the rest re-linked (the hash chain alone is forgeable)', () => {
    const forged = relink([rec(lines[0]!), rec(lines[1]!), rec(lines[3]!)]);
    expect(verifyCustodyChain(text(forged))).toEqual({ ok: false, line: 3, reason: 'seq is 4, expected 3' });
  });

  test('two lines swapped and re-linked', () => {
    const forged = relink([rec(lines[0]!), rec(lines[2]!), rec(lines[1]!), rec(lines[3]!)]);
    expect(verifyCustodyChain(text(forged))).toEqual({ ok: false, line: 2, reason: 'seq is 3, expected 2' });
  });

  test('two lines swapped, not re-linked', () => {
    const v = verifyCustodyChain(text([lines[0]!, lines[2]!, lines[1]!, lines[3]!]));
    expect(v).toMatchObject({ ok: false, line: 2 });
  });

  test('a middle line edited (the next line no longer links to it)', () => {
    const tampered = [lines[0]!, lines[1]!.replace('"bytes":1', '"bytes":2'), lines[2]!, lines[3]!];
    const v = verifyCustodyChain(text(tampered));
    expect(v).toMatchObject({ ok: false, line: 3 });
    expect(!v.ok && v.reason).toContain(`the SHA-256 of line 2 (${sha(tampered[1]!)})`);
  });

  test('a forged first line: a new history whose line 1 does not start from the genesis value', () => {
    // An attacker who cut off the real beginning and renumbered keeps every later link intact.
    const forged = relink([rec(lines[1]!), rec(lines[2]!), rec(lines[3]!)].map((r, i) => ({ ...r, seq: i + 1 })), sha('a line that was cut'));
    const v = verifyCustodyChain(text(forged));
    expect(v).toMatchObject({ ok: false, line: 1 });
    expect(!v.ok && v.reason).toContain('is not the genesis value (64 zeros)');
  });

  test('a malformed prev is named as such, not just as a broken link', () => {
    const tampered = [lines[0]!, lines[1]!.replace(/"prev":"([0-9a-f]{64})"/, (_, h: string) => `"prev":"${h.toUpperCase()}"`), lines[2]!];
    expect(verifyCustodyChain(text(tampered))).toEqual({ ok: false, line: 2, reason: 'prev must be 64 hex digits' });
  });

  test('a line appended with no newline (an incomplete write)', () => {
    expect(verifyCustodyChain(`${text(lines)}{"seq":5`)).toEqual({ ok: false, line: 5, reason: 'last line has no newline (an incomplete write)' });
  });

  test('a line that is not JSON', () => {
    expect(verifyCustodyChain(text([lines[0]!, 'garbage']))).toEqual({ ok: false, line: 2, reason: 'not valid JSON' });
  });
});

describe('verifyCustodyChain checks the shape of every line', () => {
  const base = { seq: 1, time: '2026-12-03T00:00:00.000Z', actor: 'a', action: 'x', prev: GENESIS_PREV };
  const one = (record: unknown) => verifyCustodyChain(`${JSON.stringify(record)}\n`);

  test('a record with every optional field well-formed is accepted', () => {
    expect(one({ ...base, phase: 'P', artifact: 'a/b', sha256: sha('x'), bytes: 0, detail: {} }).ok).toBe(true);
  });

  test.each<[string, unknown, string]>([
    ['an array', [], 'not a JSON object'],
    ['null', null, 'not a JSON object'],
    ['a string', 'line', 'not a JSON object'],
    ['seq as a string', { ...base, seq: '1' }, 'seq is "1", expected 1'],
    ['time not a string', { ...base, time: 5 }, 'time must be a non-empty string'],
    ['time empty', { ...base, time: '' }, 'time must be a non-empty string'],
    ['actor missing', { ...base, actor: undefined }, 'actor must be a non-empty string'],
    ['action empty', { ...base, action: '' }, 'action must be a non-empty string'],
    ['prev a number', { ...base, prev: 0 }, 'prev must be 64 hex digits'],
    ['prev 63 digits', { ...base, prev: '0'.repeat(63) }, 'prev must be 64 hex digits'],
    ['prev an array holding the hex string', { ...base, prev: [GENESIS_PREV] }, 'prev must be 64 hex digits'],
    ['sha256 an array holding a hex string', { ...base, sha256: [sha('x')] }, 'sha256 must be 64 hex digits'],
    ['phase a number', { ...base, phase: 1 }, 'phase must be a string'],
    ['artifact a number', { ...base, artifact: 1 }, 'artifact must be a string'],
    ['sha256 a number', { ...base, sha256: 1 }, 'sha256 must be 64 hex digits'],
    ['sha256 not hex', { ...base, sha256: 'z'.repeat(64) }, 'sha256 must be 64 hex digits'],
    ['bytes negative', { ...base, bytes: -1 }, 'bytes must be a non-negative integer'],
    ['bytes fractional', { ...base, bytes: 1.5 }, 'bytes must be a non-negative integer'],
    ['bytes a string', { ...base, bytes: '3' }, 'bytes must be a non-negative integer'],
    ['detail an array', { ...base, detail: [] }, 'detail must be an object'],
    ['detail null', { ...base, detail: null }, 'detail must be an object'],
    ['detail a string', { ...base, detail: 'x' }, 'detail must be an object'],
  ])('%s', (_what, record, reason) => {
    expect(one(record)).toEqual({ ok: false, line: 1, reason });
  });
});

describe('CustodyLog writes nested detail with sorted keys', () => {
  test('null values and many keys in any order', async () => {
    const file = path.join(tmp, 'sorted.jsonl');
    const log = await CustodyLog.open(file, 'tester');
    await log.append({ action: 'x', detail: { outer: { d: 1, b: null, a: 2, c: { z: 1, y: 2 }, e: 3 } } });
    await log.close();
    expect(await readFile(file, 'utf8')).toContain('"detail":{"outer":{"a":2,"b":null,"c":{"y":2,"z":1},"d":1,"e":3}}');
  });
});

