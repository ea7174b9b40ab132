// One test per way to tamper with a sealed case directory. Each pins one check of verifyCaseDir by
// expecting the exact problem list: with any single check removed, its test fails.
import { createHash } from 'node:crypto';
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { CaseFile, CustodyLog, verifyCaseDir } from '../../../src/evidence/index.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const MANIFEST = 'MANIFEST.sha256';
const CUSTODY = 'custody.jsonl';
const SEALED_MISMATCH = `${MANIFEST} does not match the SHA-256 in the custody 'sealed' record`;

let tmp: string;
let sealedCase: string;
let copy: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'casefile-case-tamper-'));
  const cf = await CaseFile.open({ root: path.join(tmp, 'root'), namespace: 'prod', name: 'inv', uid: '0123456789abcdef', actor: 'test' });
  await cf.writeText('logs/app.log', 'GET / 200\n');
  await cf.writeText('logs/previous.log', 'boot\n');
  await cf.writeJSON('manifest/pod.json', { kind: 'Pod' });
  await cf.record('negative-finding', { summary: 'no previous container' });
  await cf.seal();
  await cf.close();
  sealedCase = cf.dir;
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(async () => {
  copy = await mkdtemp(path.join(tmp, 'copy-'));
  await cp(sealedCase, copy, { recursive: true });
});

const read = (rel: string) => readFile(path.join(copy, rel), 'utf8');
const write = (rel: string, text: string) => writeFile(path.join(copy, rel), text);
const problems = async () => {
  const result = await verifyCaseDir(copy);
  expect(result.ok).toBe(result.problems.length === 0);
  return result.problems;
};

/** Rewrites the hash in the last custody line, the 'sealed' record: nothing after it links to it. */
async function forgeSealedHash(manifest: string): Promise<void> {
  const lines = (await read(CUSTODY)).split('\n');
  const last = JSON.parse(lines.at(-2)!);
  expect(last.action).toBe('sealed');
  lines[lines.length - 2] = lines.at(-2)!.replace(last.sha256, sha(manifest));
  await write(CUSTODY, lines.join('\n'));
}

async function editArtifactAndManifestLine(): Promise<string> {
  const forged = 'GET /admin 200\n';
  await write('logs/app.log', forged);
  const manifest = (await read(MANIFEST)).replace(/^[0-9a-f]{64}(?= {2}logs\/app\.log$)/m, sha(forged));
  await write(MANIFEST, manifest);
  return manifest;
}

describe('verifyCaseDir catches', () => {
  test('nothing on an untouched copy (the baseline every tamper test below departs from)', async () => {
    expect(await verifyCaseDir(copy)).toEqual({ ok: true, problems: [], artifacts: 3 });
  });

  test('an artifact edited alone', async () => {
    await write('logs/app.log', 'GET /admin 200\n');
    expect(await problems()).toEqual([`logs/app.log: SHA-256 ${sha('GET /admin 200\n')} does not match the manifest (${sha('GET / 200\n')})`]);
  });

  test('an artifact edited together with its manifest line', async () => {
    await editArtifactAndManifestLine();
    expect(await problems()).toEqual([SEALED_MISMATCH, 'logs/app.log: manifest entry does not match the custody log']);
  });

  test('an artifact, its manifest line and the sealed hash all edited (only the custody artifact record is left)', async () => {
    await forgeSealedHash(await editArtifactAndManifestLine());
    expect(await problems()).toEqual(['logs/app.log: manifest entry does not match the custody log']);
  });

  test('the manifest replaced after sealing, with the same entries in another order', async () => {
    const lines = (await read(MANIFEST)).split('\n').slice(0, -1);
    await write(MANIFEST, `${lines.reverse().join('\n')}\n`);
    expect(await problems()).toEqual([SEALED_MISMATCH]);
  });

  test('a manifest line removed, with the sealed hash forged to match', async () => {
    const manifest = (await read(MANIFEST)).replace(/^.* {2}logs\/previous\.log\n/m, '');
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    expect(await problems()).toEqual([`logs/previous.log: recorded in ${CUSTODY} but not in ${MANIFEST} (written after sealing?)`]);
  });

  test('a manifest line added for a file the custody log never recorded', async () => {
    await write('logs/planted.log', 'planted\n');
    const manifest = `${await read(MANIFEST)}${sha('planted\n')}  logs/planted.log\n`;
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    expect(await problems()).toEqual(['logs/planted.log: manifest entry does not match the custody log']);
  });

  test('a manifest line that points outside the case directory', async () => {
    const manifest = `${await read(MANIFEST)}${sha('x')}  ../outside\n`;
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    expect(await problems()).toEqual(['../outside: escapes the case directory']);
  });

  test('a malformed manifest line', async () => {
    const manifest = `${await read(MANIFEST)}not a manifest line\n`;
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    expect(await problems()).toEqual([`${MANIFEST} line 4 is malformed`]);
  });

  test('an artifact deleted', async () => {
    await unlink(path.join(copy, 'logs/previous.log'));
    expect(await problems()).toEqual(['logs/previous.log: missing']);
  });

  test('a custody line removed (the chain is checked before anything is trusted from it)', async () => {
    const lines = (await read(CUSTODY)).split('\n');
    lines.splice(1, 1);
    await write(CUSTODY, lines.join('\n'));
    const found = await problems();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^custody\.jsonl line 2: seq is 3, expected 2$/);
  });

  test('the sealed record cut from the custody log', async () => {
    const lines = (await read(CUSTODY)).split('\n');
    lines.splice(-2, 1);
    await write(CUSTODY, lines.join('\n'));
    expect(await problems()).toEqual([`${CUSTODY} has no 'sealed' record`]);
  });

  test('the custody log deleted', async () => {
    await unlink(path.join(copy, CUSTODY));
    expect(await problems()).toEqual([`${CUSTODY} is missing`]);
  });

  test('the manifest deleted', async () => {
    await unlink(path.join(copy, MANIFEST));
    expect(await verifyCaseDir(copy)).toEqual({ ok: false, problems: [`${MANIFEST} is missing: the case is not sealed`], artifacts: 0 });
  });

  test('a manifest line with anything before the hash', async () => {
    const manifest = (await read(MANIFEST)).replace(/^(?=[0-9a-f]{64} {2}logs\/app\.log$)/m, 'x');
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    expect(await problems()).toEqual([`${MANIFEST} line 1 is malformed`, `logs/app.log: recorded in ${CUSTODY} but not in ${MANIFEST} (written after sealing?)`]);
  });

  test('a manifest line naming a directory, not a file', async () => {
    const manifest = `${await read(MANIFEST)}${sha('x')}  logs\n`;
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    const found = await problems();
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(/^logs: .*EISDIR/);
    expect(found[1]).toBe('logs: manifest entry does not match the custody log');
  });

  test('a file planted beside the artifacts, listed nowhere', async () => {
    await write('logs/planted.log', 'planted\n');
    expect(await problems()).toEqual([`logs/planted.log: not in ${MANIFEST} nor recorded in ${CUSTODY} (added after sealing?)`]);
  });

  test('a symlink planted in the case', async () => {
    await symlink('/etc/passwd', path.join(copy, 'logs/passwd'));
    expect(await problems()).toEqual(['logs/passwd: not a regular file or directory (a case holds only those)']);
  });

  test('a custody log that cannot be read is an error, not "missing"', async () => {
    await unlink(path.join(copy, CUSTODY));
    await mkdir(path.join(copy, CUSTODY));
    await expect(verifyCaseDir(copy)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});

describe('verifyCaseDir accepts', () => {
  test('the side file of a torn custody tail, named by its custody record', async () => {
    await appendFile(path.join(copy, CUSTODY), '{"seq":');
    await (await CustodyLog.open(path.join(copy, CUSTODY), 'test')).close();
    expect(await verifyCaseDir(copy)).toEqual({ ok: true, problems: [], artifacts: 3 });
  });

  test('a manifest whose last line has no newline (every entry is still checked)', async () => {
    const manifest = (await read(MANIFEST)).replace(/\n$/, '');
    await write(MANIFEST, manifest);
    await forgeSealedHash(manifest);
    expect(await verifyCaseDir(copy)).toEqual({ ok: true, problems: [], artifacts: 3 });
  });
});

// Answers to the fourth round's mutation testing of verify-case.ts (docs/testing.md): records appended
// to the custody log after the seal, as someone holding a copy of the case could (the chain stays
// valid; only the content of the records differs).
describe('verifyCaseDir reads custody records by their action', () => {
  const append = async (...entries: Parameters<CustodyLog['append']>[0][]) => {
    const log = await CustodyLog.open(path.join(copy, CUSTODY), 'intruder');
    for (const e of entries) await log.append(e);
    await log.close();
  };

  test('a file named as a torn-tail side file by a record that is not a torn-tail record is still reported', async () => {
    await write('logs/planted.log', 'planted\n');
    await append({ action: 'negative-finding', detail: { savedAs: 'logs/planted.log' } });
    expect(await problems()).toEqual([`logs/planted.log: not in ${MANIFEST} nor recorded in ${CUSTODY} (added after sealing?)`]);
  });

  test('a torn-tail record without a detail, or with a savedAs that is no string, accounts for no file', async () => {
    await write('logs/planted.log', 'planted\n');
    await append({ action: 'custody-torn-tail-preserved' }, { action: 'custody-torn-tail-preserved', detail: { savedAs: ['logs/planted.log'] } });
    expect(await problems()).toEqual([`logs/planted.log: not in ${MANIFEST} nor recorded in ${CUSTODY} (added after sealing?)`]);
  });

  test('an artifact record without a name, or without a hash, describes no file', async () => {
    await append({ action: 'artifact-failed', sha256: sha('x'), detail: { error: 'no name' } }, { action: 'artifact-failed', artifact: 'logs/never.log', detail: { error: 'no hash' } });
    expect(await verifyCaseDir(copy)).toEqual({ ok: true, problems: [], artifacts: 3 });
  });

  test('an artifact record appended for an edited artifact does not replace the first record of that path', async () => {
    const forged = 'GET /admin 200\n';
    await forgeSealedHash(await editArtifactAndManifestLine());
    await append({ action: 'artifact', artifact: 'logs/app.log', sha256: sha(forged), bytes: forged.length });
    expect(await problems()).toEqual(['logs/app.log: manifest entry does not match the custody log']);
  });

  test("a second 'sealed' record appended for a replaced manifest does not replace the first", async () => {
    const manifest = `${(await read(MANIFEST)).split('\n').slice(0, -1).reverse().join('\n')}\n`;
    await write(MANIFEST, manifest);
    await append({ action: 'sealed', artifact: MANIFEST, sha256: sha(manifest) });
    expect(await problems()).toEqual([SEALED_MISMATCH]);
  });
});
