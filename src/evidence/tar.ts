// The small part of POSIX tar (ustar headers plus pax 'path' and 'size' records) that case bundles
// use: regular files and directories only, every field fixed so the same tree gives the same bytes.

export const BLOCK = 512;
/** Largest size an ustar header's 11 octal digits hold; bigger files get a pax 'size' record. */
const MAX_USTAR_SIZE = 0o77777777777;
const MAX_USTAR_NAME = 100;

export type EntryType = 'file' | 'directory';

export interface TarEntry {
  path: string;
  type: EntryType;
  size: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function ustarHeader(name: string, typeflag: string, mode: number, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, MAX_USTAR_NAME, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii'); // mtime
  h.write(typeflag, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  // uname, gname, devmajor, devminor, prefix: left empty (zero).
  h.write('        ', 148, 'ascii');
  h.write(`${checksum(h).toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

export function checksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum;
}

/** `<length> <key>=<value>\n`, where length counts the whole record, itself included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header block(s) of one entry: a pax header first when the name or size does not fit ustar. */
export function entryHeader(entry: TarEntry): Buffer {
  const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
  let pax = '';
  if (Buffer.byteLength(name) > MAX_USTAR_NAME) pax += paxRecord('path', name);
  if (entry.size > MAX_USTAR_SIZE) pax += paxRecord('size', String(entry.size));
  const header = ustarHeader(Buffer.byteLength(name) > MAX_USTAR_NAME ? name.slice(0, 50) : name, entry.type === 'directory' ? '5' : '0', entry.type === 'directory' ? 0o755 : 0o644, Math.min(entry.size, MAX_USTAR_SIZE));
  if (pax === '') return header;
  const body = Buffer.from(pax, 'utf8');
  return Buffer.concat([ustarHeader('PaxHeader', 'x', 0o644, body.length), body, padding(body.length), header]);
}

export interface ParsedHeader {
  name: string;
  typeflag: string;
  size: number;
}

function field(h: Buffer, offset: number, length: number): string {
  const raw = h.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
}

/** Decodes one ustar header; throws on a bad checksum or a header that is not ustar. */
export function parseHeader(h: Buffer): ParsedHeader {
  const stored = parseInt(field(h, 148, 8).trim(), 8);
  if (stored !== checksum(h)) throw new Error('header checksum mismatch (not a tar archive, or corrupted)');
  if (field(h, 257, 6) !== 'ustar') throw new Error('not a ustar header');
  const sizeField = field(h, 124, 12).trim();
  if (!/^[0-7]*$/.test(sizeField)) throw new Error(`size field ${JSON.stringify(sizeField)} is not octal`);
  const prefix = field(h, 345, 155);
  const name = field(h, 0, 100);
  return { name: prefix ? `${prefix}/${name}` : name, typeflag: String.fromCharCode(h[156]!), size: parseInt(sizeField || '0', 8) };
}

/** The records of a pax extended header. */
export function parsePax(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  for (let off = 0; off < body.length; ) {
    const space = body.indexOf(0x20, off);
    const length = Number(body.subarray(off, space).toString('ascii'));
    if (space === -1 || !Number.isSafeInteger(length) || length <= space - off || off + length > body.length) throw new Error('malformed pax header');
    const record = body.subarray(space + 1, off + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1) throw new Error('malformed pax record');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    off += length;
  }
  return records;
}
