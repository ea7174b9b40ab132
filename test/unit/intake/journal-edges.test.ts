// Journal edges found by mutation testing (docs/testing.md, "Third round"): the exact thresholds of
// segment rotation and compaction, and a segment that begins at its checkpoint's sequence number.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AlertJournal, compactJournal, readJournal, type AlertEntry, type JournalEntry } from '../../../src/intake/journal.js';
import { alertEntry, silent } from './helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-journal-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

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
    const log = { ...silent, info: (_o: unknown, msg?: string) => msg === 'alert journal compacted' && compacted(), error: () => undefined } as unknown as typeof silent;
    const journal = await AlertJournal.open(dir, { log, groupCommitMs: 0, compactAtBytes: at, importedCheck: () => (compactions++, async () => false) }, () => undefined);
    await journal.append([big]);
    expect(journal.size).toBe(at);
    // The compaction runs after the flush that resolved the append: wait for it (or give up after 2 s).
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 2000))]);
    expect(compactions).toBe(1);
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
