import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CaseFile } from '../../../src/evidence/store.js';
import { importJournaledAlerts } from '../../../src/intake/case-file-import.js';
import { AlertJournal, journalDir } from '../../../src/intake/journal.js';
import { alertEntry, silent } from './helpers.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-import-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('importJournaledAlerts', () => {
  it('copies only the alerts not imported yet, into write-once alerts/<first>-<last>.jsonl', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    for (let i = 0; i < 4; i++) await journal.append([alertEntry(i % 2 ? 'other' : 'case-a', i)]);
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-a', uid: 'a1b2c3d4-0000', actor: 'test' });
    const first = await importJournaledAlerts(cf, root, 'production', 'case-a');
    expect(first?.artifact).toBe('alerts/1-3.jsonl');
    const lines = (await readFile(path.join(cf.dir, 'alerts/1-3.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 3]);
    expect(await importJournaledAlerts(cf, root, 'production', 'case-a')).toBeUndefined();
    await journal.append([alertEntry('case-a', 9)]);
    expect((await importJournaledAlerts(cf, root, 'production', 'case-a'))?.artifact).toBe('alerts/5-5.jsonl');
    await cf.close();
    await journal.close();
  });

  it('does nothing without a journal', async () => {
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-b', uid: 'b1b2c3d4-0000', actor: 'test' });
    expect(await importJournaledAlerts(cf, root, 'production', 'case-b')).toBeUndefined();
    await cf.close();
  });
});
