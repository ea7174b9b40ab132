import { createHash } from 'node:crypto';
import path from 'node:path';

/** Longest segment sanitizeSegment produces; leaves room under NAME_MAX (255) for suffixes. */
export const MAX_SEGMENT_CHARS = 180;
/**
 * Longest segment accepted in an artifact path: a sanitised name plus a caller suffix such as
 * '.previous.log', still leaving room for the store's own '.<tag>.partial' / '.<timestamp>-<n>'.
 */
export const MAX_ARTIFACT_SEGMENT_CHARS = 220;

/** Thrown when a path is not a safe relative artifact path inside the case directory. */
export class ArtifactPathError extends Error {
  constructor(
    message: string,
    readonly artifact: string,
  ) {
    super(message);
    this.name = 'ArtifactPathError';
  }
}

const PLAIN_BYTE = /^[A-Za-z0-9._-]$/;
const DOT = 0x2e;

function isPlainByte(byte: number): boolean {
  return PLAIN_BYTE.test(String.fromCharCode(byte));
}

function hex2(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/**
 * One path segment, reversible: plain bytes kept, every other UTF-8 byte (and a leading '.')
 * percent-encoded, so '.', '..', hidden names and separators cannot occur.
 * Over-long results are cut and suffixed '~<16 hex of sha256(name)>'; '~' never appears
 * otherwise, so a cut name cannot collide with an uncut one.
 */
export function sanitizeSegment(name: string): string {
  if (name === '') return '_';
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    out += isPlainByte(byte) && !(out === '' && byte === DOT) ? String.fromCharCode(byte) : hex2(byte);
  }
  if (out.length <= MAX_SEGMENT_CHARS) return out;
  const suffix = `~${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 16)}`;
  let cut = MAX_SEGMENT_CHARS - suffix.length;
  // Never split a %XX escape: the kept prefix must stay decodable.
  const pct = out.lastIndexOf('%', cut - 1);
  if (pct !== -1 && pct > cut - 3) cut = pct;
  return out.slice(0, cut) + suffix;
}

const TOKEN = /[A-Za-z0-9._-]|%[0-9A-F]{2}|~[0-9a-f]{16}/y;

/**
 * True if `segment` is in the form sanitizeSegment produces (canonical escapes, no leading
 * '.', optional '~hash' marker), possibly with plain suffixes appended (e.g. 'app.previous.log').
 * sanitizeSegment itself is not idempotent ('%' re-encodes), so it cannot serve as the check.
 */
export function isSanitizedSegment(segment: string): boolean {
  if (segment === '' || segment.length > MAX_ARTIFACT_SEGMENT_CHARS || segment.startsWith('.')) return false;
  for (let i = 0; i < segment.length; ) {
    TOKEN.lastIndex = i;
    const token = TOKEN.exec(segment)?.[0];
    if (token === undefined) return false;
    if (token[0] === '%') {
      const byte = parseInt(token.slice(1), 16);
      if (isPlainByte(byte) && !(i === 0 && byte === DOT)) return false;
    }
    i += token.length;
  }
  return true;
}

/** Relative mirror of an absolute path from inside a container: each segment sanitised, '..' kept as a literal name. */
export function mirrorPath(absPath: string): string {
  const segments = absPath.split('/').filter((s) => s !== '');
  if (segments.length === 0) throw new ArtifactPathError(`path ${JSON.stringify(absPath)} names no file`, absPath);
  return segments.map(sanitizeSegment).join('/');
}

/** Resolve `rel` against `root`; throws unless the result is strictly inside root. */
export function resolveInside(root: string, rel: string): string {
  const base = path.resolve(root);
  const resolved = path.resolve(base, rel);
  const prefix = base.endsWith(path.sep) ? base : base + path.sep;
  if (!resolved.startsWith(prefix) || resolved.length === prefix.length) {
    throw new ArtifactPathError(`${JSON.stringify(rel)} escapes ${base}`, rel);
  }
  return resolved;
}

/** Where a case lives under the evidence root: `<namespace>/<name>-<uid8>`, every segment sanitised. */
export function caseRelativeDir(namespace: string, name: string, uid: string): string {
  return `${sanitizeSegment(namespace)}/${caseDirName(name, uid)}`;
}

/** `<name>-<uid8>`; the uid part is sanitised too (a no-op for real UIDs) so no input can add a separator. */
export function caseDirName(name: string, uid: string): string {
  return `${sanitizeSegment(name)}-${sanitizeSegment(uidPrefix(uid))}`;
}

/** The first 8 hex digits of a UID: short names (labels, policies, directories) unique to one object. */
export function uidPrefix(uid: string): string {
  return uid.replace(/-/g, '').slice(0, 8).toLowerCase();
}
