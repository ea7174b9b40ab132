import { afterEach, beforeEach, describe, expect, it, test } from '@jest/globals';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CaseFile } from '../../../src/evidence/store.js';
import { importJournaledAlerts, mayHoldJournaledAlerts, sealedImports } from '../../../src/intake/case-file-import.js';
import { JournalIndex } from '../../../src/intake/journal-index.js';
import { AlertJournal } from '../../../src/intake/journal.js';
import { journalDir } from '../../../src/intake/journal-format.js';
import { alertEntry, silent } from './helpers.js';

let root: string;
let journalIndex: JournalIndex;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-import-'));
  journalIndex = new JournalIndex(journalDir(root));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('importJournaledAlerts', () => {
  it('copies only the alerts not imported yet, into write-once alerts/<first>-<last>.jsonl', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    for (let i = 0; i < 4; i++) await journal.append([alertEntry(i % 2 ? 'other' : 'case-a', i)]);
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-a', uid: 'a1b2c3d4-0000', actor: 'test' });
    const first = await importJournaledAlerts(cf, journalIndex, 'production', 'case-a');
    expect(first?.artifact).toBe('alerts/1-3.jsonl');
    const lines = (await readFile(path.join(cf.dir, 'alerts/1-3.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 3]);
    expect(await importJournaledAlerts(cf, journalIndex, 'production', 'case-a')).toBeUndefined();
    await journal.append([alertEntry('case-a', 9)]);
    expect((await importJournaledAlerts(cf, journalIndex, 'production', 'case-a'))?.artifact).toBe('alerts/5-5.jsonl');
    await cf.close();
    await journal.close();
  });

  it('does nothing without a journal', async () => {
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-b', uid: 'b1b2c3d4-0000', actor: 'test' });
    expect(await importJournaledAlerts(cf, journalIndex, 'production', 'case-b')).toBeUndefined();
    await cf.close();
  });

  it('a moved case takes the alerts journaled under its derived name; the name holder takes none', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    await journal.append([alertEntry('derived', 1)]);
    await journal.append([{ type: 'moved', at: new Date().toISOString(), investigation: { namespace: 'production', name: 'derived' }, to: 'derived-0a1b2c3d' }]);
    await journal.append([alertEntry('derived', 2)]);
    const moved = await CaseFile.open({ root, namespace: 'production', name: 'derived-0a1b2c3d', uid: 'c1b2c3d4-0000', actor: 'test' });
    expect((await importJournaledAlerts(moved, journalIndex, 'production', 'derived-0a1b2c3d'))?.artifact).toBe('alerts/1-3.jsonl');
    const decoy = await CaseFile.open({ root, namespace: 'production', name: 'derived', uid: 'd1b2c3d4-0000', actor: 'test' });
    expect(await importJournaledAlerts(decoy, journalIndex, 'production', 'derived')).toBeUndefined();
    await moved.close();
    await decoy.close();
    await journal.close();
  });
});

describe('sealedImports', () => {
  it('an alert counts as imported only once its case file is sealed with it in alerts/', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    const entries = [];
    for (let i = 0; i < 3; i++) entries.push(...(await journal.append([alertEntry('case-s', i)])));
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-s', uid: 'e1b2c3d4-0000', actor: 'test' });
    await importJournaledAlerts(cf, journalIndex, 'production', 'case-s');
    const alert = entries[1]! as Parameters<ReturnType<typeof sealedImports>>[0];
    expect(await sealedImports(root)(alert, 'case-s')).toBe(false); // imported, not sealed yet
    await cf.seal();
    expect(await sealedImports(root)(alert, 'case-s')).toBe(true);
    expect(await sealedImports(root)(alert, 'other')).toBe(false);
    const [later] = await journal.append([alertEntry('case-s', 9)]);
    expect(await sealedImports(root)(later as typeof alert, 'case-s')).toBe(false); // after the seal: only in the journal
    await cf.close();
    await journal.close();
  });
});

test('only a case intake opened (its ResponsePolicy annotation) may hold journaled alerts: any other skips the journal', () => {
  expect(mayHoldJournaledAlerts({ metadata: { annotations: { 'casefile.dev/response-policy': 'production/contain-shells' } } })).toBe(true);
  expect(mayHoldJournaledAlerts({ metadata: {} })).toBe(false);
  expect(mayHoldJournaledAlerts({ metadata: { annotations: { 'casefile.dev/other': 'x' } } })).toBe(false);
});

describe('JournalIndex', () => {
  const line = (e: object) => `${JSON.stringify(e)}\n`;
  const alert = (name: string, seq: number, extra: object = {}) => ({ ...alertEntry(name, seq), seq, ...extra });
  /** A journal segment written by hand with these lines; its path. */
  async function segmentWith(text: string): Promise<string> {
    await mkdir(journalDir(root), { recursive: true });
    const segment = path.join(journalDir(root), '0000000000000001-20261204T090000Z.jsonl');
    await writeFile(segment, text);
    return segment;
  }

  it('finds what was appended since the last import, and never a torn last line until it is whole', async () => {
    const segment = await segmentWith(line(alert('case-i', 1)) + line(alert('other', 2)));
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-i', uid: 'a9b2c3d4-0000', actor: 'test' });
    expect((await importJournaledAlerts(cf, journalIndex, 'production', 'case-i'))?.artifact).toBe('alerts/1-1.jsonl');
    const torn = line(alert('case-i', 3));
    await appendFile(segment, torn.slice(0, 40));
    expect(await importJournaledAlerts(cf, journalIndex, 'production', 'case-i')).toBeUndefined();
    await appendFile(segment, torn.slice(40) + line(alert('case-i', 4)));
    expect((await importJournaledAlerts(cf, journalIndex, 'production', 'case-i'))?.artifact).toBe('alerts/3-4.jsonl');
    const copied = (await readFile(path.join(cf.dir, 'alerts/3-4.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).seq);
    expect(copied).toEqual([3, 4]);
    await cf.close();
  });

  it('follows a compaction: the checkpoint replaces the segments it folded, and what it kept is found there', async () => {
    const segment = await segmentWith(line(alert('case-c', 1)) + line(alert('case-c', 2)));
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-c', uid: 'b9b2c3d4-0000', actor: 'test' });
    await journalIndex.refresh();
    // Compacted: alert 1 folded away, alert 2 kept in the checkpoint at another offset; the segment deleted.
    await writeFile(path.join(journalDir(root), '0000000000000002-checkpoint.jsonl'), line({ type: 'case', seq: 2, investigation: { namespace: 'production', name: 'x' } }) + line(alert('case-c', 2)));
    await rm(segment);
    expect((await importJournaledAlerts(cf, journalIndex, 'production', 'case-c'))?.artifact).toBe('alerts/2-2.jsonl');
    await cf.close();
  });

  it('an alert stored with its body on another case\'s line (several policies matched) is imported with that body', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    const raw = JSON.stringify({ rule: 'Terminal shell in container', padding: 'r'.repeat(500) });
    await journal.append([alertEntry('by-policy-a', 1), alertEntry('by-policy-b', 1)].map((e) => ({ ...e, raw })));
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'by-policy-b', uid: 'c9b2c3d4-0000', actor: 'test' });
    const artifact = await importJournaledAlerts(cf, journalIndex, 'production', 'by-policy-b');
    const [copied] = (await readFile(path.join(cf.dir, artifact!.artifact), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(copied).toMatchObject({ seq: 2, raw });
    expect(copied.rawSeq).toBeUndefined();
    await cf.close();
    await journal.close();
  });
});
