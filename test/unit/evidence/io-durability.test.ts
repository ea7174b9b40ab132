// Which directories the store's helpers fsync (src/evidence/io.ts). A missing fsync only shows after a
// power cut, so these tests watch the calls instead: `node:fs/promises` is wrapped (its `open` records
// every directory opened for reading, and each handle's `sync`) before io.ts is loaded. Answers to the
// fifth round of mutation testing (docs/testing.md).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';

const real = await import('node:fs/promises');
/** Directories synced, in order: each open(dir, 'r') whose handle was then synced and closed. */
const synced: string[] = [];
jest.unstable_mockModule('node:fs/promises', () => ({
  ...real,
  default: real,
  open: async (file: string, flags?: string, mode?: number) => {
    const fh = await real.open(file, flags, mode);
    if (flags !== 'r') return fh;
    const sync = fh.sync.bind(fh);
    return Object.assign(Object.create(fh) as typeof fh, {
      sync: async () => {
        await sync();
        synced.push(file);
      },
      close: () => fh.close(),
    });
  },
}));
const { fsyncDir, linkInto, mkdirDurable, writeOnce } = await import('../../../src/evidence/io.js');

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-io-sync-'));
  synced.length = 0;
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('fsync of directories', () => {
  test('fsyncDir syncs the directory it is given', async () => {
    await fsyncDir(tmp);
    expect(synced).toEqual([tmp]);
  });

  test('mkdirDurable syncs the parent of each directory it created, deepest first, and no other', async () => {
    await mkdirDurable(path.join(tmp, 'a', 'b', 'c'));
    expect(synced).toEqual([path.join(tmp, 'a', 'b'), path.join(tmp, 'a'), tmp]);
  });

  test('mkdirDurable of a directory that exists syncs nothing; of one new level, only its parent', async () => {
    await mkdirDurable(tmp);
    expect(synced).toEqual([]);
    await mkdirDurable(path.join(tmp, 'one'));
    expect(synced).toEqual([tmp]);
  });

  test('linkInto syncs the new directory chain, then the final directory once the name is linked', async () => {
    const temp = path.join(tmp, 't.partial');
    await writeFile(temp, 'x');
    await linkInto(temp, path.join(tmp, 'x', 'final'));
    expect(synced).toEqual([tmp, path.join(tmp, 'x')]);
  });

  test('writeOnce into an existing directory syncs only that directory', async () => {
    await writeOnce(path.join(tmp, 'w.partial'), path.join(tmp, 'final'), Buffer.from('x'));
    expect(synced).toEqual([tmp]);
  });
});
