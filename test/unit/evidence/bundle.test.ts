// Case bundles: byte-identical for the same case, readable by GNU tar, and an extractor that refuses
// every hostile shape of archive with a clear error.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
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
