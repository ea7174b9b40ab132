// The CaseFile writer's edges (src/evidence/store.ts): typed store errors, crash recovery in its
// odd cases, what a seal and a close wait for, and which custody records make the artifact index.
// Answers to the fifth round of mutation testing (docs/testing.md).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { CustodyLog, verifyCustodyChain, type CustodyRecord } from '../../../src/evidence/custody.js';
import { ArtifactPathError, CaseFile, EvidenceStoreFullError, EvidenceWriteError, evidenceErrorReason } from '../../../src/evidence/store.js';
import { verifyCaseDir } from '../../../src/evidence/verify-case.js';

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const UID = '6f1c2d3e-1111-2222-3333-444455556666';
const openFds = async () => (await readdir('/proc/self/fd')).length;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-store-edges-'));
});
afterEach(async () => {
  jest.useRealTimers();
  await rm(root, { recursive: true, force: true });
});

const caseDir = () => path.join(root, 'production', 'web-shell-0001-6f1c2d3e');
const openCase = () => CaseFile.open({ root, namespace: 'production', name: 'web-shell-0001', uid: UID, actor: 'casefile-test' });

async function custody(dir: string): Promise<CustodyRecord[]> {
  const v = verifyCustodyChain(await readFile(path.join(dir, 'custody.jsonl'), 'utf8'));
  if (!v.ok) throw new Error(`chain broken at ${v.line}: ${v.reason}`);
  return v.records;
}

/** A source that yields `first`, then waits until `release()` before yielding `rest`. */
function gated(first: string, rest: string) {
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  async function* source() {
    yield Buffer.from(first);
    await open;
    yield Buffer.from(rest);
  }
  return { source, release };
}

/** Freezes Date only (fs and timers stay real), so file stamps are known in advance. */
function freezeDate(iso: string): void {
  jest.useFakeTimers({
    now: new Date(iso),
    doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'],
  });
}

describe('store errors', () => {
  it('a failure of the volume under an artifact is an EvidenceWriteError naming it, with the errno and the cause', async () => {
    await mkdir(caseDir(), { recursive: true });
    await writeFile(path.join(caseDir(), 'logs'), 'a file where a directory should be');
    const cf = await openCase();
    const err = await cf.writeText('logs/app.log', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceWriteError);
    // Refused at the first look at the artifact's name, before any temp file or custody record.
    expect(err).toMatchObject({ name: 'EvidenceWriteError', artifact: 'logs/app.log', code: 'ENOTDIR', cause: { code: 'ENOTDIR', syscall: 'lstat' } });
    expect((err as Error).message).toMatch(/^cannot write logs\/app\.log: (Error: )?ENOTDIR: not a directory/);
    expect(evidenceErrorReason(err)).toBe('EvidenceWriteFailed');
    expect((await custody(cf.dir)).map((r) => r.action)).toEqual(['artifact-recovered']);
    await cf.close();
  });

  it('a failure of the custody log names the log', async () => {
    const cf = await openCase();
    await cf.close();
    const err = await cf.record('phase-started').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceWriteError);
    expect(err).toMatchObject({ name: 'EvidenceWriteError', artifact: undefined, code: 'EBADF' });
    expect((err as Error).message).toMatch(/^cannot write the custody log: /);
  });

  it('the error classes carry their names, and the class decides the condition reason', () => {
    expect(new EvidenceStoreFullError('m', 'a', 'ENOSPC').name).toBe('EvidenceStoreFullError');
    expect(new EvidenceWriteError('m', 'a', 'EIO').name).toBe('EvidenceWriteError');
    expect(evidenceErrorReason(new EvidenceStoreFullError('m', undefined, 'EIO'))).toBe('EvidenceStoreFull');
    expect(evidenceErrorReason(new EvidenceWriteError('m', undefined, 'ENOSPC'))).toBe('EvidenceWriteFailed');
  });

  it("the signed action is the store's too", async () => {
    const cf = await openCase();
    await expect(cf.record('signed')).rejects.toThrow('custody action "signed" is reserved for the store');
    await cf.close();
  });

  it("the signature's name is reserved for the store", async () => {
    const cf = await openCase();
    await expect(cf.writeText('MANIFEST.sha256.sig', 'x')).rejects.toThrow('invalid artifact path "MANIFEST.sha256.sig": MANIFEST.sha256.sig is reserved for the store');
    await cf.close();
  });

  it('a directory at the artifact name is refused, not recorded', async () => {
    await mkdir(path.join(caseDir(), 'logs', 'app.log'), { recursive: true });
    const cf = await openCase();
    await expect(cf.writeText('logs/app.log', 'x')).rejects.toThrow(new ArtifactPathError('logs/app.log exists in the case and is not a regular file', 'logs/app.log'));
    expect(cf.has('logs/app.log')).toBe(false);
    await cf.close();
  });
});

describe('crash recovery edges', () => {
  it('a case whose recovery fails does not open, and releases its custody log', async () => {
    await mkdir(caseDir(), { recursive: true });
    await writeFile(path.join(caseDir(), '.partial'), 'not a directory');
    const before = await openFds();
    await expect(openCase()).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(await openFds()).toBe(before);
  });

  it('an unfinished signature is dropped, not kept as interrupted evidence', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'a');
    await cf.seal();
    await cf.close();
    const temp = path.join(cf.dir, '.partial', 'MANIFEST.sha256.sig.0123456789ab.partial');
    await writeFile(temp, '{"half":');
    const n = (await custody(cf.dir)).length;
    const again = await openCase();
    expect(await readdir(path.join(cf.dir, '.partial'))).toEqual([]);
    expect(again.artifacts().map((a) => a.artifact)).toEqual(['a.txt']);
    expect(await custody(cf.dir)).toHaveLength(n);
    await again.close();
  });

  it('the manifest, the signature and the custody log on disk are not recorded as found artifacts', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'a');
    await cf.seal();
    await cf.recordSignature('c'.repeat(64), 3, { keyFingerprint: 'sha256:x' });
    await writeFile(path.join(cf.dir, 'MANIFEST.sha256.sig'), 'sig');
    await cf.close();
    const n = (await custody(cf.dir)).length;
    const again = await openCase();
    expect(await custody(cf.dir)).toHaveLength(n);
    // Neither the 'sealed' nor the 'signed' record makes an artifact.
    expect(again.artifacts().map((a) => a.artifact)).toEqual(['a.txt']);
    expect(again.has('MANIFEST.sha256')).toBe(false);
    expect(again.has('MANIFEST.sha256.sig')).toBe(false);
    await again.close();
  });

  it('only regular files are recorded as found: a symlink in the case is not', async () => {
    await mkdir(path.join(caseDir(), 'logs'), { recursive: true });
    await symlink('/etc/hostname', path.join(caseDir(), 'logs', 'link.log'));
    await writeFile(path.join(caseDir(), 'logs', 'real.log'), 'real');
    const cf = await openCase();
    expect(cf.artifacts().map((a) => a.artifact)).toEqual(['logs/real.log']);
    await cf.close();
  });

  it('an interrupted name already taken gets -1, -2: nothing is overwritten', async () => {
    freezeDate('2026-12-03T07:08:09.012Z');
    const cf = await openCase();
    await cf.close();
    const stamp = '20261203T070809012Z';
    await mkdir(path.join(cf.dir, 'interrupted', 'logs'), { recursive: true });
    await writeFile(path.join(cf.dir, 'interrupted', 'logs', `app.log.${stamp}`), 'earlier');
    await writeFile(path.join(cf.dir, 'interrupted', 'logs', `app.log.${stamp}-1`), 'earlier too');
    await mkdir(path.join(cf.dir, '.partial', 'logs'), { recursive: true });
    await writeFile(path.join(cf.dir, '.partial', 'logs', 'app.log.0123456789ab.partial'), 'half a log');
    const again = await openCase();
    const rel = `interrupted/logs/app.log.${stamp}-2`;
    expect(await readFile(path.join(cf.dir, rel), 'utf8')).toBe('half a log');
    expect(await readFile(path.join(cf.dir, 'interrupted', 'logs', `app.log.${stamp}`), 'utf8')).toBe('earlier');
    expect(await readFile(path.join(cf.dir, 'interrupted', 'logs', `app.log.${stamp}-1`), 'utf8')).toBe('earlier too');
    const records = await custody(cf.dir);
    expect(records.find((r) => r.action === 'artifact-interrupted')).toMatchObject({ artifact: rel, sha256: sha('half a log'), bytes: 10, detail: { original: 'logs/app.log' } });
    expect(records.filter((r) => r.action === 'artifact-recovered').map((r) => r.artifact)).toEqual([`interrupted/logs/app.log.${stamp}`, `interrupted/logs/app.log.${stamp}-1`]);
    await again.close();
  });

  it('the first custody record of an artifact wins, and a record without a hash or size makes no artifact', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'a');
    await cf.close();
    const log = await CustodyLog.open(path.join(cf.dir, 'custody.jsonl'), 'by-hand');
    await log.append({ action: 'artifact', artifact: 'a.txt', sha256: sha('other'), bytes: 5 });
    await log.append({ action: 'artifact', artifact: 'b.txt', bytes: 1 });
    await log.append({ action: 'artifact', artifact: 'c.txt', sha256: sha('c') });
    await log.append({ action: 'note', artifact: 'd.txt', sha256: sha('d'), bytes: 1 });
    await log.append({ action: 'artifact', sha256: sha('e'), bytes: 1 });
    await log.close();
    const again = await openCase();
    expect(again.artifacts()).toEqual([{ artifact: 'a.txt', sha256: sha('a'), bytes: 1 }]);
    await again.close();
  });
});

describe('failed captures', () => {
  it('closes the temp file of a source that fails midway', async () => {
    const cf = await openCase();
    const before = await openFds();
    for (let i = 0; i < 10; i++) {
      async function* failing() {
        yield Buffer.from('part');
        throw new Error('reset');
      }
      await expect(cf.captureOnce(`logs/f${i}.log`, failing)).rejects.toThrow('reset');
    }
    expect(await openFds()).toBeLessThan(before + 5);
    await cf.close();
  });

  it('stops pulling from a source once the limit is reached', async () => {
    const cf = await openCase();
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled += 1;
        yield 'abc';
      }
    }
    expect(await cf.captureOnce('logs/endless.log', endless, { limitBytes: 5 })).toEqual({ artifact: 'logs/endless.log', sha256: sha('abcab'), bytes: 5, truncated: true });
    expect(pulled).toBe(2);
    await cf.close();
  });

  it('a producer that fails before any byte records exactly the original, the error and its code', async () => {
    const cf = await openCase();
    await expect(cf.captureOnce('logs/a.log', () => Promise.reject(Object.assign(new Error('gone'), { code: 'ENOTFOUND' })))).rejects.toThrow('gone');
    expect((await custody(cf.dir)).at(-1)!.detail).toEqual({ original: 'logs/a.log', error: 'ENOTFOUND: gone', code: 'ENOTFOUND' });
    await cf.close();
  });

  it('partial bytes that cannot be moved to interrupted/ stay in .partial/, named in the failure record', async () => {
    await mkdir(caseDir(), { recursive: true });
    await writeFile(path.join(caseDir(), 'interrupted'), 'a file where a directory should be');
    const cf = await openCase();
    async function* failing() {
      yield Buffer.from('line 1\n');
      throw new Error('reset');
    }
    await expect(cf.captureOnce('logs/app.log', failing)).rejects.toThrow('reset');
    const last = (await custody(cf.dir)).at(-1)!;
    expect(last).toMatchObject({ action: 'artifact-failed', detail: { original: 'logs/app.log', error: 'reset' } });
    expect(last.artifact).toBeUndefined();
    const partial = last.detail!.partial as string;
    expect(partial).toMatch(/^\.partial\/logs\/app\.log\.[0-9a-f]{12}\.partial$/);
    expect(await readFile(path.join(cf.dir, partial), 'utf8')).toBe('line 1\n');
    await cf.close();
  });
});

describe('seal and close edges', () => {
  it('seal waits for a capture in flight and lists it', async () => {
    const cf = await openCase();
    const g = gated('first ', 'second');
    const capture = cf.captureOnce('logs/slow.log', g.source);
    const sealing = cf.seal();
    const early = await Promise.race([sealing.then(() => 'sealed'), new Promise((r) => setTimeout(() => r('waiting'), 300))]);
    expect(early).toBe('waiting');
    g.release();
    const result = await sealing;
    expect(await capture).toMatchObject({ sha256: sha('first second') });
    expect(result).toMatchObject({ artifacts: 1, bytes: 12 });
    expect(await verifyCaseDir(cf.dir)).toEqual({ ok: true, problems: [], artifacts: 1 });
    await cf.close();
  });

  it('close waits for a capture in flight, which is then recorded', async () => {
    const cf = await openCase();
    const g = gated('a', 'b');
    const capture = cf.captureOnce('logs/slow.log', g.source);
    const closing = cf.close();
    g.release();
    await closing;
    await expect(capture).resolves.toMatchObject({ artifact: 'logs/slow.log', bytes: 2 });
    expect((await custody(cf.dir)).at(-1)).toMatchObject({ action: 'artifact', artifact: 'logs/slow.log' });
  });

  it('refuses to seal an artifact changed to other bytes of the same size, with both hashes', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'abc');
    await writeFile(path.join(cf.dir, 'a.txt'), 'xyz');
    await expect(cf.seal()).rejects.toThrow(`cannot seal ${cf.relativeDir}: a.txt has sha256 ${sha('xyz')} (3 bytes) but custody recorded ${sha('abc')} (3 bytes)`);
    await cf.close();
  });

  it('a missing artifact: the seal names it, with the cause', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'abc');
    await rm(path.join(cf.dir, 'a.txt'));
    const err = await cf.seal().catch((e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`^cannot seal ${cf.relativeDir}: a\\.txt is missing or unreadable: (Error: )?ENOENT`));
    expect(err).toMatchObject({ cause: { code: 'ENOENT' } });
    await cf.close();
  });

  it('a manifest that cannot be read is an error of its own, not taken as absent', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'abc');
    await mkdir(path.join(cf.dir, 'MANIFEST.sha256'));
    await expect(cf.seal()).rejects.toMatchObject({ name: 'EvidenceWriteError', artifact: 'MANIFEST.sha256', code: 'EISDIR' });
    await cf.close();
  });

  it('recordSignature records the signature once, as the store names it', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'a');
    await cf.seal();
    const first = await cf.recordSignature('c'.repeat(64), 7, { keyFingerprint: 'sha256:k' });
    expect(first).toMatchObject({ action: 'signed', phase: 'EvidenceSealed', artifact: 'MANIFEST.sha256.sig', sha256: 'c'.repeat(64), bytes: 7, detail: { keyFingerprint: 'sha256:k' } });
    expect(await cf.recordSignature('d'.repeat(64), 8, {})).toEqual(first);
    expect((await custody(cf.dir)).filter((r) => r.action === 'signed')).toHaveLength(1);
    await cf.close();
  });
});
