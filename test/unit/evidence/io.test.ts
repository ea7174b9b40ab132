// The store's file helpers (src/evidence/io.ts) on their own: what each returns, refuses and leaves
// behind on disk. Answers to the fifth round of mutation testing (docs/testing.md).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { errnoCode, fileStamp, fsyncDir, hashFile, linkInto, mkdirDurable, readIfExists, sha256Hex, writeFully, writeOnce } from '../../../src/evidence/io.js';

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const openFds = async () => (await readdir('/proc/self/fd')).length;

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-io-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('io helpers', () => {
  test('sha256Hex of a string and of a Buffer', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(Buffer.from([0, 255]))).toBe(sha(Buffer.from([0, 255])));
  });

  test('errnoCode: the string code of an error-like object, nothing for anything else', () => {
    expect(errnoCode(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(errnoCode({ code: 'EACCES' })).toBe('EACCES');
    expect(errnoCode({ code: 28 })).toBeUndefined();
    expect(errnoCode(new Error('no code'))).toBeUndefined();
    expect(errnoCode(null)).toBeUndefined();
    expect(errnoCode(undefined)).toBeUndefined();
    expect(errnoCode('ENOENT')).toBeUndefined();
    // A function is not an error object, whatever it carries.
    expect(errnoCode(Object.assign(() => undefined, { code: 'ENOENT' }))).toBeUndefined();
  });

  test('readIfExists: the bytes, undefined for a missing file, and any other error thrown', async () => {
    const file = path.join(tmp, 'a.bin');
    await writeFile(file, Buffer.from([1, 2, 3]));
    expect(await readIfExists(file)).toEqual(Buffer.from([1, 2, 3]));
    expect(await readIfExists(path.join(tmp, 'missing'))).toBeUndefined();
    await expect(readIfExists(tmp)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  test('fileStamp: the UTC time with only digits, T and Z', () => {
    expect(fileStamp(new Date('2026-12-03T07:08:09.012Z'))).toBe('20261203T070809012Z');
    expect(fileStamp()).toMatch(/^\d{8}T\d{9}Z$/);
  });

  test('hashFile streams a file of many chunks: its SHA-256 and size', async () => {
    const file = path.join(tmp, 'big.bin');
    const data = Buffer.alloc(300 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    await writeFile(file, data);
    expect(await hashFile(file)).toEqual({ sha256: sha(data), bytes: data.length });
    await writeFile(file, '');
    expect(await hashFile(file)).toEqual({ sha256: sha(''), bytes: 0 });
  });

  test('fsyncDir closes the directory it opened; a missing directory is an error', async () => {
    const before = await openFds();
    for (let i = 0; i < 20; i++) await fsyncDir(tmp);
    expect(await openFds()).toBeLessThan(before + 5);
    await expect(fsyncDir(path.join(tmp, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('mkdirDurable creates every missing level and leaves an existing directory as it is', async () => {
    const deep = path.join(tmp, 'a', 'b', 'c');
    await mkdirDurable(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
    await writeFile(path.join(deep, 'kept'), 'x');
    await mkdirDurable(deep);
    await mkdirDurable(path.join(tmp, 'a'));
    expect(await readFile(path.join(deep, 'kept'), 'utf8')).toBe('x');
    await writeFile(path.join(tmp, 'file'), 'x');
    await expect(mkdirDurable(path.join(tmp, 'file', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('writeFully keeps writing after a short write until every byte is written, in order', async () => {
    const written: Buffer[] = [];
    const calls: [number, number][] = [];
    // A volume filling up: each write takes at most 3 bytes.
    const fh = {
      write: async (buf: Buffer, off: number, len: number) => {
        calls.push([off, len]);
        const n = Math.min(3, len);
        written.push(Buffer.from(buf.subarray(off, off + n)));
        return { bytesWritten: n, buffer: buf };
      },
    } as unknown as FileHandle;
    await writeFully(fh, Buffer.from('abcdefgh'));
    expect(Buffer.concat(written).toString()).toBe('abcdefgh');
    expect(calls).toEqual([
      [0, 8],
      [3, 5],
      [6, 2],
    ]);
    calls.length = 0;
    await writeFully(fh, Buffer.alloc(0));
    expect(calls).toEqual([]);
  });

  test('writeFully surfaces the error of the write', async () => {
    const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    let n = 0;
    const fh = {
      write: async (buf: Buffer) => {
        if (n++ > 0) throw full;
        return { bytesWritten: 2, buffer: buf };
      },
    } as unknown as FileHandle;
    await expect(writeFully(fh, Buffer.from('abcd'))).rejects.toBe(full);
    expect(n).toBe(2);
  });

  test('linkInto publishes the temp file under its final name in a new directory and drops the temp name', async () => {
    const temp = path.join(tmp, 'temp.partial');
    await writeFile(temp, 'evidence');
    const final = path.join(tmp, 'x', 'y', 'final.txt');
    await linkInto(temp, final);
    expect(await readFile(final, 'utf8')).toBe('evidence');
    expect((await stat(final)).nlink).toBe(1);
    await expect(stat(temp)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('linkInto never replaces an existing file: EEXIST, both files left as they were', async () => {
    const temp = path.join(tmp, 'temp.partial');
    const final = path.join(tmp, 'final.txt');
    await writeFile(temp, 'new');
    await writeFile(final, 'old');
    await expect(linkInto(temp, final)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(final, 'utf8')).toBe('old');
    expect(await readFile(temp, 'utf8')).toBe('new');
  });

  test('writeOnce writes the content under the final name, making the temp directory, and leaves no temp file', async () => {
    const temp = path.join(tmp, '.partial', 'deep', 'm.partial');
    const final = path.join(tmp, 'out', 'm.txt');
    const before = await openFds();
    await writeOnce(temp, final, Buffer.from('manifest\n'));
    expect(await readFile(final, 'utf8')).toBe('manifest\n');
    expect(await readdir(path.dirname(temp))).toEqual([]);
    expect(await openFds()).toBe(before);
  });

  test('writeOnce refuses an existing final file and an existing temp file, and closes what it opened', async () => {
    const final = path.join(tmp, 'm.txt');
    await writeFile(final, 'first');
    const before = await openFds();
    await expect(writeOnce(path.join(tmp, 'a.partial'), final, Buffer.from('second'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(final, 'utf8')).toBe('first');
    // The complete temp file stays for the store's recovery.
    expect(await readFile(path.join(tmp, 'a.partial'), 'utf8')).toBe('second');

    await mkdir(path.join(tmp, 'd'));
    await writeFile(path.join(tmp, 'd', 'busy.partial'), 'someone else');
    await expect(writeOnce(path.join(tmp, 'd', 'busy.partial'), path.join(tmp, 'd', 'other.txt'), Buffer.from('mine'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path.join(tmp, 'd', 'busy.partial'), 'utf8')).toBe('someone else');
    await expect(stat(path.join(tmp, 'd', 'other.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await openFds()).toBe(before);
  });
});
