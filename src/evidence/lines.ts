// Reading JSON-lines files (the alert journal, the audit store, a case's copied records) on Buffers.
// A case reads the whole journal and the whole audit store; through node:readline (a regex split and
// a string for every line) and a JSON.parse of every line, that was the operator's largest CPU cost
// in an alert storm, and it grew with every case. Here lines are split with Buffer.indexOf, and a
// caller decodes only the lines that contain what it looks for (`containsAny`).

/** A line longer than the reader's limit: skipped without being held whole (a torn or hostile file). */
export const OVERSIZED = null;

export interface LineOptions {
  /** Longer lines come out as OVERSIZED; memory stays bounded by this plus a chunk. */
  maxLine?: number;
  /** Only lines containing one of these (containsAny) come out; the others are only counted. */
  only?: readonly Buffer[];
  /** Every line read, whether it came out or not. */
  counts?: { lines: number };
}

/** The lines of `input` without their newline (a last line without one too), as Buffers. */
export async function* bufferLines(input: AsyncIterable<Buffer | string>, opts: LineOptions = {}): AsyncGenerator<Buffer | typeof OVERSIZED> {
  const maxLine = opts.maxLine ?? Infinity;
  const counts = opts.counts ?? { lines: 0 };
  const only = opts.only;
  let rest: Buffer | undefined;
  let skipping = false; // inside an oversized line, until its newline
  for await (const piece of input) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    rest = undefined;
    let start = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      if (skipping) {
        skipping = false;
      } else {
        counts.lines++;
        if (nl - start > maxLine) yield OVERSIZED;
        else {
          const line = buf.subarray(start, nl);
          if (!only || containsAny(line, only)) yield line;
        }
      }
      start = nl + 1;
    }
    if (start >= buf.length || skipping) continue;
    if (buf.length - start > maxLine) {
      counts.lines++;
      yield OVERSIZED;
      skipping = true;
    } else {
      rest = buf.subarray(start);
    }
  }
  if (rest?.length) {
    counts.lines++;
    if (!only || containsAny(rest, only)) yield rest;
  }
}

/** Needles for containsAny, encoded once. */
export function needles(terms: readonly string[]): Buffer[] {
  return terms.map((t) => Buffer.from(t));
}

/** Whether `line` contains any of `terms` (a byte search: the line is not decoded). */
export function containsAny(line: Buffer, terms: readonly Buffer[]): boolean {
  return terms.some((t) => line.indexOf(t) !== -1);
}
