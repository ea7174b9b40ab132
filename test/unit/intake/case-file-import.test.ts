import { afterEach, beforeEach, describe, expect, it, test } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CaseFile } from '../../../src/evidence/store.js';
import { importJournaledAlerts, mayHoldJournaledAlerts, sealedImports } from '../../../src/intake/case-file-import.js';
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

  it('a moved case takes the alerts journaled under its derived name; the name holder takes none', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    await journal.append([alertEntry('derived', 1)]);
    await journal.append([{ type: 'moved', at: new Date().toISOString(), investigation: { namespace: 'production', name: 'derived' }, to: 'derived-0a1b2c3d' }]);
    await journal.append([alertEntry('derived', 2)]);
    const moved = await CaseFile.open({ root, namespace: 'production', name: 'derived-0a1b2c3d', uid: 'c1b2c3d4-0000', actor: 'test' });
    expect((await importJournaledAlerts(moved, root, 'production', 'derived-0a1b2c3d'))?.artifact).toBe('alerts/1-3.jsonl');
    const decoy = await CaseFile.open({ root, namespace: 'production', name: 'derived', uid: 'd1b2c3d4-0000', actor: 'test' });
    expect(await importJournaledAlerts(decoy, root, 'production', 'derived')).toBeUndefined();
    await moved.close();
    await decoy.close();
    await journal.close();
  });
  it('with writtenSince (the pod\'s creation), skips journal files last written well before it', async () => {
    const before = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    await before.append([alertEntry('case-t', 1)]);
    await before.close();
    const [old] = await readdir(journalDir(root));
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(path.join(journalDir(root), old!), hourAgo, hourAgo);
    const after = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    await after.append([alertEntry('case-t', 2)]);
    const since = new Date(Date.now() - 600_000).toISOString();
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-t', uid: 'f1b2c3d4-0000', actor: 'test' });
    expect((await importJournaledAlerts(cf, root, 'production', 'case-t', since))?.artifact).toBe('alerts/2-2.jsonl');
    // Within the clock slack of the old file's last write, it is read.
    const all = await CaseFile.open({ root, namespace: 'production', name: 'case-t', uid: 'f2b2c3d4-0000', actor: 'test' });
    expect((await importJournaledAlerts(all, root, 'production', 'case-t', new Date(hourAgo.getTime() + 60_000).toISOString()))?.artifact).toBe('alerts/1-2.jsonl');
    await cf.close();
    await all.close();
    await after.close();
  });
});

describe('sealedImports', () => {
  it('an alert counts as imported only once its case file is sealed with it in alerts/', async () => {
    const journal = await AlertJournal.open(journalDir(root), { log: silent, groupCommitMs: 0 }, () => undefined);
    const entries = [];
    for (let i = 0; i < 3; i++) entries.push(...(await journal.append([alertEntry('case-s', i)])));
    const cf = await CaseFile.open({ root, namespace: 'production', name: 'case-s', uid: 'e1b2c3d4-0000', actor: 'test' });
    await importJournaledAlerts(cf, root, 'production', 'case-s');
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
