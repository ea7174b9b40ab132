import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AlertJournal, JournalFullError, readJournal, type JournalEntry } from '../../../src/intake/journal.js';
import { alertEntry, silent } from './helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-journal-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function snapshot(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const f of await readdir(dir)) files.set(f, await readFile(path.join(dir, f), 'utf8'));
  return files;
}

describe('AlertJournal', () => {
  it('group-commits concurrent appends into one write and one fsync, in sequence order', async () => {
    const fsyncs: number[] = [];
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 5, onFsync: (s) => fsyncs.push(s) }, () => undefined);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => journal.append([alertEntry('a', i)])));
    expect(fsyncs).toHaveLength(1);
    expect(results.flat().map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await journal.close();
    const read: JournalEntry[] = [];
    for await (const e of readJournal(dir)) read.push(e);
    expect(read.map((e) => e.seq)).toEqual(results.flat().map((e) => e.seq));
  });

  it('resolves only once the lines are on disk', async () => {
    const journal = await AlertJournal.open(dir, { log: silent }, () => undefined);
    const [entry] = await journal.append([alertEntry('a', 1)]);
    const files = await snapshot();
    expect([...files.values()].join('')).toContain(`"seq":${entry!.seq}`);
    await journal.close();
  });

  it('replays every entry on reopen, continues the sequence in a new segment, and never rewrites an old one', async () => {
    const first = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    for (let i = 0; i < 5; i++) await first.append([alertEntry('a', i)]);
    await first.close();
    const before = await snapshot();
    const replayed: number[] = [];
    const second = await AlertJournal.open(dir, { log: silent }, (e) => replayed.push(e.seq));
    expect(replayed).toEqual([1, 2, 3, 4, 5]);
    const [next] = await second.append([alertEntry('a', 6)]);
    expect(next!.seq).toBe(6);
    await second.close();
    const after = await snapshot();
    expect(after.size).toBe(before.size + 1);
    for (const [file, content] of before) expect(after.get(file)).toBe(content);
  });

  it('rotates segments past the size limit', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, segmentBytes: 1000 }, () => undefined);
    for (let i = 0; i < 10; i++) await journal.append([alertEntry('a', i)]);
    await journal.close();
    expect((await readdir(dir)).length).toBeGreaterThan(3);
    const seqs: number[] = [];
    for await (const e of readJournal(dir)) seqs.push(e.seq);
    expect(seqs).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('skips a line torn by a crash', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    await journal.append([alertEntry('a', 1), alertEntry('a', 2)]);
    await journal.close();
    const [segment] = await readdir(dir);
    await appendFile(path.join(dir, segment!), '{"type":"alert","seq":3,"receiv');
    const seqs: number[] = [];
    const reopened = await AlertJournal.open(dir, { log: silent }, (e) => seqs.push(e.seq));
    expect(seqs).toEqual([1, 2]);
    const [next] = await reopened.append([alertEntry('a', 3)]);
    expect(next!.seq).toBe(3);
    await reopened.close();
  });
});

describe('AlertJournal bound', () => {
  it('refuses alerts past maxBytes with JournalFullError, still takes acknowledgements, and loses nothing accepted', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, maxBytes: 4096 }, () => undefined);
    const accepted: number[] = [];
    let refused: unknown;
    for (let i = 0; i < 100 && !refused; i++) {
      try {
        accepted.push(...(await journal.append([alertEntry('a', i)])).map((e) => e.seq));
      } catch (err) {
        refused = err;
      }
    }
    expect(refused).toBeInstanceOf(JournalFullError);
    expect((refused as Error).message).toMatch(/--intake-journal-max-bytes/);
    expect(accepted.length).toBeGreaterThan(5);
    await journal.append([{ type: 'ack', at: new Date().toISOString(), investigation: { namespace: 'production', name: 'a' }, throughSeq: accepted.at(-1)!, count: accepted.length }]);
    await journal.close();

    // Reopened, the bound counts what is on disk: still full.
    const replayed: number[] = [];
    const again = await AlertJournal.open(dir, { log: silent, maxBytes: 4096 }, (e) => e.type === 'alert' && replayed.push(e.seq));
    expect(replayed).toEqual(accepted);
    await expect(again.append([alertEntry('a', 1000)])).rejects.toBeInstanceOf(JournalFullError);
    await again.close();
  });
});

describe('AlertJournal compaction', () => {
  /** Alerts per case as a replay sees them: line by line, plus a checkpoint's folded counts. */
  async function counts(): Promise<Map<string, number>> {
    const n = new Map<string, number>();
    for await (const e of readJournal(dir)) {
      if (e.type === 'alert') n.set(e.investigation.name, (n.get(e.investigation.name) ?? 0) + 1);
      if (e.type === 'case') n.set(e.investigation.name, (n.get(e.investigation.name) ?? 0) + e.count);
    }
    return n;
  }

  it('past half its bound, drops alerts acknowledged and in a sealed case file, keeps the rest and every count', async () => {
    const imported = new Set<number>();
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, maxBytes: 64 * 1024, importedCheck: () => async (e) => imported.has(e.seq) }, () => undefined);
    const seqs = { a: [] as number[], b: [] as number[] };
    // Case a: acknowledged and imported; case b: acknowledged, never sealed.
    for (let i = 0; i < 10; i++) {
      seqs.a.push(...(await journal.append([alertEntry('a', i)])).map((e) => e.seq));
      seqs.b.push(...(await journal.append([alertEntry('b', i)])).map((e) => e.seq));
    }
    for (const s of seqs.a) imported.add(s);
    for (const name of ['a', 'b'] as const) {
      await journal.append([{ type: 'ack', at: new Date().toISOString(), investigation: { namespace: 'production', name }, throughSeq: seqs[name].at(-1)!, count: 10 }]);
    }
    // Past 32 KiB: compaction runs after a flush.
    let i = 100;
    while ((await readdir(dir)).every((f) => !f.endsWith('-checkpoint.jsonl'))) {
      if (i > 400) throw new Error('never compacted');
      seqs.b.push(...(await journal.append([alertEntry('b', i++)])).map((e) => e.seq));
    }
    const kept = new Set<number>();
    for await (const e of readJournal(dir)) if (e.type === 'alert') kept.add(e.seq);
    expect(seqs.a.filter((s) => kept.has(s))).toEqual([]); // a's alerts: folded into a case line
    expect(seqs.b.filter((s) => !kept.has(s))).toEqual([]); // b's: all still there for its case file
    expect(await counts()).toEqual(new Map([['a', 10], ['b', seqs.b.length]]));
    expect(journal.size).toBeLessThan(64 * 1024);

    // Appends continue after it, and a reopen reads the checkpoint plus the newer segments only.
    const [later] = await journal.append([alertEntry('a', 999)]);
    await journal.close();
    const replayed: JournalEntry[] = [];
    const again = await AlertJournal.open(dir, { log: silent }, (e) => replayed.push(e));
    expect(replayed.find((e) => e.type === 'case' && e.investigation.name === 'a')).toMatchObject({ count: 10, ackedThrough: seqs.a.at(-1) });
    expect(replayed.some((e) => e.seq === later!.seq)).toBe(true);
    expect(await counts()).toEqual(new Map([['a', 11], ['b', seqs.b.length]]));
    await again.close();
  });
});

describe('an alert matching several policies', () => {
  it('is stored once; every reader gets each entry with its raw body, also after a compaction drops the first', async () => {
    const imported = new Set<number>();
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, maxBytes: 64 * 1024, importedCheck: () => async (e) => imported.has(e.seq) }, () => undefined);
    const raw = JSON.stringify({ rule: 'Terminal shell in container', padding: 'r'.repeat(2000) });
    const two = [alertEntry('by-policy-a', 1), alertEntry('by-policy-b', 1)].map((e) => ({ ...e, raw }));
    const [a, b] = await journal.append(two);
    expect([a, b].map((e) => (e as { raw?: string }).raw)).toEqual([raw, raw]); // the caller sees both whole
    const text = (await Promise.all((await readdir(dir)).map((f) => readFile(path.join(dir, f), 'utf8')))).join('');
    expect(text.split('r'.repeat(2000)).length - 1).toBe(1);
    const read: JournalEntry[] = [];
    for await (const e of readJournal(dir)) read.push(e);
    expect(read.map((e) => (e as { raw?: string }).raw)).toEqual([raw, raw]);

    // The first (case a) acknowledged and sealed, the second not: a compaction drops the first only.
    imported.add(a!.seq);
    await journal.append([{ type: 'ack', at: new Date().toISOString(), investigation: { namespace: 'production', name: 'by-policy-a' }, throughSeq: a!.seq, count: 1 }]);
    for (let i = 0; (await readdir(dir)).every((f) => !f.endsWith('-checkpoint.jsonl')); i++) {
      if (i > 400) throw new Error('never compacted');
      await journal.append([alertEntry('filler', i)]);
    }
    const after: JournalEntry[] = [];
    for await (const e of readJournal(dir)) if (e.type === 'alert' && e.investigation.name.startsWith('by-policy')) after.push(e);
    expect(after.map((e) => [e.investigation.name, (e as { raw?: string }).raw])).toEqual([['by-policy-b', raw]]);
    await journal.close();
  });
});
