import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AlertJournal, compactJournal, JournalFullError } from '../../../src/intake/journal.js';
import { readJournal, type AlertEntry, type JournalEntry } from '../../../src/intake/journal-format.js';
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

describe('AlertJournal failures and edges', () => {
  it('refuses appends once closed', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    await journal.close();
    await expect(journal.append([alertEntry('a', 1)])).rejects.toThrow('alert journal is closed');
  });

  it('a failed write rejects every entry of its batch, stops counting their bytes, and the next batch starts a new segment', async () => {
    const errors: unknown[] = [];
    const log = { ...silent, error: (o: unknown) => errors.push(o) } as unknown as typeof silent;
    const journal = await AlertJournal.open(dir, { log, groupCommitMs: 5 }, () => undefined);
    await journal.append([alertEntry('a', 1)]);
    const before = journal.size;
    // The segment is still open; a directory gone from under it makes the next segment impossible.
    await journal.close();
    const reopened = await AlertJournal.open(dir, { log, groupCommitMs: 5 }, () => undefined);
    await rm(dir, { recursive: true });
    const batch = [reopened.append([alertEntry('a', 2)]), reopened.append([alertEntry('a', 3)])];
    for (const p of batch) await expect(p).rejects.toMatchObject({ code: 'ENOENT' });
    expect(errors).toEqual([expect.objectContaining({ entries: 2 })]);
    expect(reopened.size).toBe(before);
    await mkdir(dir);
    const [next] = await reopened.append([alertEntry('a', 4)]);
    expect(next!.seq).toBe(4); // sequence numbers of a failed batch are not reused
    await reopened.close();
    const seqs: number[] = [];
    for await (const e of readJournal(dir)) seqs.push(e.seq);
    expect(seqs).toEqual([4]);
  });

  it('reads nothing from a directory that does not exist', async () => {
    const read: JournalEntry[] = [];
    for await (const e of readJournal(path.join(dir, 'absent'))) read.push(e);
    expect(read).toEqual([]);
  });

  it('skips lines that are JSON but not entries, with a warning naming file and line', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    await journal.append([alertEntry('a', 1)]);
    await journal.close();
    const [segment] = await readdir(dir);
    const bad = [
      { type: 'alert', seq: '2', investigation: { name: 'a' } },
      { type: 'other', seq: 3, investigation: { name: 'a' } },
      { type: 'ack', seq: 4 },
      { type: 'ack', seq: 5, investigation: { name: 5 } },
      null,
    ];
    await appendFile(path.join(dir, segment!), `\n${bad.map((b) => JSON.stringify(b)).join('\n')}\n`);
    await appendFile(path.join(dir, segment!), `${JSON.stringify({ type: 'ack', seq: 6, at: 'now', investigation: { namespace: 'production', name: 'a' }, throughSeq: 1, count: 1 })}\n`);
    const warnings: unknown[] = [];
    const log = { ...silent, warn: (o: unknown) => warnings.push(o) } as unknown as typeof silent;
    const read: JournalEntry[] = [];
    for await (const e of readJournal(dir, log)) read.push(e);
    expect(read.map((e) => [e.type, e.seq])).toEqual([
      ['alert', 1],
      ['ack', 6],
    ]);
    const file = path.join(dir, segment!);
    expect(warnings).toEqual([3, 4, 5, 6, 7].map((line) => ({ file, line })));
  });

  it('an entry pointing at a raw body it does not follow is left without one', async () => {
    const raw = { type: 'alert', seq: 1, investigation: { namespace: 'production', name: 'a' }, raw: 'body-1' };
    const lines = [raw, { ...raw, seq: 2, raw: undefined, rawSeq: 1 }, { ...raw, seq: 3, raw: undefined, rawSeq: 7 }];
    await appendFile(path.join(dir, '0000000000000001-20261120T100000000Z.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    const read: JournalEntry[] = [];
    for await (const e of readJournal(dir)) read.push(e);
    const { raw: _, ...withoutRaw } = raw;
    expect(read).toEqual([raw, { ...raw, seq: 2 }, { ...withoutRaw, seq: 3, rawSeq: 7 }]);
  });
});

describe('AlertJournal batching', () => {
  it('close writes what is still waiting for its group commit', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 60_000 }, () => undefined);
    const pending = journal.append([alertEntry('a', 1)]);
    await journal.close();
    expect((await pending).map((e) => e.seq)).toEqual([1]);
    const seqs: number[] = [];
    for await (const e of readJournal(dir)) seqs.push(e.seq);
    expect(seqs).toEqual([1]);
  });

  it('reports each fsync in seconds, and keeps one 64 MiB segment by default', async () => {
    const fsyncs: number[] = [];
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, onFsync: (s) => fsyncs.push(s) }, () => undefined);
    for (let i = 0; i < 5; i++) await journal.append([alertEntry('a', i)]);
    await journal.close();
    expect(fsyncs).toHaveLength(5);
    for (const s of fsyncs) expect(s >= 0 && s < 1).toBe(true);
    expect(await readdir(dir)).toHaveLength(1);
  });

  it('alerts of one append with different bodies each keep their own', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    const ack = { type: 'ack' as const, at: 't', investigation: { namespace: 'production', name: 'a' }, throughSeq: 0, count: 0 };
    await journal.append([ack, alertEntry('a', 1), alertEntry('b', 2)]);
    await journal.close();
    const read: JournalEntry[] = [];
    for await (const e of readJournal(dir)) read.push(e);
    expect(read.map((e) => (e.type === 'alert' ? e.raw : e.type))).toEqual(['ack', (alertEntry('a', 1) as { raw?: string }).raw, (alertEntry('b', 2) as { raw?: string }).raw]);
  });

  it('when full, a batch holding any alert is refused, even with an acknowledgement in it', async () => {
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, maxBytes: 1 }, () => undefined);
    const ack = { type: 'ack' as const, at: 't', investigation: { namespace: 'production', name: 'a' }, throughSeq: 0, count: 0 };
    await journal.append([ack]); // the journal is now past its 1 byte
    await expect(journal.append([ack, alertEntry('a', 1)])).rejects.toBeInstanceOf(JournalFullError);
    await expect(journal.append([alertEntry('a', 1)])).rejects.toMatchObject({ name: 'JournalFullError', maxBytes: 1 });
    await journal.close();
  });
});

describe('compactJournal', () => {
  const ref = (name: string) => ({ namespace: 'production', name });
  const write = (file: string, entries: object[]) => appendFile(path.join(dir, file), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
  const alert = (name: string, seq: number): AlertEntry => ({ ...(alertEntry(name, seq) as Omit<AlertEntry, 'seq'>), seq });
  async function files(): Promise<string[]> {
    return (await readdir(dir)).sort();
  }
  async function all(): Promise<JournalEntry[]> {
    const read: JournalEntry[] = [];
    for await (const e of readJournal(dir)) read.push(e);
    return read;
  }

  it('folds acknowledged, imported alerts into one case line per case, keeps moves after the cases, and deletes what it replaced', async () => {
    await write('0000000000000001-20261120T100000000Z.jsonl', [alert('a', 1), alert('a', 2), alert('b', 3), { type: 'ack', seq: 4, at: 't', investigation: ref('a'), throughSeq: 2, count: 2 }]);
    await write('0000000000000005-20261120T100001000Z.jsonl', [
      { type: 'moved', seq: 5, at: 't', investigation: ref('b'), to: 'b-renamed' },
      { type: 'ack', seq: 6, at: 't', investigation: ref('b'), throughSeq: 3, count: 1 },
      alert('a', 7),
    ]);
    await write('0000000000000008-20261120T100002000Z.jsonl', [alert('a', 8)]);
    await write('checkpoint-3.tmp', [alert('z', 1)]);
    const asked: [number, string][] = [];
    await compactJournal(dir, 7, async (e, name) => {
      asked.push([e.seq, name]);
      return true;
    });
    // Only acknowledged alerts are asked about; a moved case is asked about under its new name.
    expect(asked).toEqual([
      [1, 'a'],
      [2, 'a'],
      [3, 'b-renamed'],
    ]);
    expect(await files()).toEqual(['0000000000000007-checkpoint.jsonl', '0000000000000008-20261120T100002000Z.jsonl']);
    const read = await all();
    expect(read.map((e) => [e.type, e.seq])).toEqual([
      ['alert', 7],
      ['case', 7],
      ['case', 7],
      ['moved', 5],
      ['alert', 8],
    ]);
    expect(read[1]).toEqual({
      type: 'case',
      seq: 7,
      investigation: ref('a'),
      policy: { namespace: 'casefile-system', name: 'shells' },
      podUID: 'uid-web-0',
      count: 2,
      first: alert('a', 1).receivedAt,
      last: alert('a', 2).receivedAt,
      lastSeq: 2,
      ackedThrough: 2,
    });
    expect(read[2]).toMatchObject({ type: 'case', investigation: ref('b'), count: 1, lastSeq: 3, ackedThrough: 3 });
  });

  it('a second compaction merges its new drops into the checkpoint case line, and only the newest checkpoint is read', async () => {
    await write('0000000000000001-20261120T100000000Z.jsonl', [alert('a', 1), alert('a', 2), { type: 'ack', seq: 3, at: 't', investigation: ref('a'), throughSeq: 1, count: 1 }]);
    await compactJournal(dir, 3, async () => true);
    await write('0000000000000004-20261120T100001000Z.jsonl', [alert('a', 4), { type: 'ack', seq: 5, at: 't', investigation: ref('a'), throughSeq: 4, count: 3 }]);
    const checkpoint3 = await readFile(path.join(dir, '0000000000000003-checkpoint.jsonl'), 'utf8');
    await compactJournal(dir, 5, async (e) => e.seq !== 2);
    expect(await files()).toEqual(['0000000000000005-checkpoint.jsonl']);
    // (A case line carried over keeps the seq of the checkpoint that first wrote it; nothing reads it.)
    const read = await all();
    expect(read.map((e) => [e.type, e.type === 'alert' ? e.seq : 0])).toEqual([
      ['alert', 2],
      ['case', 0],
    ]);
    expect(read[1]).toMatchObject({ count: 2, first: alert('a', 1).receivedAt, last: alert('a', 4).receivedAt, lastSeq: 4, ackedThrough: 4 });
    // A stale older checkpoint next to the newest is ignored by readers.
    await write('0000000000000003-checkpoint.jsonl', []);
    await appendFile(path.join(dir, '0000000000000003-checkpoint.jsonl'), checkpoint3);
    expect(await all()).toEqual(read);
  });

  it('entries after `through` are neither folded nor copied into the checkpoint', async () => {
    await write('0000000000000001-20261120T100000000Z.jsonl', [alert('a', 1), { type: 'ack', seq: 2, at: 't', investigation: ref('a'), throughSeq: 3, count: 2 }, alert('a', 3)]);
    await compactJournal(dir, 2, async () => true);
    const checkpoint = await readFile(path.join(dir, '0000000000000002-checkpoint.jsonl'), 'utf8');
    expect(checkpoint.trim().split('\n').map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ type: 'case', count: 1, lastSeq: 1, ackedThrough: 3 })]);
  });
});
