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
