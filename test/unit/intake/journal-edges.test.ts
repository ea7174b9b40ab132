// Journal edges found by mutation testing (docs/testing.md, "Third round"): the exact thresholds
// (full, segment rotation, compaction), the byte count across a compaction, a failed compaction, raw
// bodies shared only between alerts that have one, which files a reader takes, and what compaction
// reads from a checkpoint's case lines.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AlertJournal, compactJournal, JournalFullError } from '../../../src/intake/journal.js';
import { journalDir, readJournal, type AlertEntry, type JournalEntry } from '../../../src/intake/journal-format.js';
import { alertEntry, silent } from './helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-journal-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function diskBytes(): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) n += (await stat(path.join(dir, f))).size;
  return n;
}

async function readAll(log?: typeof silent): Promise<JournalEntry[]> {
  const read: JournalEntry[] = [];
  for await (const e of readJournal(dir, log)) read.push(e);
  return read;
}

describe('AlertJournal thresholds, exactly', () => {
  const lineBytes = (e: object, seq: number) => Buffer.byteLength(`${JSON.stringify({ ...e, seq })}\n`);
  const ack = (throughSeq: number) => ({ type: 'ack' as const, at: 't', investigation: { namespace: 'production', name: 'a' }, throughSeq, count: 1 });

  it('a batch that fills a segment to exactly segmentBytes stays in it; the next one starts a new segment', async () => {
    const [e1, e2, e3] = [alertEntry('a', 1), alertEntry('a', 2), alertEntry('a', 3)];
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, segmentBytes: lineBytes(e1!, 1) + lineBytes(e2!, 2) }, () => undefined);
    for (const e of [e1!, e2!, e3!]) await journal.append([e]);
    await journal.close();
    const names = (await readdir(dir)).sort();
    expect(names.map((n) => n.slice(0, 16))).toEqual(['0000000000000001', '0000000000000003']);
    const first = await readFile(path.join(dir, names[0]!), 'utf8');
    expect(first.trim().split('\n').map((l) => (JSON.parse(l) as JournalEntry).seq)).toEqual([1, 2]);
  });

  it('compacts once the journal holds exactly compactAtBytes, and not again before it grows by a quarter of that', async () => {
    const big = { ...alertEntry('a', 1), raw: 'x'.repeat(2000) };
    const at = lineBytes(big, 1);
    expect(lineBytes(ack(1), 2) * 2).toBeLessThan(at / 4); // the two acknowledgements below stay under the quarter
    let compactions = 0;
    let compacted!: () => void;
    const done = new Promise<void>((resolve) => (compacted = resolve));
    const infos: unknown[] = [];
    const log = { ...silent, info: (o: unknown, msg?: string) => (infos.push([o, msg]), msg === 'alert journal compacted' && compacted()), error: () => undefined } as unknown as typeof silent;
    const journal = await AlertJournal.open(dir, { log, groupCommitMs: 0, compactAtBytes: at, importedCheck: () => (compactions++, async () => false) }, () => undefined);
    await journal.append([big]);
    expect(journal.size).toBe(at);
    // The compaction runs after the flush that resolved the append: wait for it (or give up after 2 s).
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 2000))]);
    expect(compactions).toBe(1);
    expect(infos).toEqual([[{ before: at, after: await diskBytes() }, 'alert journal compacted']]);
    expect(journal.size).toBe(await diskBytes());
    // Each append waits for the flush and compaction before it, so both acknowledgements' flushes have
    // had their chance to compact by the time the second resolves.
    await journal.append([ack(1)]);
    await journal.append([ack(1)]);
    await journal.close();
    expect(compactions).toBe(1);
    const names = (await readdir(dir)).sort();
    expect(names[0]).toBe('0000000000000001-checkpoint.jsonl');
    expect(names.slice(1).map((n) => n.slice(0, 16))).toEqual(['0000000000000002']);
    const seqs: number[] = [];
    for await (const e of readJournal(dir)) seqs.push(e.seq);
    expect(seqs).toEqual([1, 2, 3]);
  });

  it('without importedCheck the journal is never compacted, however full: one segment, nothing logged', async () => {
    const logged: unknown[] = [];
    const log = { ...silent, info: (o: unknown) => logged.push(o), error: (o: unknown) => logged.push(o) } as unknown as typeof silent;
    const journal = await AlertJournal.open(dir, { log, groupCommitMs: 0, compactAtBytes: 1 }, () => undefined);
    for (let i = 0; i < 3; i++) await journal.append([alertEntry('a', i)]);
    await journal.close();
    expect((await readdir(dir)).map((n) => n.slice(0, 16))).toEqual(['0000000000000001']);
    expect(logged).toEqual([]);
  });
});

describe('which files a reader takes', () => {
  const alert = (name: string, seq: number): AlertEntry => ({ ...(alertEntry(name, seq) as Omit<AlertEntry, 'seq'>), seq });
  const write = (file: string, entries: object[]) => appendFile(path.join(dir, file), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
  const seq16 = (n: number) => String(n).padStart(16, '0');
  async function seqs(): Promise<number[]> {
    const read: number[] = [];
    for await (const e of readJournal(dir)) read.push(e.seq);
    return read;
  }

  it("a segment that begins at the checkpoint's own sequence number is replaced by it", async () => {
    await write(`${seq16(1)}-20261120T100000000Z.jsonl`, [alert('a', 1), alert('a', 2)]);
    await write(`${seq16(3)}-20261120T100001000Z.jsonl`, [alert('a', 3)]);
    await write(`${seq16(4)}-20261120T100002000Z.jsonl`, [alert('a', 4)]);
    await compactJournal(dir, 3, async () => false);
    expect((await readdir(dir)).sort()).toEqual([`${seq16(3)}-checkpoint.jsonl`, `${seq16(4)}-20261120T100002000Z.jsonl`]);
    expect(await seqs()).toEqual([1, 2, 3, 4]);
  });
});

describe('AlertJournal edges, exactly', () => {
  const lineBytes = (e: object, seq: number) => Buffer.byteLength(`${JSON.stringify({ ...e, seq })}\n`);
  const ack = { type: 'ack' as const, at: 't', investigation: { namespace: 'production', name: 'a' }, throughSeq: 1, count: 1 };

  it('full at exactly maxBytes', async () => {
    const e = alertEntry('a', 1);
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, maxBytes: lineBytes(e, 1) }, () => undefined);
    await journal.append([e]);
    expect(journal.size).toBe(lineBytes(e, 1));
    await expect(journal.append([alertEntry('a', 2)])).rejects.toBeInstanceOf(JournalFullError);
    await journal.close();
  });

  it('counts what an append brings while a compaction runs: after it, the size is what the files hold', async () => {
    const big = { ...alertEntry('a', 1), raw: 'x'.repeat(2000) };
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0, compactAtBytes: lineBytes(big, 1), importedCheck: () => async () => false }, () => undefined);
    await journal.append([big]);
    // Appended before the compaction that follows the first flush has run: it waits in \`pending\` meanwhile.
    const during = journal.append([ack]);
    await during;
    await journal.close();
    expect((await readdir(dir)).some((f) => f.endsWith('-checkpoint.jsonl'))).toBe(true);
    expect(journal.size).toBe(await diskBytes());
  });

  it('a compaction that fails is logged, leaves the journal as it was, and is not retried at once', async () => {
    const errors: unknown[] = [];
    let attempts = 0;
    const log = { ...silent, error: (o: unknown, msg?: string) => errors.push([o, msg]) } as unknown as typeof silent;
    const big = { ...alertEntry('a', 1), raw: 'x'.repeat(2000) };
    const at = lineBytes(big, 1);
    expect(lineBytes(ack, 2) * 2).toBeLessThan(at / 4);
    const journal = await AlertJournal.open(dir, { log, groupCommitMs: 0, compactAtBytes: at, importedCheck: () => {
      attempts++;
      throw new Error('case files unreadable');
    } }, () => undefined);
    await journal.append([big]);
    // Each append waits for the flush and compaction before it: by the time the second acknowledgement
    // resolves, the flush of the first has had its chance to try again (the journal is past compactAtBytes).
    await journal.append([ack]);
    await journal.append([ack]);
    await journal.close();
    expect(attempts).toBe(1);
    expect(errors).toEqual([[{ err: new Error('case files unreadable') }, 'alert journal compaction failed; the journal is unchanged']]);
    expect((await readAll()).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await readdir(dir)).some((f) => f.includes('checkpoint'))).toBe(false);
  });

  it('a failed write is logged as such', async () => {
    const errors: unknown[] = [];
    const log = { ...silent, error: (_o: unknown, msg?: string) => errors.push(msg) } as unknown as typeof silent;
    const journal = await AlertJournal.open(dir, { log, groupCommitMs: 0 }, () => undefined);
    await rm(dir, { recursive: true });
    await expect(journal.append([alertEntry('a', 1)])).rejects.toMatchObject({ code: 'ENOENT' });
    expect(errors).toEqual(['alert journal write failed']);
    await journal.close();
  });

  it('only alerts with a body share one: entries without raw are written as they are', async () => {
    const { raw: _, ...bare } = alertEntry('a', 1) as AlertEntry;
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    await journal.append([ack, bare, { ...bare, investigation: { namespace: 'production', name: 'b' } }]);
    await journal.close();
    const read = await readAll();
    expect(read).toEqual([{ ...ack, seq: 1 }, { ...bare, seq: 2 }, { ...bare, investigation: { namespace: 'production', name: 'b' }, seq: 3 }]);
    expect(await readFile(path.join(dir, (await readdir(dir))[0]!), 'utf8')).not.toContain('rawSeq');
  });

  it('a reader leaves alerts without raw or rawSeq alone, and a rawSeq before any body too', async () => {
    const base = { type: 'alert', investigation: { namespace: 'production', name: 'a' } };
    const lines = [{ ...base, seq: 1, rawSeq: 9 }, { ...base, seq: 2, raw: 'body-2' }, { ...base, seq: 3 }];
    await writeFile(path.join(dir, '0000000000000001-20261120T100000000Z.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    expect(await readAll()).toEqual(lines);
  });

  it('a reader without a logger skips an unreadable line; with one, it says why', async () => {
    await writeFile(path.join(dir, '0000000000000001-20261120T100000000Z.jsonl'), `${JSON.stringify({ ...alertEntry('a', 1), seq: 1 })}\n{"type":"alert","se`);
    expect((await readAll()).map((e) => e.seq)).toEqual([1]);
    const warnings: unknown[] = [];
    const log = { ...silent, warn: (_o: unknown, msg?: string) => warnings.push(msg) } as unknown as typeof silent;
    expect((await readAll(log)).map((e) => e.seq)).toEqual([1]);
    expect(warnings).toEqual(['skipping an unreadable alert journal line (torn by a crash?)']);
  });

  it('a journal directory that is not a directory is an error, not an empty journal', async () => {
    const file = path.join(dir, 'not-a-dir');
    await writeFile(file, '');
    await expect(readJournal(file).next()).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it('the journal lives in _intake under the evidence directory, and tells its last sequence number', async () => {
    expect(journalDir('/evidence')).toBe(path.join('/evidence', '_intake'));
    const journal = await AlertJournal.open(dir, { log: silent, groupCommitMs: 0 }, () => undefined);
    expect(journal.sequence).toBe(0);
    await journal.append([alertEntry('a', 1), ack]);
    expect(journal.sequence).toBe(2);
    await journal.close();
  });
});

describe('compactJournal, exactly', () => {
  const ref = (name: string) => ({ namespace: 'production', name });
  const write = (file: string, entries: object[]) => appendFile(path.join(dir, file), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
  const alert = (name: string, seq: number, ms = seq): AlertEntry => ({ ...(alertEntry(name, ms) as Omit<AlertEntry, 'seq'>), seq });

  it('an acknowledgement or move after `through` does not decide what the checkpoint drops', async () => {
    await write('0000000000000001-20261120T100000000Z.jsonl', [
      alert('a', 1),
      alert('b', 2),
      { type: 'ack', seq: 3, at: 't', investigation: ref('a'), throughSeq: 1, count: 1 },
      { type: 'moved', seq: 4, at: 't', investigation: ref('b'), to: 'b-2' },
    ]);
    const asked: string[] = [];
    await compactJournal(dir, 2, async (_e, name) => (asked.push(name), true));
    expect(asked).toEqual([]);
    const checkpoint = await readFile(path.join(dir, '0000000000000002-checkpoint.jsonl'), 'utf8');
    expect(checkpoint.trim().split('\n').map((l) => (JSON.parse(l) as JournalEntry).seq)).toEqual([1, 2]);
  });

  it("a later compaction drops an alert acknowledged before the last one, from the checkpoint's case line alone", async () => {
    // First compaction: both acknowledged, only seq 1 sealed yet: 2 is kept, the ack folds into the case line.
    await write('0000000000000001-20261120T100000000Z.jsonl', [alert('a', 1), alert('a', 2), { type: 'ack', seq: 3, at: 't', investigation: ref('a'), throughSeq: 2, count: 2 }]);
    await compactJournal(dir, 3, async (e) => e.seq === 1);
    expect((await readAll()).map((e) => [e.type, e.seq])).toEqual([['alert', 2], ['case', 3]]);
    // Second: no new acknowledgement; seq 2 is sealed now.
    await write('0000000000000004-20261120T100001000Z.jsonl', [alert('a', 4)]);
    await compactJournal(dir, 4, async () => true);
    expect((await readAll()).map((e) => [e.type, e.type === 'case' ? e.count : e.seq])).toEqual([['alert', 4], ['case', 2]]);
  });

  it("a case line spans the earliest and the latest receipt, whatever the order of sequence numbers", async () => {
    // Received out of sequence order (two writers, a clock step): seq 1 at +5 ms, seq 2 at +1 ms, seq 3 at +3 ms.
    await write('0000000000000001-20261120T100000000Z.jsonl', [alert('a', 1, 5), alert('a', 2, 1), alert('a', 3, 3), { type: 'ack', seq: 4, at: 't', investigation: ref('a'), throughSeq: 3, count: 3 }]);
    await compactJournal(dir, 4, async () => true);
    expect(await readAll()).toEqual([expect.objectContaining({ type: 'case', count: 3, first: alert('a', 2, 1).receivedAt, last: alert('a', 1, 5).receivedAt, lastSeq: 3 })]);
  });
});
