// Case bundles: byte-identical for the same case, readable by GNU tar, and an extractor that refuses
// every hostile shape of archive with a clear error.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { writeBundle } from '../../../src/evidence/bundle.js';
import { extractBundle } from '../../../src/evidence/bundle-extract.js';
import { signCase, signingKeyFromPem } from '../../../src/evidence/signing.js';
import { verifyCaseDir } from '../../../src/evidence/verify-case.js';
import { verifySignature } from '../../../src/evidence/verify-signature.js';
import { KEY_A_PEM, LONG_ARTIFACT, sealedCase } from './sealed-case.js';

let tmp: string;
let caseDir: string;
let root: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-bundle-'));
  const c = await sealedCase();
  caseDir = c.dir;
  root = c.root;
  await signCase(caseDir, signingKeyFromPem(KEY_A_PEM));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await rm(root, { recursive: true, force: true });
});

async function bundleBytes(dir: string): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await writeBundle(dir, out);
  return Buffer.concat(chunks);
}

async function bundleFile(bytes: Buffer): Promise<string> {
  const file = path.join(await mkdtemp(path.join(tmp, 'b-')), 'case.tar.gz');
  await writeFile(file, bytes);
  return file;
}

/** One raw ustar entry (header + padded content), built here independently of src/evidence/tar.ts. */
function rawEntry(name: string, typeflag: string, content = '', linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${Buffer.byteLength(content).toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(typeflag, 156);
  h.write(linkname, 157, 100);
  h.write('ustar\x0000', 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const body = Buffer.from(content);
  return Buffer.concat([h, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}
const archive = (...entries: Buffer[]) => gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));
const into = () => mkdtemp(path.join(tmp, 'x-'));

describe('writeBundle', () => {
  test('is byte-identical for the same case, wherever it lies and whatever its mtimes', async () => {
    const first = await bundleBytes(caseDir);
    const elsewhere = path.join(await mkdtemp(path.join(tmp, 'copy-')), path.basename(caseDir));
    await cp(caseDir, elsewhere, { recursive: true });
    expect((await bundleBytes(caseDir)).equals(first)).toBe(true);
    expect((await bundleBytes(elsewhere)).equals(first)).toBe(true);
  });

  test('holds the case directory under its basename (not the store .partial/ scratch), sorted, owned by 0/0 at time 0, modes 0644/0755 (GNU tar reads it)', async () => {
    const file = await bundleFile(await bundleBytes(caseDir));
    const r = spawnSync('tar', ['--numeric-owner', '--full-time', '-tvzf', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(r.status).toBe(0);
    const base = path.basename(caseDir);
    const rows = r.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    expect(rows.map((c) => c.slice(5).join(' '))).toEqual([
      `${base}/`, `${base}/MANIFEST.sha256`, `${base}/MANIFEST.sha256.sig`, `${base}/custody.jsonl`,
      `${base}/k8s/`, `${base}/k8s/pod.json`, `${base}/live/`, `${base}/live/files/`, `${base}/live/files/${LONG_ARTIFACT.split('/')[2]}/`,
      `${base}/${LONG_ARTIFACT}`, `${base}/logs/`, `${base}/logs/app.log`,
    ]);
    for (const c of rows) {
      expect(c[0]).toBe(c[5]!.endsWith('/') ? 'drwxr-xr-x' : '-rw-r--r--');
      expect(c[1]).toBe('0/0');
      expect(`${c[3]} ${c[4]}`).toBe('1970-01-01 00:00:00');
    }
  });

  test('refuses a case holding something other than files and directories, before writing a byte', async () => {
    const dir = path.join(await mkdtemp(path.join(tmp, 'link-')), 'case');
    await mkdir(dir);
    await symlink('/etc/passwd', path.join(dir, 'passwd'));
    const out = new PassThrough();
    let wrote = 0;
    out.on('data', (c: Buffer) => (wrote += c.length));
    await expect(writeBundle(dir, out)).rejects.toThrow(`cannot bundle ${dir}: passwd is not a regular file or directory`);
    expect(wrote).toBe(0);
  });

  test('fails, rather than write a corrupt archive, when a file changes size while it is bundled', async () => {
    const dir = path.join(await mkdtemp(path.join(tmp, 'changing-')), 'case');
    await mkdir(dir);
    // Incompressible and large enough that gzip writes out long before z.txt is read.
    await writeFile(path.join(dir, 'a.bin'), randomBytes(8 * 1024 * 1024));
    await writeFile(path.join(dir, 'z.txt'), 'the size the header will promise\n');
    let truncated = false;
    const out = new Writable({
      write(_chunk, _enc, done) {
        if (truncated) return done();
        truncated = true;
        void truncate(path.join(dir, 'z.txt'), 3).then(() => done());
      },
    });
    await expect(writeBundle(dir, out)).rejects.toThrow(`cannot bundle ${dir}: case/z.txt changed size while it was read`);
    expect(out.destroyed).toBe(true);
  });

  test('writes to a file stream and ends it', async () => {
    const file = path.join(await mkdtemp(path.join(tmp, 'f-')), 'case.tar.gz');
    await writeBundle(caseDir, createWriteStream(file));
    expect((await readFile(file)).equals(await bundleBytes(caseDir))).toBe(true);
  });
});

describe('extractBundle', () => {
  test('round trip: the extracted case verifies, signature included', async () => {
    const dir = await extractBundle(await bundleFile(await bundleBytes(caseDir)), await into());
    expect(path.basename(dir)).toBe(path.basename(caseDir));
    expect(await verifyCaseDir(dir)).toEqual({ ok: true, problems: [], artifacts: 3 });
    expect((await verifySignature(dir)).problems).toEqual([]);
    expect(await readFile(path.join(dir, LONG_ARTIFACT))).toEqual(Buffer.from([0, 1, 2, 255, 10]));
  });

  test.each<[string, Buffer, string]>([
    ['an absolute path', archive(rawEntry('/etc/cron.d/x', '0', 'x')), 'entry "/etc/cron.d/x": absolute path refused'],
    ['a .. segment', archive(rawEntry('case/../../x', '0', 'x')), `entry "case/../../x": '..', '.', empty or backslash segment refused`],
    ['a . segment', archive(rawEntry('case/./x', '0', 'x')), `entry "case/./x": '..', '.', empty or backslash segment refused`],
    ['an empty segment', archive(rawEntry('case//x', '0', 'x')), `entry "case//x": '..', '.', empty or backslash segment refused`],
    ['a backslash', archive(rawEntry('case/..\\x', '0', 'x')), `entry "case/..\\\\x": '..', '.', empty or backslash segment refused`],
    ['a symlink', archive(rawEntry('case/', '5'), rawEntry('case/passwd', '2', '', '/etc/passwd')), 'entry "case/passwd": a symlink refused: a case holds only files and directories'],
    ['a hard link', archive(rawEntry('case/', '5'), rawEntry('case/h', '1', '', 'case/x')), 'entry "case/h": a hard link refused: a case holds only files and directories'],
    ['a device', archive(rawEntry('case/', '5'), rawEntry('case/sda', '4')), 'entry "case/sda": a block device refused: a case holds only files and directories'],
    ['a duplicate entry', archive(rawEntry('case/a', '0', 'one'), rawEntry('case/a', '0', 'two')), 'entry "case/a": appears twice'],
    ['two top-level folders', archive(rawEntry('case/a', '0', 'x'), rawEntry('other/a', '0', 'x')), `entry "other/a": outside the bundle's one top-level folder case`],
    ['a bad header checksum', archive(Buffer.concat([Buffer.from('garbage'), Buffer.alloc(505)])), 'malformed archive: header 1: header checksum mismatch'],
    ['no entry at all', archive(), 'empty archive: no case directory in it'],
  ])('refuses %s', async (_what, bytes, says) => {
    await expect(extractBundle(await bundleFile(bytes), await into())).rejects.toThrow(says);
  });

  test('refuses a bundle that unpacks past the size bound', async () => {
    const file = await bundleFile(archive(rawEntry('case/a', '0', 'x'.repeat(600)), rawEntry('case/b', '0', 'y'.repeat(600))));
    await expect(extractBundle(file, await into(), { maxBytes: 1000 })).rejects.toThrow('entry "case/b": the bundle unpacks to more than 1000 bytes');
    await expect(extractBundle(file, await into(), { maxBytes: 1200 })).resolves.toMatch(/case$/);
  });

  test('refuses a tar cut short inside a file, and a gzip cut short', async () => {
    const tar = Buffer.concat([rawEntry('case/a', '0', 'x'.repeat(2000))]).subarray(0, 1024);
    await expect(extractBundle(await bundleFile(gzipSync(tar)), await into())).rejects.toThrow('truncated archive: it ends inside case/a');
    const whole = await bundleBytes(caseDir);
    await expect(extractBundle(await bundleFile(whole.subarray(0, whole.length >> 1)), await into())).rejects.toThrow(/^cannot read bundle .*: unexpected end of file/);
  });

  test('says so when the bundle cannot be read at all', async () => {
    await expect(extractBundle(path.join(tmp, 'no-such.tar.gz'), await into())).rejects.toThrow(/^cannot read bundle .*no-such\.tar\.gz: .*ENOENT/);
  });

  test('refuses a file that is not gzip', async () => {
    await expect(extractBundle(await bundleFile(Buffer.from('not a bundle')), await into())).rejects.toThrow(/^cannot read bundle .*: incorrect header check/);
  });
});

// Answers to the fourth round's mutation testing of bundle-extract.ts (docs/testing.md): archives
// built by hand (rawEntry, and pax records built here) for the shapes the bundle writer never makes.
describe('extractBundle edges', () => {
  /** A pax extended header entry holding `records` (each `<length> <key>=<value>\n`). */
  const paxEntry = (records: [string, string][]) => {
    const body = records
      .map(([k, v]) => {
        const rest = ` ${k}=${v}\n`;
        let n = Buffer.byteLength(rest) + 1;
        while (String(n).length + Buffer.byteLength(rest) !== n) n = String(n).length + Buffer.byteLength(rest);
        return `${n}${rest}`;
      })
      .join('');
    return rawEntry('PaxHeader', 'x', body);
  };
  const extracted = async (bytes: Buffer) => extractBundle(await bundleFile(bytes), await into());

  test('a pax path applies to the next entry only', async () => {
    const dir = await extracted(archive(rawEntry('case/', '5'), paxEntry([['path', 'case/long-name']]), rawEntry('case/short', '0', 'one'), rawEntry('case/other', '0', 'two')));
    expect(await readFile(path.join(dir, 'long-name'), 'utf8')).toBe('one');
    expect(await readFile(path.join(dir, 'other'), 'utf8')).toBe('two');
  });

  test('a pax size overrides the header size', async () => {
    const content = 'x'.repeat(700);
    const header = rawEntry('case/big', '0', content).subarray(0, 512);
    header.write('00000000000\0', 124);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const body = rawEntry('case/big', '0', content).subarray(512);
    const dir = await extracted(archive(rawEntry('case/', '5'), paxEntry([['size', '700']]), header, body));
    expect(await readFile(path.join(dir, 'big'), 'utf8')).toBe(content);
  });

  test.each<[string, string]>([
    ['not a number', 'abc'],
    ['negative', '-1'],
    ['fractional', '1.5'],
  ])('refuses a pax size that is %s', async (_what, size) => {
    await expect(extracted(archive(paxEntry([['size', size]]), rawEntry('case/a', '0', '')))).rejects.toThrow('entry "case/a": bad size');
  });

  test('refuses a NUL in a pax path (a ustar name cannot hold one)', async () => {
    await expect(extracted(archive(paxEntry([['path', 'case/a\0b']]), rawEntry('case/a', '0', 'x')))).rejects.toThrow(`entry "case/a\\u0000b": '..', '.', empty or backslash segment refused`);
  });

  test('takes a pax header of up to 64 KiB and refuses a bigger one', async () => {
    const pad = (total: number) => 'c'.repeat(total - ' comment=\n'.length - String(total).length);
    const at = (total: number) => archive(paxEntry([['comment', pad(total)]]), rawEntry('case/a', '0', 'x'));
    await expect(extracted(at(64 * 1024))).resolves.toMatch(/case$/);
    await expect(extracted(at(64 * 1024 + 1))).rejects.toThrow(`malformed archive: pax header 1 is ${64 * 1024 + 1} bytes`);
  });

  test('a regular file with the old NUL type flag is a file', async () => {
    const dir = await extracted(archive(rawEntry('case/a', '\0', 'old tar')));
    expect(await readFile(path.join(dir, 'a'), 'utf8')).toBe('old tar');
  });

  test.each<[string, string]>([
    ['3', 'a character device'],
    ['6', 'a FIFO'],
    ['g', "type 'g'"],
  ])('names the refused type %s', async (flag, says) => {
    await expect(extracted(archive(rawEntry('case/', '5'), rawEntry('case/z', flag)))).rejects.toThrow(`entry "case/z": ${says} refused: a case holds only files and directories`);
  });

  test('a directory entry after a file inside it, and one named twice with and without its slash', async () => {
    const dir = await extracted(archive(rawEntry('case/a/x', '0', 'x'), rawEntry('case/a/', '5')));
    expect(await readFile(path.join(dir, 'a/x'), 'utf8')).toBe('x');
    await expect(extracted(archive(rawEntry('case/', '5'), rawEntry('case', '5')))).rejects.toThrow('entry "case": appears twice');
  });

  test('a file whose size is a multiple of the block size is followed directly by the next header', async () => {
    const dir = await extracted(archive(rawEntry('case/a', '0', 'a'.repeat(1024)), rawEntry('case/b', '0', 'b')));
    expect((await readFile(path.join(dir, 'a'), 'utf8')).length).toBe(1024);
    expect(await readFile(path.join(dir, 'b'), 'utf8')).toBe('b');
  });

  test('refuses a tar cut short inside a header, inside a pax header and inside padding', async () => {
    const a = rawEntry('case/a', '0', 'x');
    await expect(extracted(gzipSync(a.subarray(0, 1024 - 100)))).rejects.toThrow('truncated archive: it ends inside case/a');
    await expect(extracted(gzipSync(a))).rejects.toThrow('truncated archive: it ends inside header 2 (before the end-of-archive blocks)');
    const pax = paxEntry([['path', 'case/b']]);
    await expect(extracted(gzipSync(pax.subarray(0, 520)))).rejects.toThrow('truncated archive: it ends inside pax header 1');
    await expect(extracted(gzipSync(pax.subarray(0, 1000)))).rejects.toThrow('truncated archive: it ends inside pax header 1');
  });

  test('refuses a header that is not ustar, or whose size is not octal', async () => {
    const fix = (h: Buffer) => {
      h.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
      return h;
    };
    const notUstar = rawEntry('case/a', '0', '');
    notUstar.write('gnutar', 257);
    await expect(extracted(archive(fix(notUstar)))).rejects.toThrow('malformed archive: header 1: not a ustar header');
    const badSize = rawEntry('case/a', '0', '');
    badSize.write('0000000009\0', 124);
    await expect(extracted(archive(fix(badSize)))).rejects.toThrow('malformed archive: header 1: size field "0000000009" is not octal');
  });

  test('its own refusals are BundleErrors as they are; other failures are wrapped with their cause', async () => {
    const own = extracted(archive(rawEntry('/etc/x', '0', 'x')));
    await expect(own).rejects.toThrow(/^entry "\/etc\/x": absolute path refused$/);
    await expect(own).rejects.toMatchObject({ name: 'BundleError' });
    const missing = extractBundle(path.join(tmp, 'no-such.tar.gz'), await into());
    await expect(missing).rejects.toMatchObject({ name: 'BundleError', cause: { code: 'ENOENT' } });
  });

  test('stops at the first end-of-archive block: a single one ends the archive, and what follows is not read', async () => {
    const dir = await extracted(gzipSync(Buffer.concat([rawEntry('case/a', '0', 'x'), Buffer.alloc(512)])));
    expect(await readFile(path.join(dir, 'a'), 'utf8')).toBe('x');
    // 8 MiB after the end blocks: were it read, nobody would consume it and the pipeline would stall.
    const trailing = await bundleFile(gzipSync(Buffer.concat([rawEntry('case/a', '0', 'x'), Buffer.alloc(1024), randomBytes(8 * 1024 * 1024)])));
    const open = async () => (await readdir('/proc/self/fd')).length;
    const before = await open();
    await expect(extractBundle(trailing, await into())).resolves.toMatch(/case$/);
    // The bundle file is closed by the time the call returns, not left to a stalled stream.
    expect(await open()).toBe(before);
  });

  test('closes every file it writes (a bundle of many files leaves no descriptor open)', async () => {
    const files = Array.from({ length: 40 }, (_, i) => rawEntry(`case/f${i}`, '0', `${i}`));
    const bytes = archive(rawEntry('case/', '5'), ...files);
    const open = async () => (await readdir('/proc/self/fd')).length;
    const before = await open();
    await extracted(bytes);
    expect(await open()).toBeLessThan(before + 10);
  });

  test('reads a large file that arrives in many chunks, byte for byte', async () => {
    const content = randomBytes(300 * 1024);
    const body = Buffer.concat([rawEntry('case/big', '0', '').subarray(0, 512)]);
    body.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
    body.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of body) sum += b;
    body.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const dir = await extracted(gzipSync(Buffer.concat([body, content, Buffer.alloc((512 - (content.length % 512)) % 512), rawEntry('case/after', '0', 'z'), Buffer.alloc(1024)])));
    expect((await readFile(path.join(dir, 'big'))).equals(content)).toBe(true);
    expect(await readFile(path.join(dir, 'after'), 'utf8')).toBe('z');
  });
});

// Answers to the fifth round's mutation testing of bundle.ts (docs/testing.md).
describe('writeBundle edges', () => {
  const listing = async (dir: string) => {
    const r = spawnSync('tar', ['-tzf', await bundleFile(await bundleBytes(dir))], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    return r.stdout.trim().split('\n');
  };

  test('entries are sorted by path, not in the order a walk of the tree meets them', async () => {
    // A walk yields case/a/b before case/a-b; sorted, '-' and '.' come before '/'.
    const dir = path.join(await mkdtemp(path.join(tmp, 'order-')), 'case');
    await mkdir(path.join(dir, 'a'), { recursive: true });
    await writeFile(path.join(dir, 'a', 'b'), 'b');
    await writeFile(path.join(dir, 'a-b'), 'ab');
    await writeFile(path.join(dir, 'a.txt'), 't');
    await writeFile(path.join(dir, 'B'), 'upper case first');
    expect(await listing(dir)).toEqual(['case/', 'case/B', 'case/a/', 'case/a-b', 'case/a.txt', 'case/a/b']);
  });

  test("only the top-level .partial/ is the store's scratch area; one deeper is bundled", async () => {
    const dir = path.join(await mkdtemp(path.join(tmp, 'partial-')), 'case');
    await mkdir(path.join(dir, '.partial'), { recursive: true });
    await mkdir(path.join(dir, 'logs', '.partial'), { recursive: true });
    await writeFile(path.join(dir, '.partial', 'x.0123456789ab.partial'), 'scratch');
    await writeFile(path.join(dir, 'logs', '.partial', 'y'), 'evidence');
    expect(await listing(dir)).toEqual(['case/', 'case/logs/', 'case/logs/.partial/', 'case/logs/.partial/y']);
  });

  test('stops reading a file that grew past the size its header promised: nothing past it is written', async () => {
    const dir = path.join(await mkdtemp(path.join(tmp, 'growing-')), 'case');
    await mkdir(dir);
    await writeFile(path.join(dir, 'a.bin'), randomBytes(8 * 1024 * 1024));
    await writeFile(path.join(dir, 'z.txt'), 'the size the header will promise\n');
    let grown = false;
    let received = 0;
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        received += chunk.length;
        if (grown) return done();
        grown = true;
        // 8 MiB more that gzip cannot compress: were it read, it would reach `out` before the error.
        void appendFile(path.join(dir, 'z.txt'), randomBytes(8 * 1024 * 1024)).then(() => done());
      },
    });
    await expect(writeBundle(dir, out)).rejects.toThrow(`cannot bundle ${dir}: case/z.txt changed size while it was read`);
    expect(out.destroyed).toBe(true);
    expect(received).toBeLessThan(12 * 1024 * 1024);
  });
});
