// Reading JSON-lines files (the alert journal, the audit store, a case's copied records) on Buffers.
// Through node:readline (a regex split and a string for every line) and a JSON.parse of every line,
// scanning them was the operator's largest CPU cost in an alert storm. Here lines are split with
// Buffer.indexOf, and a caller decodes only the lines that contain what it looks for (`only`).

/** The read size for a whole-file scan (four times a stream's default: fewer reads, each searched whole). */
export const SCAN_CHUNK = 256 * 1024;

/** A line longer than the reader's limit: skipped without being held whole (a torn or hostile file). With `only`, such lines are only counted. */
export const OVERSIZED = null;

export interface LineOptions {
  /** Longer lines come out as OVERSIZED; memory stays bounded by this plus a chunk. */
  maxLine?: number;
  /**
   * Only lines containing one of these come out. The search runs over whole chunks, so a chunk
   * without any costs one native search per needle and no work per line (a case reading a journal
   * of every other case's alerts).
   */
  only?: readonly Buffer[];
  /** Every line read, whether it came out or not (counting costs a native search per line). */
  counts?: { lines: number };
}

/** The lines of `input` without their newline (a last line without one too), as Buffers. */
export async function* bufferLines(input: AsyncIterable<Buffer | string>, opts: LineOptions = {}): AsyncGenerator<Buffer | typeof OVERSIZED> {
  const { only, counts } = opts;
  const maxLine = opts.maxLine ?? Infinity;
  const wanted = (line: Buffer) => !only || containsAny(line, only);
  const firstMatch = (buf: Buffer, from: number): number => {
    let first = -1;
    for (const needle of only ?? []) {
      const at = buf.indexOf(needle, from);
      if (at !== -1 && (first === -1 || at < first)) first = at;
    }
    return first;
  };
  // A line cut by a chunk's end is joined to the next chunk's head alone (the chunk itself is never
  // copied); `skipping`: inside an oversized line, until its newline.
  let rest: Buffer | undefined;
  let skipping = false;
  for await (const piece of input) {
    const buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
    let start = 0;
    if (rest || skipping) {
      const nl = buf.indexOf(10);
      if (nl === -1) {
        if (skipping) continue;
        if (rest!.length + buf.length > maxLine) {
          if (counts) counts.lines++;
          if (!only) yield OVERSIZED;
          rest = undefined;
          skipping = true;
        } else {
          rest = Buffer.concat([rest!, buf]);
        }
        continue;
      }
      if (!skipping) {
        const line = Buffer.concat([rest!, buf.subarray(0, nl)]);
        if (counts) counts.lines++;
        if (line.length > maxLine) {
          if (!only) yield OVERSIZED;
        } else if (wanted(line)) {
          yield line;
        }
      }
      rest = undefined;
      skipping = false;
      start = nl + 1;
    }
    let match = only ? firstMatch(buf, start) : 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      if (counts) counts.lines++;
      if (nl - start > maxLine) {
        if (!only) yield OVERSIZED;
      } else if (!only || (match !== -1 && match < nl)) {
        yield buf.subarray(start, nl);
      }
      start = nl + 1;
      if (only && match !== -1 && match < start) match = firstMatch(buf, start);
      if (match === -1 && !counts) {
        // Nothing more to give in this chunk: straight to its last line, unsplit.
        const last = buf.lastIndexOf(10);
        if (last >= start) start = last + 1;
        break;
      }
    }
    if (start >= buf.length) continue;
    if (buf.length - start > maxLine) {
      if (counts) counts.lines++;
      if (!only) yield OVERSIZED;
      skipping = true;
    } else {
      rest = Buffer.from(buf.subarray(start)); // a copy: the chunk is not kept alive for its tail
    }
  }
  if (rest?.length) {
    if (counts) counts.lines++;
    if (wanted(rest)) yield rest;
  }
}

/** Needles for `only`, encoded once. */
export function needles(terms: readonly string[]): Buffer[] {
  return terms.map((t) => Buffer.from(t));
}

/** Whether `line` contains any of `terms` (a byte search: the line is not decoded). */
function containsAny(line: Buffer, terms: readonly Buffer[]): boolean {
  return terms.some((t) => line.indexOf(t) !== -1);
}
