// The operator's side of the collector protocol (src/live/frames.ts): one exec's framed stdout is
// split into write-once case-file artifacts, pulled frame by frame so the operator never holds an
// artifact in memory and the exec stream is read only as fast as the evidence volume takes it.
import { decodeFrames, type Frame } from '../live/frames.js';
import { evidenceErrorReason, isSanitizedSegment, type CaseFile } from '../evidence/index.js';
import { errorMessage } from '../errors.js';

const MAX_NOTES = 2000;

export interface CollectorOutput {
  /** Artifacts written, as case-file paths. */
  artifacts: string[];
  notes: { level: 'info' | 'warn'; message: string }[];
  /** Notes beyond MAX_NOTES were counted, not kept. */
  droppedNotes: number;
  summary?: Record<string, number>;
  /** Transport and protocol problems (hash mismatch, a refused artifact name, a cut stream). */
  problems: string[];
  /** The collector's final frame arrived: its output is complete. */
  complete: boolean;
}

class StreamCut extends Error {}

/**
 * Reads frames until the stream ends. Artifact names must start with `expectPrefix/`; they are
 * written under `base/` (a retry of the phase gets its own base, so a run never mixes with an
 * interrupted one). The collector's own hash of each artifact is compared with the store's.
 */
export async function captureCollectorOutput(
  input: AsyncIterable<Buffer>,
  caseFile: CaseFile,
  opts: { expectPrefix: string; base: string; phase: string; detail?: Record<string, unknown> },
): Promise<CollectorOutput> {
  const out: CollectorOutput = { artifacts: [], notes: [], droppedNotes: 0, problems: [], complete: false };
  const frames = decodeFrames(input)[Symbol.asyncIterator]();
  const pull = async (): Promise<Frame | undefined> => {
    const r = await frames.next();
    return r.done ? undefined : r.value;
  };
  try {
    for (let frame = await pull(); frame; frame = await pull()) {
      if (frame.t === 'note') {
        if (out.notes.length < MAX_NOTES) out.notes.push({ level: frame.level, message: frame.message });
        else out.droppedNotes++;
      } else if (frame.t === 'done') {
        out.summary = frame.summary;
        out.complete = true;
      } else if (frame.t === 'open') {
        // decodeFrames enforces the grammar: data and close come only inside an open artifact.
        const ended = await captureArtifact(frame.artifact, pull, caseFile, opts, out);
        if (ended) break;
      }
    }
  } catch (err) {
    if (evidenceErrorReason(err)) throw err;
    out.problems.push(`collector output unreadable: ${errorMessage(err)}`);
  }
  return out;
}

/** Captures one artifact; returns true when the stream ended inside it. */
async function captureArtifact(
  name: string,
  pull: () => Promise<Frame | undefined>,
  caseFile: CaseFile,
  opts: { expectPrefix: string; base: string; phase: string; detail?: Record<string, unknown> },
  out: CollectorOutput,
): Promise<boolean> {
  let close: { sha256: string; bytes: number } | undefined;
  let ended = false;
  async function* body(): AsyncGenerator<Buffer> {
    for (;;) {
      const f = await pull();
      if (!f) {
        ended = true;
        throw new StreamCut(`the collector's output ended inside ${name}`);
      }
      if (f.t === 'close') {
        close = f;
        return;
      }
      if (f.t === 'data') yield f.chunk;
    }
  }
  const drain = async () => {
    // The artifact is refused or already in the case: read past its bytes to the next frame.
    for await (const _ of body());
  };

  const dest = artifactPath(name, opts.expectPrefix, opts.base);
  if (!dest) {
    out.problems.push(`refused artifact name ${JSON.stringify(name).slice(0, 200)}: not a sanitised path under ${opts.expectPrefix}/`);
    await drain().catch(() => undefined);
    return ended;
  }
  try {
    const record = await caseFile.captureOnce(dest, () => body(), { phase: opts.phase, detail: opts.detail });
    if (record.reused) {
      out.problems.push(`${dest} was already in the case; the new copy was not written`);
      // The close frame describes the copy that was not written: comparing it with the stored one
      // would report a false mismatch.
      await drain();
      return ended;
    }
    out.artifacts.push(dest);
  } catch (err) {
    if (evidenceErrorReason(err)) throw err;
    // A cut stream leaves the partial bytes in interrupted/ (the store records them), never in place.
    out.problems.push(err instanceof StreamCut ? `${err.message}; the partial copy is kept under interrupted/` : `${dest}: ${errorMessage(err)}`);
    if (!(err instanceof StreamCut) && !close && !ended) await drain().catch(() => undefined);
    return ended;
  }
  const stored = caseFile.get(dest);
  if (close && stored && !(stored.sha256 === close.sha256 && stored.bytes === close.bytes)) {
    out.problems.push(`${dest}: the collector hashed ${close.sha256} (${close.bytes} bytes), the store ${stored.sha256} (${stored.bytes} bytes)`);
  }
  return ended;
}

/** `live/a/b` -> `<base>/a/b`, or undefined if the name is not a sanitised relative path under the prefix. */
export function artifactPath(name: string, expectPrefix: string, base: string): string | undefined {
  if (!name.startsWith(`${expectPrefix}/`)) return undefined;
  const segments = name.slice(expectPrefix.length + 1).split('/');
  if (segments.length === 0 || !segments.every(isSanitizedSegment)) return undefined;
  return [base, ...segments].join('/');
}

/**
 * `live`, or `live/retry-<n>` when an earlier run (interrupted by a restart) already started under
 * `live/`: runs are told apart by their 'collector-started' custody records, so none is overwritten.
 */
export function collectorBase(caseFile: CaseFile, prefix: string): string {
  const runs = caseFile.custodyRecords().filter((r) => r.action === COLLECTOR_STARTED && r.detail?.prefix === prefix).length;
  return runs === 0 ? prefix : `${prefix}/retry-${runs + 1}`;
}

export const COLLECTOR_STARTED = 'collector-started';

/** Where each collector run of the case wrote, in order (from their custody records). */
export function collectorBases(caseFile: CaseFile): string[] {
  return caseFile
    .custodyRecords()
    .filter((r) => r.action === COLLECTOR_STARTED && typeof r.detail?.base === 'string')
    .map((r) => r.detail!.base as string);
}
