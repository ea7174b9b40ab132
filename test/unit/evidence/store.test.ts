import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { appendFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { verifyCustodyChain, type CustodyRecord } from '../../../src/evidence/custody.js';
import { mirrorPath } from '../../../src/evidence/paths.js';
import {
  ArtifactPathError,
  CaseFile,
  EvidenceStoreFullError,
  EvidenceWriteError,
  evidenceErrorReason,
} from '../../../src/evidence/store.js';
import { verifyCaseDir } from '../../../src/evidence/verify-case.js';

/** A producer that counts its calls. */
function counting(text: string): (() => string) & { calls: number } {
  const f = Object.assign(() => {
    f.calls += 1;
    return text;
  }, { calls: 0 });
  return f;
}

/**
 * Whether a real failure can be produced here (chattr, a tmpfs mount). When it cannot, the test is
 * skipped with the reason in its name, so the run shows it was not exercised.
 */
function realFailureProbe(tool: string, works: (dir: string) => boolean): { ok: true } | { ok: false; reason: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'casefile-probe-'));
  try {
    return works(dir) ? { ok: true } : { ok: false, reason: `${tool} does not work here (needs root on ext4/xfs or CAP_SYS_ADMIN)` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
function itIf(probe: { ok: true } | { ok: false; reason: string }) {
  return probe.ok ? it : (name: string, fn: () => Promise<void>, timeout?: number) => it.skip(`${name} [SKIPPED: ${probe.reason}]`, fn, timeout);
}

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const UID = '6f1c2d3e-1111-2222-3333-444455556666';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-store-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const openCase = (extra: Partial<Parameters<typeof CaseFile.open>[0]> = {}) =>
  CaseFile.open({ root, namespace: 'production', name: 'web-shell-0001', uid: UID, actor: 'casefile-test', ...extra });

async function custody(dir: string): Promise<CustodyRecord[]> {
  const v = verifyCustodyChain(await readFile(path.join(dir, 'custody.jsonl'), 'utf8'));
  if (!v.ok) throw new Error(`chain broken at ${v.line}: ${v.reason}`);
  return v.records;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

function chunk(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j += 4) b.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
  return b;
}

describe('CaseFile layout', () => {
  it('creates <root>/<ns>/<name>-<uid8> with a custody log', async () => {
    const cf = await openCase({ namespace: '../kube-system' });
    expect(cf.relativeDir).toBe('%2E.%2Fkube-system/web-shell-0001-6f1c2d3e');
    expect(cf.dir).toBe(path.join(root, cf.relativeDir));
    expect(existsSync(path.join(cf.dir, 'custody.jsonl'))).toBe(true);
    await cf.close();
  });
});

describe('captureOnce', () => {
  it('streams a 20 MB source, hashing as it goes and pulling one chunk at a time', async () => {
    const CHUNK = 64 * 1024;
    const COUNT = 320;
    let reported = 0;
    const cf = await openCase({ onBytesWritten: (n) => (reported += n) });
    let maxAhead = 0;
    async function* source() {
      for (let i = 0; i < COUNT; i++) {
        // Backpressure: chunk i is only requested after chunks 0..i-1 reached the temp file.
        const [temp] = await filesUnder(path.join(cf.dir, '.partial'));
        const onDisk = temp ? statSync(path.join(cf.dir, '.partial', temp)).size : 0;
        maxAhead = Math.max(maxAhead, i * CHUNK - onDisk);
        yield chunk(i, CHUNK);
      }
    }
    const expected = createHash('sha256');
    for (let i = 0; i < COUNT; i++) expected.update(chunk(i, CHUNK));

    const rec = await cf.captureOnce('logs/app.log', source, { phase: 'LogsCaptured' });
    expect(rec).toEqual({ artifact: 'logs/app.log', sha256: expected.digest('hex'), bytes: COUNT * CHUNK });
    expect(maxAhead).toBe(0);
    expect(reported).toBe(COUNT * CHUNK);
    const onDisk = createHash('sha256').update(await readFile(path.join(cf.dir, 'logs/app.log'))).digest('hex');
    expect(onDisk).toBe(rec.sha256);
    expect(await filesUnder(path.join(cf.dir, '.partial'))).toEqual([]);
    const last = (await custody(cf.dir)).at(-1);
    expect(last).toMatchObject({ action: 'artifact', phase: 'LogsCaptured', artifact: 'logs/app.log', sha256: rec.sha256, bytes: rec.bytes, detail: { truncated: false } });
    await cf.close();
  }, 60_000);

  it('accepts strings, Buffers and Readables; writeJSON writes 2-space JSON', async () => {
    const cf = await openCase();
    await cf.writeText('alert.json', 'héllo');
    await cf.captureOnce('k8s/raw.bin', () => Buffer.from([0, 1, 2]));
    await cf.captureOnce('k8s/stream.txt', async () => Readable.from(['a', Buffer.from('b'), 'c']));
    const j = await cf.writeJSON('scope/siblings.json', { pods: ['a'] }, { detail: { count: 1 } });
    expect(await readFile(path.join(cf.dir, 'alert.json'), 'utf8')).toBe('héllo');
    expect(await readFile(path.join(cf.dir, 'k8s/raw.bin'))).toEqual(Buffer.from([0, 1, 2]));
    expect(await readFile(path.join(cf.dir, 'k8s/stream.txt'), 'utf8')).toBe('abc');
    const text = '{\n  "pods": [\n    "a"\n  ]\n}\n';
    expect(await readFile(path.join(cf.dir, 'scope/siblings.json'), 'utf8')).toBe(text);
    expect(j.sha256).toBe(sha(text));
    expect((await custody(cf.dir)).at(-1)?.detail).toEqual({ count: 1, truncated: false });
    expect(cf.artifacts().map((a) => a.artifact)).toEqual(['alert.json', 'k8s/raw.bin', 'k8s/stream.txt', 'scope/siblings.json']);
    await cf.close();
  });

  it('stops at limitBytes, destroys the source and marks the artifact truncated', async () => {
    const cf = await openCase();
    const data = Buffer.concat([chunk(1, 1000), chunk(2, 1000), chunk(3, 1000)]);
    const over = Readable.from([data.subarray(0, 1000), data.subarray(1000, 2000), data.subarray(2000)]);
    const rec = await cf.captureOnce('logs/big.log', () => over, { limitBytes: 2500 });
    expect(rec).toEqual({ artifact: 'logs/big.log', sha256: sha(data.subarray(0, 2500)), bytes: 2500, truncated: true });
    expect(over.destroyed).toBe(true);
    expect(await readFile(path.join(cf.dir, 'logs/big.log'))).toEqual(data.subarray(0, 2500));

    // Exactly at the limit is also reported truncated (see store.ts).
    const exact = await cf.captureOnce('logs/exact.log', () => data.subarray(0, 2000), { limitBytes: 2000 });
    expect(exact).toMatchObject({ bytes: 2000, truncated: true });
    const under = await cf.captureOnce('logs/small.log', () => data.subarray(0, 1999), { limitBytes: 2000 });
    expect(under.truncated).toBeUndefined();
    expect(cf.get('logs/exact.log')?.truncated).toBe(true);
    await expect(cf.captureOnce('logs/neg.log', () => 'x', { limitBytes: -1 })).rejects.toThrow(RangeError);
    await cf.close();
  });

  it('returns the recorded artifact without calling produce again, also across restarts and concurrent calls', async () => {
    const cf = await openCase();
    const first = await cf.writeText('k8s/pod.yaml', 'kind: Pod\n');
    const produce = counting('different');
    expect(await cf.captureOnce('k8s/pod.yaml', produce)).toEqual({ ...first, reused: true });
    const [a, b] = await Promise.all([cf.captureOnce('k8s/events.json', produce), cf.captureOnce('k8s/events.json', produce)]);
    expect(produce.calls).toBe(1);
    expect([a.reused, b.reused]).toEqual([undefined, true]);
    await cf.close();

    const again = await openCase();
    expect(again.has('k8s/pod.yaml')).toBe(true);
    expect(await again.captureOnce('k8s/pod.yaml', produce)).toMatchObject({ sha256: first.sha256, reused: true });
    expect(produce.calls).toBe(1);
    expect(await readFile(path.join(again.dir, 'k8s/pod.yaml'), 'utf8')).toBe('kind: Pod\n');
    expect((await custody(again.dir)).filter((r) => r.artifact === 'k8s/pod.yaml')).toHaveLength(1);
    await again.close();
  });

  it.each(['../escape', '/etc/passwd', 'logs//a', 'logs/..', 'logs/.hidden', '.partial/x', 'custody.jsonl', 'MANIFEST.sha256', 'interrupted/x', 'logs/a b', 'logs/', ''])(
    'rejects artifact path %j without writing',
    async (bad) => {
      const cf = await openCase();
      const produce = counting('x');
      await expect(cf.captureOnce(bad, produce)).rejects.toThrow(ArtifactPathError);
      expect(produce.calls).toBe(0);
      expect((await filesUnder(cf.dir)).sort()).toEqual(['custody.jsonl']);
      await cf.close();
    },
  );

  it('stores copies of container files under their sanitised original path', async () => {
    const cf = await openCase();
    const rel = `live/files/${mirrorPath('/tmp/../../etc/.x y')}`;
    await cf.writeText(rel, 'payload');
    expect(await readFile(path.join(cf.dir, 'live/files/tmp/%2E./%2E./etc/%2Ex%20y'), 'utf8')).toBe('payload');
    await cf.close();
  });

  it('never overwrites a file that exists without a record: it is recorded as found', async () => {
    const caseDir = path.join(root, 'production', 'web-shell-0001-6f1c2d3e');
    await mkdir(path.join(caseDir, 'logs'), { recursive: true });
    await writeFile(path.join(caseDir, 'logs/app.log'), 'original bytes');
    const cf = await openCase();
    expect(cf.get('logs/app.log')).toEqual({ artifact: 'logs/app.log', sha256: sha('original bytes'), bytes: 14 });
    expect((await custody(cf.dir)).at(-1)).toMatchObject({ action: 'artifact-recovered', artifact: 'logs/app.log' });

    // Also for a file that appears after open.
    await writeFile(path.join(caseDir, 'logs/late.log'), 'late');
    const produce = counting('new bytes');
    expect(await cf.captureOnce('logs/app.log', produce)).toMatchObject({ sha256: sha('original bytes'), reused: true });
    expect(await cf.captureOnce('logs/late.log', produce)).toMatchObject({ sha256: sha('late'), reused: true });
    expect(produce.calls).toBe(0);
    expect(await readFile(path.join(caseDir, 'logs/app.log'), 'utf8')).toBe('original bytes');
    expect(await readFile(path.join(caseDir, 'logs/late.log'), 'utf8')).toBe('late');

    // Not even through a symlink planted at the artifact's name.
    await symlink('/etc/hostname', path.join(caseDir, 'logs/link.log'));
    await expect(cf.captureOnce('logs/link.log', produce)).rejects.toThrow(ArtifactPathError);
    expect(produce.calls).toBe(0);
    await cf.close();
  });
});

describe('crash recovery', () => {
  it('moves a leftover temp file to interrupted/ and records it', async () => {
    const cf = await openCase();
    await cf.writeText('k8s/pod.yaml', 'pod');
    await cf.close();
    const temp = path.join(cf.dir, '.partial/logs/app.log.0123456789ab.partial');
    await mkdir(path.dirname(temp), { recursive: true });
    await writeFile(temp, 'half a log');

    const again = await openCase();
    expect(await filesUnder(path.join(again.dir, '.partial'))).toEqual([]);
    const moved = await filesUnder(path.join(again.dir, 'interrupted'));
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatch(/^logs\/app\.log\.\d{8}T\d{9}Z$/);
    const rel = `interrupted/${moved[0]}`;
    expect(await readFile(path.join(again.dir, rel), 'utf8')).toBe('half a log');
    expect((await custody(again.dir)).at(-1)).toMatchObject({
      action: 'artifact-interrupted',
      artifact: rel,
      sha256: sha('half a log'),
      bytes: 10,
      detail: { original: 'logs/app.log' },
    });
    expect(again.has('logs/app.log')).toBe(false);
    expect(again.has(rel)).toBe(true);
    const n = (await custody(again.dir)).length;
    await again.close();

    // Reopening again changes nothing.
    const third = await openCase();
    expect((await custody(third.dir)).length).toBe(n);
    await third.close();
  });

  it('a crash after link() leaves one recorded artifact, not a duplicate', async () => {
    const cf = await openCase();
    await cf.close();
    await mkdir(path.join(cf.dir, 'logs'), { recursive: true });
    await mkdir(path.join(cf.dir, '.partial/logs'), { recursive: true });
    await writeFile(path.join(cf.dir, 'logs/app.log'), 'complete');
    await link(path.join(cf.dir, 'logs/app.log'), path.join(cf.dir, '.partial/logs/app.log.0123456789ab.partial'));

    const again = await openCase();
    expect(await filesUnder(path.join(again.dir, '.partial'))).toEqual([]);
    expect(existsSync(path.join(again.dir, 'interrupted'))).toBe(false);
    expect(again.get('logs/app.log')).toEqual({ artifact: 'logs/app.log', sha256: sha('complete'), bytes: 8 });
    expect((await stat(path.join(again.dir, 'logs/app.log'))).nlink).toBe(1);
    await again.close();
  });
});

describe('failures', () => {
  it('maps errno codes to condition reasons', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    expect(evidenceErrorReason(e('ENOSPC'))).toBe('EvidenceStoreFull');
    expect(evidenceErrorReason(e('EDQUOT'))).toBe('EvidenceStoreFull');
    expect(evidenceErrorReason(e('EACCES'))).toBe('EvidenceWriteFailed');
    expect(evidenceErrorReason(e('EPERM'))).toBe('EvidenceWriteFailed');
    expect(evidenceErrorReason(e('EROFS'))).toBe('EvidenceWriteFailed');
    expect(evidenceErrorReason(e('ECONNRESET'))).toBeUndefined();
    expect(evidenceErrorReason(new Error('x'))).toBeUndefined();
    expect(evidenceErrorReason('ENOSPC')).toBeUndefined();
    expect(evidenceErrorReason(new EvidenceStoreFullError('m', 'a', 'ENOSPC'))).toBe('EvidenceStoreFull');
    expect(evidenceErrorReason(new EvidenceWriteError('m', 'a', 'EIO'))).toBe('EvidenceWriteFailed');
  });

  it('keeps the bytes of a source that fails midway and records the failure', async () => {
    const cf = await openCase();
    const boom = Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
    async function* failing() {
      yield Buffer.from('line 1\n');
      yield Buffer.from('line 2\n');
      throw boom;
    }
    await expect(cf.captureOnce('logs/app.log', failing, { phase: 'LogsCaptured' })).rejects.toBe(boom);
    expect(evidenceErrorReason(boom)).toBeUndefined();
    expect(cf.has('logs/app.log')).toBe(false);
    const [kept] = await filesUnder(path.join(cf.dir, 'interrupted'));
    expect(await readFile(path.join(cf.dir, 'interrupted', kept!), 'utf8')).toBe('line 1\nline 2\n');
    expect((await custody(cf.dir)).at(-1)).toMatchObject({
      action: 'artifact-failed',
      phase: 'LogsCaptured',
      artifact: `interrupted/${kept}`,
      sha256: sha('line 1\nline 2\n'),
      detail: { original: 'logs/app.log', code: 'ECONNRESET', error: 'ECONNRESET: connection reset' },
    });
    // A retry captures normally.
    expect((await cf.writeText('logs/app.log', 'full')).reused).toBeUndefined();

    // A producer that fails before any byte leaves no file, only the custody record.
    await expect(cf.captureOnce('logs/app.previous.log', () => Promise.reject(new Error('container has not restarted')))).rejects.toThrow('not restarted');
    expect(existsSync(path.join(cf.dir, 'logs/app.previous.log'))).toBe(false);
    expect((await custody(cf.dir)).at(-1)).toMatchObject({ action: 'artifact-failed', detail: { original: 'logs/app.previous.log' } });
    expect((await custody(cf.dir)).at(-1)?.artifact).toBeUndefined();
    expect(cf.custodyRecords()).toEqual(await custody(cf.dir));
    await cf.close();
  });

  // Root ignores chmod, so a permission failure is produced with the immutable attribute (ext4/xfs).
  const chattr = realFailureProbe('chattr', (dir) => spawnSync('chattr', ['+i', dir]).status === 0 && spawnSync('chattr', ['-i', dir]).status === 0);
  itIf(chattr)('reports a real EPERM as EvidenceWriteError', async () => {
    const cf = await openCase();
    const partial = path.join(cf.dir, '.partial');
    await mkdir(partial, { recursive: true });
    expect(spawnSync('chattr', ['+i', partial]).status).toBe(0);
    try {
      const err = await cf.writeText('logs/app.log', 'x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EvidenceWriteError);
      expect(err).toMatchObject({ code: 'EPERM', artifact: 'logs/app.log' });
      expect(evidenceErrorReason(err)).toBe('EvidenceWriteFailed');
    } finally {
      spawnSync('chattr', ['-i', partial]);
    }
    expect((await custody(cf.dir)).at(-1)).toMatchObject({ action: 'artifact-failed', detail: { code: 'EPERM' } });
    await cf.close();
  });

  // A real full volume: a tiny tmpfs (needs CAP_SYS_ADMIN, which this machine grants root).
  const tmpfs = realFailureProbe('mount -t tmpfs', (dir) => spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]).status === 0 && spawnSync('umount', [dir]).status === 0);
  itIf(tmpfs)('reports a real ENOSPC as EvidenceStoreFullError, keeps the partial bytes, and recovers once space exists', async () => {
    const mnt = path.join(root, 'small');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    try {
      const open = () => CaseFile.open({ root: mnt, namespace: 'ns', name: 'full', uid: UID, actor: 't' });
      const cf = await open();
      const big = Array.from({ length: 16 }, (_, i) => chunk(i, 64 * 1024));
      const err = await cf.captureOnce('logs/app.log', () => Readable.from(big)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EvidenceStoreFullError);
      expect(err).toMatchObject({ name: 'EvidenceStoreFullError', code: 'ENOSPC', artifact: 'logs/app.log', cause: { code: 'ENOSPC' } });
      expect((err as Error).message).toMatch(/^evidence volume full while writing logs\/app\.log: (Error: )?ENOSPC/);
      expect(evidenceErrorReason(err)).toBe('EvidenceStoreFull');
      expect(cf.has('logs/app.log')).toBe(false);
      await cf.close();
      expect(verifyCustodyChain(await readFile(path.join(cf.dir, 'custody.jsonl'), 'utf8')).ok).toBe(true);
      const kept = [...(await filesUnder(path.join(cf.dir, 'interrupted'))), ...(await filesUnder(path.join(cf.dir, '.partial')))];
      expect(kept).toHaveLength(1);

      execFileSync('mount', ['-o', 'remount,size=8m', mnt]);
      const again = await open();
      const interrupted = again.artifacts().filter((a) => a.artifact.startsWith('interrupted/logs/app.log.'));
      expect(interrupted).toHaveLength(1);
      expect(interrupted[0]!.bytes).toBeGreaterThan(0);
      expect(interrupted[0]!.bytes).toBeLessThan(16 * 64 * 1024);
      await again.writeText('logs/app.log', 'retried');
      await again.seal();
      expect(await verifyCaseDir(again.dir)).toEqual({ ok: true, problems: [], artifacts: 2 });
      await again.close();
    } finally {
      spawnSync('umount', [mnt]);
    }
  }, 30_000);
});

describe('seal', () => {
  async function populated(): Promise<CaseFile> {
    const cf = await openCase();
    await cf.writeJSON('alert.json', { rule: 'Terminal shell in container' });
    await cf.writeText('logs/app.log', 'log\n');
    await cf.writeText(`live/files/${mirrorPath('/tmp/evil name')}`, 'ELF');
    await cf.record('negative-finding', { summary: 'no previous container logs: the container has not restarted' }, 'LogsCaptured');
    const temp = path.join(cf.dir, '.partial/live/processes.json.0123456789ab.partial');
    await mkdir(path.dirname(temp), { recursive: true });
    await writeFile(temp, '[{"pid":1');
    await cf.close();
    return openCase(); // picks up the interrupted capture
  }

  it('writes a MANIFEST that sha256sum -c accepts, once', async () => {
    const cf = await populated();
    await cf.writeText('report.md', '# Incident\n');
    const result = await cf.seal();
    const manifest = await readFile(path.join(cf.dir, 'MANIFEST.sha256'), 'utf8');
    expect(result).toMatchObject({ manifestSHA256: sha(manifest), artifacts: 5 });
    expect(result.bytes).toBe(cf.artifacts().reduce((n, a) => n + a.bytes, 0));
    const listed = manifest.trimEnd().split('\n').map((l) => l.slice(66));
    expect(listed).toEqual([...listed].sort());
    expect(listed).toEqual(expect.arrayContaining(['alert.json', 'report.md', 'live/files/tmp/evil%20name']));
    expect(listed.some((p) => p.startsWith('interrupted/live/processes.json.'))).toBe(true);
    expect(listed).not.toContain('custody.jsonl');
    expect(listed).not.toContain('MANIFEST.sha256');

    const check = spawnSync('sha256sum', ['-c', 'MANIFEST.sha256'], { cwd: cf.dir, encoding: 'utf8' });
    expect(check.status).toBe(0);
    expect(check.stdout.trim().split('\n')).toHaveLength(5);

    const records = await custody(cf.dir);
    expect(records.at(-1)).toMatchObject({ action: 'sealed', artifact: 'MANIFEST.sha256', sha256: sha(manifest), detail: { artifacts: 5, bytes: result.bytes } });
    expect(await cf.seal()).toEqual(result);
    expect(await custody(cf.dir)).toHaveLength(records.length);
    expect(await verifyCaseDir(cf.dir)).toEqual({ ok: true, problems: [], artifacts: 5 });
    await cf.close();
  });

  it('detects an artifact tampered with after sealing', async () => {
    const cf = await populated();
    await cf.seal();
    await appendFile(path.join(cf.dir, 'logs/app.log'), 'injected\n');
    expect(spawnSync('sha256sum', ['-c', 'MANIFEST.sha256'], { cwd: cf.dir }).status).not.toBe(0);
    const v = await verifyCaseDir(cf.dir);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([expect.stringMatching(/^logs\/app\.log: SHA-256 .* does not match the manifest/)]);
    await expect(cf.seal()).rejects.toThrow(/logs\/app\.log/);
    await cf.close();
  });

  it('refuses to seal a case whose artifact changed or vanished', async () => {
    const cf = await populated();
    await writeFile(path.join(cf.dir, 'alert.json'), '{}');
    await expect(cf.seal()).rejects.toThrow(/cannot seal .*alert\.json has sha256/);
    expect(existsSync(path.join(cf.dir, 'MANIFEST.sha256'))).toBe(false);
    await rm(path.join(cf.dir, 'alert.json'));
    await expect(cf.seal()).rejects.toThrow(/alert\.json is missing/);
    await cf.close();
  });

  it('resumes a seal interrupted after the manifest was written, and refuses a different manifest', async () => {
    const cf = await populated();
    const manifest = cf
      .artifacts()
      .sort((a, b) => (a.artifact < b.artifact ? -1 : 1))
      .map((a) => `${a.sha256}  ${a.artifact}\n`)
      .join('');
    await writeFile(path.join(cf.dir, 'MANIFEST.sha256'), manifest);
    const result = await cf.seal();
    expect(result.manifestSHA256).toBe(sha(manifest));
    expect((await custody(cf.dir)).filter((r) => r.action === 'sealed')).toHaveLength(1);

    await cf.writeText('containment/late.json', '{}');
    await expect(cf.seal()).rejects.toThrow(/already exists with different content/);
    expect((await verifyCaseDir(cf.dir)).problems).toEqual([expect.stringContaining('containment/late.json: recorded in custody.jsonl but not in MANIFEST.sha256')]);
    await cf.close();
  });

  it('verifyCaseDir reports a broken custody chain and a missing manifest', async () => {
    const cf = await populated();
    await cf.close();
    const file = path.join(cf.dir, 'custody.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.splice(1, 1);
    await writeFile(file, lines.join('\n'));
    const v = await verifyCaseDir(cf.dir);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([expect.stringMatching(/^custody\.jsonl line 2: /), 'MANIFEST.sha256 is missing: the case is not sealed']);
    await expect(openCase()).rejects.toThrow(/broken at line 2/);
  });
});

describe('CaseFile contract edges', () => {
  it('refuses artifact paths the store reserves or that are not sanitised, naming why', async () => {
    const cf = await openCase();
    for (const reserved of ['custody.jsonl', 'MANIFEST.sha256', 'interrupted/x.log']) {
      const top = reserved.split('/')[0];
      await expect(cf.writeText(reserved, 'x')).rejects.toThrow(`invalid artifact path ${JSON.stringify(reserved)}: ${top} is reserved for the store`);
    }
    for (const bad of ['/abs', 'a/../b', 'a//b', '.hidden', 'a/.partial/x', '']) {
      await expect(cf.writeText(bad, 'x')).rejects.toThrow(/no leading "\/", "\.\.", empty or hidden segments/);
    }
    // Reserved only at the top: a deeper segment of the same name is an ordinary artifact.
    await cf.writeText('logs/interrupted', 'fine');
    expect(cf.has('logs/interrupted')).toBe(true);
    await cf.close();
  });

  it('limitBytes must be a non-negative safe integer; 0 keeps an empty, truncated artifact', async () => {
    const cf = await openCase();
    for (const limit of [1.5, Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      await expect(cf.captureOnce('logs/bad.log', () => 'x', { limitBytes: limit })).rejects.toThrow(`limitBytes must be a non-negative integer, got ${limit}`);
    }
    expect(await cf.captureOnce('logs/zero.log', () => 'abc', { limitBytes: 0 })).toEqual({ artifact: 'logs/zero.log', sha256: sha(''), bytes: 0, truncated: true });
    expect(await cf.captureOnce('logs/exact.log', () => 'abc', { limitBytes: 3 })).toMatchObject({ bytes: 3, truncated: true });
    expect(await cf.captureOnce('logs/under.log', () => 'abc', { limitBytes: 4 })).toEqual({ artifact: 'logs/under.log', sha256: sha('abc'), bytes: 3 });
    expect(await readFile(path.join(cf.dir, 'logs/zero.log'), 'utf8')).toBe('');
    await cf.close();
  });

  it('an empty source is an empty artifact, recorded like any other', async () => {
    const cf = await openCase();
    async function* nothing(): AsyncGenerator<Buffer> {}
    expect(await cf.captureOnce('logs/empty.log', nothing)).toEqual({ artifact: 'logs/empty.log', sha256: sha(''), bytes: 0 });
    expect(await readFile(path.join(cf.dir, 'logs/empty.log'), 'utf8')).toBe('');
    expect((await custody(cf.dir)).at(-1)).toMatchObject({ action: 'artifact', artifact: 'logs/empty.log', bytes: 0, detail: { truncated: false } });
    await cf.close();
  });

  it('readText reads recorded artifacts only; get and artifacts hand out copies', async () => {
    const cf = await openCase();
    await cf.writeText('logs/a.log', 'alpha');
    expect(await cf.readText('logs/a.log')).toBe('alpha');
    await writeFile(path.join(cf.dir, 'stray.txt'), 'not recorded');
    await expect(cf.readText('stray.txt')).rejects.toThrow('stray.txt is not a recorded artifact of this case');
    cf.get('logs/a.log')!.sha256 = 'changed';
    cf.artifacts()[0]!.bytes = 99;
    expect(cf.get('logs/a.log')).toEqual({ artifact: 'logs/a.log', sha256: sha('alpha'), bytes: 5 });
    expect(cf.get('logs/none.log')).toBeUndefined();
    await cf.close();
  });

  it('custody actions of the store cannot be recorded by hand', async () => {
    const cf = await openCase();
    for (const action of ['artifact', 'artifact-recovered', 'artifact-interrupted', 'artifact-failed', 'sealed']) {
      await expect(cf.record(action)).rejects.toThrow(`custody action ${JSON.stringify(action)} is reserved for the store`);
    }
    expect(await cf.record('phase-started', { n: 1 }, 'LogsCaptured')).toMatchObject({ action: 'phase-started', phase: 'LogsCaptured', detail: { n: 1 } });
    await cf.close();
  });

  it('a truncated artifact is still known as truncated after a reopen, a whole one is not', async () => {
    const cf = await openCase();
    await cf.captureOnce('logs/cut.log', () => 'abcdef', { limitBytes: 2 });
    await cf.writeText('logs/whole.log', 'abc');
    await cf.close();
    const again = await openCase();
    expect(again.get('logs/cut.log')).toEqual({ artifact: 'logs/cut.log', sha256: sha('ab'), bytes: 2, truncated: true });
    expect(again.get('logs/whole.log')).toEqual({ artifact: 'logs/whole.log', sha256: sha('abc'), bytes: 3 });
    expect(again.artifacts().map((a) => a.artifact)).toEqual(['logs/cut.log', 'logs/whole.log']);
    await again.close();
  });

  it('seal reports the sealed time of its custody record, the same on a repeat', async () => {
    const cf = await openCase();
    await cf.writeText('a.txt', 'aa');
    await cf.writeText('b.txt', 'bbb');
    const first = await cf.seal();
    const sealed = (await custody(cf.dir)).find((r) => r.action === 'sealed')!;
    expect(first).toEqual({ manifestSHA256: sealed.sha256, artifacts: 2, bytes: 5, sealedAt: sealed.time });
    expect(sealed).toMatchObject({ artifact: 'MANIFEST.sha256', detail: { artifacts: 2, bytes: 5 } });
    expect(await readFile(path.join(cf.dir, 'MANIFEST.sha256'), 'utf8')).toBe(`${sha('aa')}  a.txt\n${sha('bbb')}  b.txt\n`);
    expect(await cf.seal()).toEqual(first);
    expect((await custody(cf.dir)).filter((r) => r.action === 'sealed')).toHaveLength(1);
    await cf.close();
  });

  it("a producer that fails before any byte: its error passes through as is, recorded with no file kept", async () => {
    const cf = await openCase();
    const gone = Object.assign(new Error('pod not found'), { code: 'ENOTFOUND' });
    const err = await cf.captureOnce('logs/a.log', () => { throw gone; }, { phase: 'LogsCaptured' }).catch((e: unknown) => e);
    expect(err).toBe(gone);
    const last = (await custody(cf.dir)).at(-1)!;
    expect(last).toMatchObject({ action: 'artifact-failed', phase: 'LogsCaptured', detail: { original: 'logs/a.log', error: 'ENOTFOUND: pod not found', code: 'ENOTFOUND' } });
    expect(last.artifact).toBeUndefined();
    expect(await filesUnder(cf.dir)).toEqual(['custody.jsonl']);
    expect(cf.has('logs/a.log')).toBe(false);
    await cf.close();
  });
});
