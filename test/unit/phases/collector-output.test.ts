// The operator's side of the collector protocol, against a real case directory: framed output is
// split into write-once artifacts, names are confined to their prefix, a cut stream never publishes
// a partial artifact, and a rerun writes beside (never over) the first run.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { CaseFile, EvidenceStoreFullError, type ArtifactRecord, type ArtifactSource, type CaptureOptions } from '../../../src/evidence/index.js';
import { FrameWriter } from '../../../src/live/frames.js';
import { artifactPath, captureCollectorOutput, COLLECTOR_STARTED, collectorBase, collectorBases } from '../../../src/phases/collector-output.js';

let root: string;
let caseFile: CaseFile;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'collector-output-'));
  caseFile = await CaseFile.open({ root, namespace: 'ns', name: 'inv', uid: '0123456789abcdef', actor: 'test' });
});
afterEach(async () => {
  await caseFile.close();
  await rm(root, { recursive: true, force: true });
});

/** Runs `write` against a FrameWriter and returns the bytes it produced, split into small chunks. */
async function framed(write: (w: FrameWriter) => Promise<void>): Promise<Buffer[]> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  await write(new FrameWriter(sink));
  sink.end();
  const all = Buffer.concat(chunks);
  // Re-split at odd sizes: the decoder must not depend on how the exec stream chunks its output.
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += 7) out.push(all.subarray(i, i + 7));
  return out;
}

async function* from(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('captureCollectorOutput', () => {
  test('writes each artifact under the base, with the collector hash checked, and keeps notes and summary', async () => {
    const big = 'x'.repeat(200_000);
    const input = await framed(async (w) => {
      await w.artifact('live/processes.json', '{"processes":[]}\n');
      await w.note('info', 'no files under /var/tmp');
      await w.artifact('live/files/tmp/big', big);
      await w.done({ processes: 0, files: 1 });
    });
    const out = await captureCollectorOutput(from(input), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out).toMatchObject({ complete: true, problems: [], artifacts: ['live/processes.json', 'live/files/tmp/big'], summary: { processes: 0, files: 1 } });
    expect(out.notes).toEqual([{ level: 'info', message: 'no files under /var/tmp' }]);
    expect(caseFile.get('live/files/tmp/big')).toMatchObject({ sha256: sha(big), bytes: big.length });
    expect(await readFile(path.join(caseFile.dir, 'live/files/tmp/big'), 'utf8')).toBe(big);
  });

  test('refuses names outside the prefix or not sanitised, and reads past their bytes', async () => {
    const input = await framed(async (w) => {
      await w.artifact('node/host-process.json', '{}');
      await w.artifact('live/../../escape', 'nope');
      await w.artifact('live/ok.json', '{}');
      await w.done({});
    });
    const out = await captureCollectorOutput(from(input), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out.artifacts).toEqual(['live/ok.json']);
    expect(out.problems).toEqual([
      'refused artifact name "node/host-process.json": not a sanitised path under live/',
      'refused artifact name "live/../../escape": not a sanitised path under live/',
    ]);
    expect(caseFile.has('node/host-process.json')).toBe(false);
  });

  test('a stream cut inside an artifact publishes nothing in place and says so', async () => {
    const input = await framed(async (w) => {
      await w.artifact('live/a.json', '{}');
      await w.artifact('live/cut.bin', 'y'.repeat(100_000));
    });
    const whole = Buffer.concat(input);
    const out = await captureCollectorOutput(from([whole.subarray(0, whole.length - 5000)]), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out.complete).toBe(false);
    expect(out.artifacts).toEqual(['live/a.json']);
    expect(out.problems.join('\n')).toMatch(/cut\.bin|ended|unreadable/);
    expect(caseFile.has('live/cut.bin')).toBe(false);
  });

  /** Hand-made frames: a collector that sends `body` but claims `claimed` in its close frame. */
  function lyingCollector(body: string, claimed: { sha256: string; bytes: number }): Buffer[] {
    return [
      `${JSON.stringify({ t: 'open', artifact: 'live/cmdline' })}\n`,
      `${JSON.stringify({ t: 'data', bytes: Buffer.byteLength(body) })}\n${body}`,
      `${JSON.stringify({ t: 'close', ...claimed })}\n`,
      `${JSON.stringify({ t: 'done', summary: {} })}\n`,
    ].map((s) => Buffer.from(s));
  }

  test('a collector that lies about its hash is caught: the store keeps what arrived and says so', async () => {
    const claimed = { sha256: sha('sleep 1000'), bytes: 10 };
    const out = await captureCollectorOutput(from(lyingCollector('/tmp/.x -c', claimed)), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out.artifacts).toEqual(['live/cmdline']);
    expect(out.problems).toEqual([`live/cmdline: the collector hashed ${claimed.sha256} (10 bytes), the store ${sha('/tmp/.x -c')} (10 bytes)`]);
    expect(caseFile.get('live/cmdline')).toMatchObject({ sha256: sha('/tmp/.x -c'), bytes: 10 });
  });

  test('a collector that lies about the size alone is caught too', async () => {
    const out = await captureCollectorOutput(from(lyingCollector('abc', { sha256: sha('abc'), bytes: 4 })), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out.problems).toEqual([`live/cmdline: the collector hashed ${sha('abc')} (4 bytes), the store ${sha('abc')} (3 bytes)`]);
  });

  test('an honest hand-made close frame raises no problem (the lying tests above differ only in the claim)', async () => {
    const out = await captureCollectorOutput(from(lyingCollector('abc', { sha256: sha('abc'), bytes: 3 })), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out).toMatchObject({ complete: true, problems: [], artifacts: ['live/cmdline'] });
  });

  test('an artifact sent twice keeps the first copy, and is not reported as a hash mismatch', async () => {
    const input = await framed(async (w) => {
      await w.artifact('live/a.json', '{"first":true}');
      await w.artifact('live/a.json', '{"second":true}');
      await w.done({});
    });
    const out = await captureCollectorOutput(from(input), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect(out.artifacts).toEqual(['live/a.json']);
    expect(out.problems).toEqual(['live/a.json was already in the case; the new copy was not written']);
    expect(await readFile(path.join(caseFile.dir, 'live/a.json'), 'utf8')).toBe('{"first":true}');
  });

  test('keeps 2000 notes and counts the rest; artifacts are recorded under the phase', async () => {
    const input = await framed(async (w) => {
      for (let i = 0; i < 2001; i++) await w.note('info', `n${i}`);
      await w.artifact('live/a.json', '{}');
      await w.done({});
    });
    const out = await captureCollectorOutput(from(input), caseFile, { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' });
    expect({ kept: out.notes.length, last: out.notes.at(-1)?.message, dropped: out.droppedNotes }).toEqual({ kept: 2000, last: 'n1999', dropped: 1 });
    expect(caseFile.custodyRecords().find((r) => r.artifact === 'live/a.json')).toMatchObject({ action: 'artifact', phase: 'LiveStateCaptured' });
  });

  test('a second run goes to live/retry-2, never over the first', async () => {
    expect(collectorBase(caseFile, 'live')).toBe('live');
    await caseFile.record(COLLECTOR_STARTED, { prefix: 'live', base: 'live' });
    expect(collectorBase(caseFile, 'live')).toBe('live/retry-2');
    expect(collectorBase(caseFile, 'node')).toBe('node');
    await caseFile.record('phase-started', { prefix: 'live', base: 'elsewhere' });
    await caseFile.record(COLLECTOR_STARTED, { prefix: 'live', base: 'live/retry-2' });
    expect(collectorBases(caseFile)).toEqual(['live', 'live/retry-2']);
    expect(collectorBase(caseFile, 'live')).toBe('live/retry-3');
  });
});

/** Hand-made frame lines, for streams a FrameWriter would never produce. */
const frame = (header: Record<string, unknown>, body = ''): Buffer => Buffer.from(`${JSON.stringify(header)}\n${body}`);
const artifactFrames = (name: string, body: string): Buffer[] => [
  frame({ t: 'open', artifact: name }),
  frame({ t: 'data', bytes: Buffer.byteLength(body) }, body),
  frame({ t: 'close', sha256: sha(body), bytes: Buffer.byteLength(body) }),
];
const opts = { expectPrefix: 'live', base: 'live', phase: 'LiveStateCaptured' };

/**
 * The real case file, except that capturing `failing` reads the artifact's bytes (all of them when
 * `after` is 'close', the first chunk when 'first-chunk') and then throws `err`.
 */
function failingCaseFile(failing: string, err: Error, after: 'first-chunk' | 'close'): CaseFile {
  const fake = {
    captureOnce: async (dest: string, produce: () => ArtifactSource | Promise<ArtifactSource>, o?: CaptureOptions): Promise<ArtifactRecord> => {
      if (dest !== failing) return caseFile.captureOnce(dest, produce, o);
      for await (const _ of (await produce()) as AsyncIterable<Buffer>) if (after === 'first-chunk') break;
      throw err;
    },
    get: (a: string) => caseFile.get(a),
  };
  return fake as unknown as CaseFile;
}

describe('captureCollectorOutput: cut streams and failing stores', () => {
  test('a stream that ends between frames inside an artifact keeps the partial copy aside and stops', async () => {
    const [open, data] = artifactFrames('live/cut.bin', 'partial bytes');
    const input = [...artifactFrames('live/a.json', '{}'), open!, data!];
    const out = await captureCollectorOutput(from(input), caseFile, opts);
    expect(out).toEqual({
      artifacts: ['live/a.json'],
      notes: [],
      droppedNotes: 0,
      problems: ["the collector's output ended inside live/cut.bin; the partial copy is kept under interrupted/"],
      complete: false,
    });
    expect(caseFile.has('live/cut.bin')).toBe(false);
    const failed = caseFile.custodyRecords().find((r) => r.action === 'artifact-failed');
    expect(failed?.artifact).toMatch(/^interrupted\/live\/cut\.bin\./);
    expect(failed?.bytes).toBe('partial bytes'.length);
  });

  test('a malformed frame ends the capture with "unreadable", keeping what came before', async () => {
    const input = [...artifactFrames('live/a.json', '{}'), Buffer.from('not a frame\n'), ...artifactFrames('live/b.json', '{}')];
    const out = await captureCollectorOutput(from(input), caseFile, opts);
    expect(out.artifacts).toEqual(['live/a.json']);
    expect(out.problems).toEqual(['collector output unreadable: frame header is not JSON: "not a frame"']);
    expect(out.complete).toBe(false);
  });

  test('a store failure in the middle of an artifact is reported, its bytes are read past, and the next artifact is kept', async () => {
    const input = [...artifactFrames('live/a.bin', 'aaaa'), ...artifactFrames('live/b.json', '{"b":1}'), frame({ t: 'done', summary: {} })];
    const out = await captureCollectorOutput(from(input), failingCaseFile('live/a.bin', new Error('disk says no'), 'first-chunk'), opts);
    expect(out).toMatchObject({ complete: true, artifacts: ['live/b.json'], problems: ['live/a.bin: disk says no'] });
    expect(caseFile.get('live/b.json')).toMatchObject({ sha256: sha('{"b":1}'), bytes: 7 });
  });

  test('a store failure after the close frame does not read on: the next artifact is kept whole', async () => {
    const input = [...artifactFrames('live/a.bin', 'aaaa'), ...artifactFrames('live/b.json', '{"b":1}'), frame({ t: 'done', summary: { n: 1 } })];
    const out = await captureCollectorOutput(from(input), failingCaseFile('live/a.bin', new Error('link failed'), 'close'), opts);
    expect(out).toMatchObject({ complete: true, summary: { n: 1 }, artifacts: ['live/b.json'], problems: ['live/a.bin: link failed'] });
  });

  test('an evidence-store error (volume full) is not swallowed: the phase must see it', async () => {
    const full = new EvidenceStoreFullError('evidence volume full while writing live/a.bin', 'live/a.bin', 'ENOSPC');
    const input = [...artifactFrames('live/a.bin', 'aaaa'), frame({ t: 'done', summary: {} })];
    await expect(captureCollectorOutput(from(input), failingCaseFile('live/a.bin', full, 'first-chunk'), opts)).rejects.toBe(full);
  });

  test('a refused name is quoted in the problem, cut to 200 characters', async () => {
    const long = `node/${'n'.repeat(300)}`;
    const input = [...artifactFrames(long, 'x'), ...artifactFrames('live/ok.json', '{}'), frame({ t: 'done', summary: {} })];
    const out = await captureCollectorOutput(from(input), caseFile, opts);
    expect(out.problems).toEqual([`refused artifact name ${JSON.stringify(long).slice(0, 200)}: not a sanitised path under live/`]);
    expect(out.problems[0]!.length).toBe('refused artifact name '.length + 200 + ': not a sanitised path under live/'.length);
    expect(out.artifacts).toEqual(['live/ok.json']);
  });

  test('a refused name at the end of a cut stream stops the capture', async () => {
    const [open, data] = artifactFrames('other/x', 'x');
    const out = await captureCollectorOutput(from([open!, data!]), caseFile, opts);
    expect(out).toMatchObject({ complete: false, artifacts: [], problems: ['refused artifact name "other/x": not a sanitised path under live/'] });
  });
});

describe('artifactPath', () => {
  test('maps under the base and refuses anything else', () => {
    expect(artifactPath('live/files/tmp/x', 'live', 'live/retry-2')).toBe('live/retry-2/files/tmp/x');
    expect(artifactPath('live/.hidden', 'live', 'live')).toBeUndefined();
    expect(artifactPath('live/a//b', 'live', 'live')).toBeUndefined();
    expect(artifactPath('livex/a', 'live', 'live')).toBeUndefined();
    expect(artifactPath('live/a/../b', 'live', 'live')).toBeUndefined();
  });
});
