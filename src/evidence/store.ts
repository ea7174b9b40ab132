import { createHash, randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CustodyLog, type CustodyRecord } from './custody.js';
import { errnoCode, errorMessage, fileStamp, fsyncDir, hashFile, linkInto, mkdirDurable, sha256Hex, writeFully, writeOnce } from './io.js';
import { ARTIFACT_ACTIONS, CUSTODY_FILE, MANIFEST_FILE, PARTIAL_DIR, SEALED_ACTION, SIGNATURE_FILE, SIGNED_ACTION } from './layout.js';
import { ArtifactPathError, caseRelativeDir, isSanitizedSegment, resolveInside } from './paths.js';

export { ArtifactPathError };

const INTERRUPTED = 'interrupted';
const RESERVED_TOP = new Set([CUSTODY_FILE, MANIFEST_FILE, SIGNATURE_FILE, INTERRUPTED]);
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);
const DENIED_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);
const TEMP_SUFFIX = /\.[0-9a-f]{12}\.partial$/;

/** The evidence volume is full (ENOSPC/EDQUOT): condition reason EvidenceStoreFull. */
export class EvidenceStoreFullError extends Error {
  constructor(
    message: string,
    readonly artifact: string | undefined,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'EvidenceStoreFullError';
  }
}

/** Any other failure to write to the evidence volume: condition reason EvidenceWriteFailed. */
export class EvidenceWriteError extends Error {
  constructor(
    message: string,
    readonly artifact: string | undefined,
    readonly code: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'EvidenceWriteError';
  }
}

/** Maps an error to the phase condition reason, or undefined when it is not an evidence-store failure. */
export function evidenceErrorReason(err: unknown): 'EvidenceStoreFull' | 'EvidenceWriteFailed' | undefined {
  if (err instanceof EvidenceStoreFullError) return 'EvidenceStoreFull';
  if (err instanceof EvidenceWriteError) return 'EvidenceWriteFailed';
  const code = errnoCode(err);
  if (code !== undefined && FULL_CODES.has(code)) return 'EvidenceStoreFull';
  if (code !== undefined && DENIED_CODES.has(code)) return 'EvidenceWriteFailed';
  return undefined;
}

function toStoreError(err: unknown, artifact: string | undefined): EvidenceStoreFullError | EvidenceWriteError {
  if (err instanceof EvidenceStoreFullError || err instanceof EvidenceWriteError) return err;
  const code = errnoCode(err);
  const what = artifact ?? 'the custody log';
  if (code !== undefined && FULL_CODES.has(code)) {
    return new EvidenceStoreFullError(`evidence volume full while writing ${what}: ${errorMessage(err)}`, artifact, code, { cause: err });
  }
  return new EvidenceWriteError(`cannot write ${what}: ${errorMessage(err)}`, artifact, code, { cause: err });
}

/** Runs a filesystem operation on the store, turning its failure into a typed store error. */
async function store<T>(artifact: string | undefined, op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (err) {
    throw toStoreError(err, artifact);
  }
}

export interface ArtifactRecord {
  artifact: string;
  sha256: string;
  bytes: number;
  truncated?: boolean;
  reused?: boolean;
}

export type ArtifactSource = NodeJS.ReadableStream | AsyncIterable<Buffer | string> | Buffer | string;

export interface CaptureOptions {
  phase?: string;
  limitBytes?: number;
  detail?: Record<string, unknown>;
}

export interface CaseFileOptions {
  root: string;
  namespace: string;
  name: string;
  uid: string;
  actor: string;
  onBytesWritten?: (n: number) => void;
}

export interface SealResult {
  manifestSHA256: string;
  artifacts: number;
  bytes: number;
  sealedAt: string;
}

function checkArtifactPath(artifact: string): void {
  const segments = artifact.split('/');
  const bad = (why: string) => new ArtifactPathError(`invalid artifact path ${JSON.stringify(artifact)}: ${why}`, artifact);
  if (segments.some((s) => !isSanitizedSegment(s))) {
    throw bad('use relative paths of sanitizeSegment()/mirrorPath() segments (no leading "/", "..", empty or hidden segments)');
  }
  if (RESERVED_TOP.has(segments[0]!)) throw bad(`${segments[0]} is reserved for the store`);
}

async function* chunksOf(source: ArtifactSource): AsyncGenerator<Buffer> {
  if (typeof source === 'string') {
    yield Buffer.from(source, 'utf8');
  } else if (Buffer.isBuffer(source)) {
    yield source;
  } else {
    for await (const chunk of source) yield typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
  }
}

async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const files: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const abs = path.join(dir, e.name);
    if (e.isDirectory()) files.push(...(await listFiles(abs)));
    else if (e.isFile()) files.push(abs);
  }
  return files;
}

async function lstatIfExists(file: string): Promise<Stats | undefined> {
  try {
    return await lstat(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** One Investigation's case directory: write-once artifacts plus the custody log. */
export class CaseFile {
  private readonly index = new Map<string, ArtifactRecord>();
  private readonly inflight = new Map<string, Promise<ArtifactRecord>>();

  private constructor(
    readonly dir: string,
    readonly relativeDir: string,
    private readonly custody: CustodyLog,
    private readonly onBytesWritten: ((n: number) => void) | undefined,
  ) {
    for (const r of custody.records()) this.remember(r);
  }

  static async open(opts: CaseFileOptions): Promise<CaseFile> {
    const relativeDir = caseRelativeDir(opts.namespace, opts.name, opts.uid);
    const dir = resolveInside(opts.root, relativeDir);
    await mkdirDurable(dir);
    const custody = await CustodyLog.open(path.join(dir, CUSTODY_FILE), opts.actor);
    const cf = new CaseFile(dir, relativeDir, custody, opts.onBytesWritten);
    try {
      await cf.recoverPartials();
      await cf.recoverUnrecorded();
    } catch (err) {
      await custody.close();
      throw err;
    }
    return cf;
  }

  private remember(r: CustodyRecord): void {
    if (!ARTIFACT_ACTIONS.has(r.action) || r.artifact === undefined || r.sha256 === undefined || r.bytes === undefined) return;
    if (this.index.has(r.artifact)) return;
    const rec: ArtifactRecord = { artifact: r.artifact, sha256: r.sha256, bytes: r.bytes };
    if (r.detail?.truncated === true) rec.truncated = true;
    this.index.set(r.artifact, rec);
  }

  private async appendArtifact(action: string, file: { artifact: string; sha256: string; bytes: number }, detail?: Record<string, unknown>, phase?: string): Promise<CustodyRecord> {
    const r = await this.custody.append({ action, phase, artifact: file.artifact, sha256: file.sha256, bytes: file.bytes, detail });
    this.remember(r);
    return r;
  }

  /** Temp files left by a crash: already-published ones lose their extra name, the rest go to interrupted/. */
  private async recoverPartials(): Promise<void> {
    const partialRoot = path.join(this.dir, PARTIAL_DIR);
    for (const temp of await listFiles(partialRoot)) {
      // nlink > 1: the crash came after link() to the final or interrupted/ name; that name is recovered below.
      if ((await lstat(temp)).nlink > 1) {
        await unlink(temp);
        continue;
      }
      const original = path.relative(partialRoot, temp).split(path.sep).join('/').replace(TEMP_SUFFIX, '');
      // An unfinished signature is not evidence (the case is already sealed) and is made again from the
      // seal; kept and recorded, it would be an artifact written after the seal.
      if (original === SIGNATURE_FILE) {
        await unlink(temp);
        continue;
      }
      const kept = await this.moveToInterrupted(temp, original);
      await this.appendArtifact('artifact-interrupted', kept, { original });
    }
  }

  /** Files on disk with no custody record (crash between link and the custody append, or written by others). */
  private async recoverUnrecorded(): Promise<void> {
    for (const abs of await listFiles(this.dir)) {
      const rel = path.relative(this.dir, abs).split(path.sep).join('/');
      if (rel === CUSTODY_FILE || rel === MANIFEST_FILE || rel === SIGNATURE_FILE || rel.startsWith(`${PARTIAL_DIR}/`)) continue;
      if (this.index.has(rel) || this.inflight.has(rel)) continue;
      await this.recordExisting(rel);
    }
  }

  private async recordExisting(rel: string): Promise<ArtifactRecord> {
    const { sha256, bytes } = await hashFile(resolveInside(this.dir, rel));
    await this.appendArtifact('artifact-recovered', { artifact: rel, sha256, bytes });
    return this.index.get(rel)!;
  }

  /** link + unlink rather than rename: rename would silently replace an existing file. */
  private async moveToInterrupted(temp: string, original: string): Promise<{ artifact: string; sha256: string; bytes: number }> {
    const base = `${INTERRUPTED}/${original}.${fileStamp()}`;
    for (let n = 0; ; n++) {
      const rel = n === 0 ? base : `${base}-${n}`;
      try {
        await linkInto(temp, resolveInside(this.dir, rel));
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') continue;
        throw err;
      }
      return { artifact: rel, ...(await hashFile(resolveInside(this.dir, rel))) };
    }
  }

  has(artifact: string): boolean {
    return this.index.has(artifact);
  }

  get(artifact: string): ArtifactRecord | undefined {
    const rec = this.index.get(artifact);
    return rec && { ...rec };
  }

  /** A recorded artifact's content (small ones: saved originals that a release restores from). */
  async readText(artifact: string): Promise<string> {
    if (!this.index.has(artifact)) throw new ArtifactPathError(`${artifact} is not a recorded artifact of this case`, artifact);
    return readFile(resolveInside(this.dir, artifact), 'utf8');
  }

  /** The custody log as recorded so far (the report reads negative findings from it). */
  custodyRecords(): readonly CustodyRecord[] {
    return this.custody.records();
  }

  artifacts(): ArtifactRecord[] {
    return [...this.index.values()].map((r) => ({ ...r }));
  }

  /**
   * Writes `artifact` once. If it is already recorded (or in flight), returns that record with
   * reused: true and never calls produce.
   */
  async captureOnce(artifact: string, produce: () => ArtifactSource | Promise<ArtifactSource>, opts: CaptureOptions = {}): Promise<ArtifactRecord> {
    checkArtifactPath(artifact);
    const limit = opts.limitBytes;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) throw new RangeError(`limitBytes must be a non-negative integer, got ${limit}`);
    const known = this.index.get(artifact);
    if (known) return { ...known, reused: true };
    const running = this.inflight.get(artifact);
    if (running) return { ...(await running), reused: true };
    const capture = this.capture(artifact, produce, opts).finally(() => this.inflight.delete(artifact));
    this.inflight.set(artifact, capture);
    return capture;
  }

  private async capture(artifact: string, produce: () => ArtifactSource | Promise<ArtifactSource>, opts: CaptureOptions): Promise<ArtifactRecord> {
    const final = resolveInside(this.dir, artifact);
    // A file with no record is never overwritten: it is recorded as found and reused.
    const found = await store(artifact, lstatIfExists(final));
    if (found && !found.isFile()) throw new ArtifactPathError(`${artifact} exists in the case and is not a regular file`, artifact);
    if (found) return { ...(await store(artifact, this.recordExisting(artifact))), reused: true };

    const temp = resolveInside(this.dir, `${PARTIAL_DIR}/${artifact}.${randomBytes(6).toString('hex')}.partial`);
    const openTemp = async () => {
      await mkdir(path.dirname(temp), { recursive: true });
      return open(temp, 'wx');
    };
    const hash = createHash('sha256');
    const limit = opts.limitBytes;
    let fh: FileHandle | undefined;
    let closed = false;
    let bytes = 0;
    let truncated = false;
    let linked = false;
    try {
      const source = await produce();
      // The temp file is created on the first chunk so a source that fails at once leaves no empty file.
      for await (const chunk of chunksOf(source)) {
        fh ??= await store(artifact, openTemp());
        let buf = chunk;
        // Reaching the limit exactly counts as truncated: the API cannot tell us whether more existed.
        if (limit !== undefined && bytes + buf.length >= limit) {
          buf = buf.subarray(0, limit - bytes);
          truncated = true;
        }
        hash.update(buf);
        await store(artifact, writeFully(fh, buf));
        bytes += buf.length;
        if (truncated) break; // leaving the loop destroys a stream source
      }
      fh ??= await store(artifact, openTemp());
      await store(artifact, fh.sync());
      closed = true;
      await store(artifact, fh.close());
      await store(artifact, mkdirDurable(path.dirname(final)));
      await store(artifact, link(temp, final));
      linked = true;
      await store(artifact, fsyncDir(path.dirname(final)));
      await store(artifact, unlink(temp));
    } catch (err) {
      if (fh && !closed) await fh.close().catch(() => undefined);
      // Once linked, the complete file is published; it is recorded as found on the next capture, seal or open.
      if (!linked) await this.keepFailed(artifact, fh ? temp : undefined, err, opts.phase);
      throw err;
    }
    const sha256 = hash.digest('hex');
    await store(artifact, this.appendArtifact('artifact', { artifact, sha256, bytes }, { ...opts.detail, truncated }, opts.phase));
    this.onBytesWritten?.(bytes);
    return { ...this.index.get(artifact)! };
  }

  /** Best effort on a volume that may be full: partial bytes go to interrupted/, never deleted. */
  private async keepFailed(artifact: string, temp: string | undefined, err: unknown, phase: string | undefined): Promise<void> {
    const detail: Record<string, unknown> = { original: artifact, error: errorMessage(err), code: errnoCode(err) };
    let kept: { artifact: string; sha256: string; bytes: number } | undefined;
    if (temp) {
      try {
        kept = await this.moveToInterrupted(temp, artifact);
      } catch {
        // Left in .partial/; the next open moves and records it.
        detail.partial = path.relative(this.dir, temp).split(path.sep).join('/');
      }
    }
    try {
      if (kept) await this.appendArtifact('artifact-failed', kept, detail, phase);
      else await this.custody.append({ action: 'artifact-failed', phase, detail });
    } catch {
      // The caller gets the original error; an unrecorded interrupted/ file is recovered on the next open.
    }
  }

  writeText(artifact: string, text: string, opts?: CaptureOptions): Promise<ArtifactRecord> {
    return this.captureOnce(artifact, () => text, opts);
  }

  writeJSON(artifact: string, value: unknown, opts?: CaptureOptions): Promise<ArtifactRecord> {
    return this.captureOnce(artifact, () => `${JSON.stringify(value, null, 2)}\n`, opts);
  }

  /** A custody-only entry, e.g. 'phase-started' or 'negative-finding'. */
  async record(action: string, detail?: Record<string, unknown>, phase?: string): Promise<CustodyRecord> {
    if (ARTIFACT_ACTIONS.has(action) || action === SEALED_ACTION || action === SIGNED_ACTION) throw new Error(`custody action ${JSON.stringify(action)} is reserved for the store`);
    return store(undefined, this.custody.append({ action, phase, detail }));
  }

  /**
   * Records the signature file written after the seal (signing.ts), once: the one custody record
   * that names a file the sealed manifest cannot list.
   */
  async recordSignature(sha256: string, bytes: number, detail: Record<string, unknown>): Promise<CustodyRecord> {
    const known = this.custody.records().find((r) => r.action === SIGNED_ACTION);
    if (known) return known;
    return store(SIGNATURE_FILE, this.custody.append({ action: SIGNED_ACTION, phase: 'EvidenceSealed', artifact: SIGNATURE_FILE, sha256, bytes, detail }));
  }

  /**
   * Re-hashes every recorded artifact, writes MANIFEST.sha256 once and records 'sealed' once.
   * Idempotent: a repeat call (or one after a crash) reuses an identical manifest.
   */
  async seal(): Promise<SealResult> {
    await Promise.allSettled(this.inflight.values());
    await store(undefined, this.recoverUnrecorded());
    const entries = [...this.index.values()].sort((a, b) => (a.artifact < b.artifact ? -1 : 1));
    let bytes = 0;
    for (const a of entries) {
      let actual: { sha256: string; bytes: number };
      try {
        actual = await hashFile(resolveInside(this.dir, a.artifact));
      } catch (err) {
        throw new Error(`cannot seal ${this.relativeDir}: ${a.artifact} is missing or unreadable: ${errorMessage(err)}`, { cause: err });
      }
      if (actual.sha256 !== a.sha256 || actual.bytes !== a.bytes) {
        throw new Error(`cannot seal ${this.relativeDir}: ${a.artifact} has sha256 ${actual.sha256} (${actual.bytes} bytes) but custody recorded ${a.sha256} (${a.bytes} bytes)`);
      }
      bytes += a.bytes;
    }
    const manifest = entries.map((a) => `${a.sha256}  ${a.artifact}\n`).join('');
    const manifestSHA256 = sha256Hex(manifest);
    await store(MANIFEST_FILE, this.writeManifest(manifest));
    const sealed =
      this.custody.records().find((r) => r.action === SEALED_ACTION) ??
      (await store(MANIFEST_FILE, this.custody.append({ action: SEALED_ACTION, artifact: MANIFEST_FILE, sha256: manifestSHA256, detail: { artifacts: entries.length, bytes } })));
    return { manifestSHA256, artifacts: entries.length, bytes, sealedAt: sealed.time };
  }

  private async writeManifest(content: string): Promise<void> {
    const target = path.join(this.dir, MANIFEST_FILE);
    let existing: string | undefined;
    try {
      existing = await readFile(target, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    if (existing !== undefined) {
      if (existing === content) return;
      throw new Error(`cannot seal ${this.relativeDir}: ${MANIFEST_FILE} already exists with different content (artifacts recorded after sealing?)`);
    }
    await writeOnce(resolveInside(this.dir, `${PARTIAL_DIR}/${MANIFEST_FILE}.${randomBytes(6).toString('hex')}.partial`), target, Buffer.from(content, 'utf8'));
  }

  /** Waits for captures in flight, then releases the custody log. */
  async close(): Promise<void> {
    await Promise.allSettled(this.inflight.values());
    await this.custody.close();
  }
}
