// The tar format helpers of case bundles (src/evidence/tar.ts), byte by byte: the fields every
// header holds (what makes a bundle deterministic), the pax records for long names and big sizes,
// and the header and pax parsers' refusals. Answers to the fifth round of mutation testing
// (docs/testing.md); expected bytes are written out here, not computed with tar.ts.
import { describe, expect, test } from '@jest/globals';
import { BLOCK, checksum, entryHeader, padding, parseHeader, parsePax } from '../../../src/evidence/tar.js';

/** A header field as text, up to its first NUL. */
const text = (h: Buffer, offset: number, length: number) => {
  const raw = h.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
};
/** The raw bytes of a header field, NULs included. */
const raw = (h: Buffer, offset: number, length: number) => h.subarray(offset, offset + length).toString('latin1');
/** The unsigned sum of a header with its checksum field read as eight spaces (POSIX). */
const sumOf = (h: Buffer) => {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum;
};
/** Rewrites a header's checksum after a test changed it. */
const resum = (h: Buffer) => {
  h.write(`${sumOf(h).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
};

describe('tar headers', () => {
  test('a file: every field fixed, in the ustar layout', () => {
    const h = entryHeader({ path: 'case/logs/app.log', type: 'file', size: 1234 });
    expect(h.length).toBe(512);
    expect(BLOCK).toBe(512);
    expect(raw(h, 0, 100)).toBe(`case/logs/app.log${'\0'.repeat(83)}`);
    expect(raw(h, 100, 8)).toBe('0000644\0');
    expect(raw(h, 108, 8)).toBe('0000000\0');
    expect(raw(h, 116, 8)).toBe('0000000\0');
    expect(raw(h, 124, 12)).toBe('00000002322\0');
    expect(raw(h, 136, 12)).toBe('00000000000\0');
    expect(raw(h, 148, 8)).toBe(`${sumOf(h).toString(8).padStart(6, '0')}\0 `);
    expect(raw(h, 156, 1)).toBe('0');
    expect(raw(h, 257, 8)).toBe('ustar\x0000');
    // linkname, uname, gname, devmajor, devminor, prefix and the rest: all zero.
    expect(h.subarray(157, 257).every((b) => b === 0)).toBe(true);
    expect(h.subarray(265).every((b) => b === 0)).toBe(true);
  });

  test('a directory: a trailing slash, type 5, mode 0755, size 0', () => {
    const h = entryHeader({ path: 'case/k8s', type: 'directory', size: 0 });
    expect(text(h, 0, 100)).toBe('case/k8s/');
    expect(raw(h, 100, 8)).toBe('0000755\0');
    expect(raw(h, 124, 12)).toBe('00000000000\0');
    expect(raw(h, 156, 1)).toBe('5');
    expect(parseHeader(h)).toEqual({ name: 'case/k8s/', typeflag: '5', size: 0 });
  });

  test('the checksum counts its own field as spaces and every other byte unsigned', () => {
    const h = Buffer.alloc(512);
    expect(checksum(h)).toBe(8 * 0x20);
    h.fill(0xff, 148, 156);
    expect(checksum(h)).toBe(8 * 0x20);
    h[147] = 0xff;
    h[156] = 0x01;
    h[511] = 0x80;
    expect(checksum(h)).toBe(8 * 0x20 + 0xff + 0x01 + 0x80);
    h[0] = 2;
    expect(checksum(h)).toBe(8 * 0x20 + 0xff + 0x01 + 0x80 + 2);
  });

  test('padding fills to the next block, and adds nothing to a whole block', () => {
    expect(padding(0).length).toBe(0);
    expect(padding(1).length).toBe(511);
    expect(padding(511).length).toBe(1);
    expect(padding(512).length).toBe(0);
    expect(padding(513).length).toBe(511);
    expect(padding(1024).length).toBe(0);
    expect(padding(700).every((b) => b === 0)).toBe(true);
  });

  test('a name of exactly 100 bytes fits the header; 101 bytes need a pax path record', () => {
    const hundred = `case/${'a'.repeat(95)}`;
    const fits = entryHeader({ path: hundred, type: 'file', size: 1 });
    expect(fits.length).toBe(512);
    expect(raw(fits, 0, 100)).toBe(hundred);
    const longer = entryHeader({ path: `${hundred}b`, type: 'file', size: 1 });
    expect(longer.length).toBe(3 * 512);
  });

  test('a directory name that fits only without its slash gets a pax record', () => {
    const ninetyNine = `case/${'d'.repeat(94)}`;
    expect(entryHeader({ path: ninetyNine, type: 'directory', size: 0 }).length).toBe(512);
    const h = entryHeader({ path: `${ninetyNine}e`, type: 'directory', size: 0 });
    expect(h.length).toBe(3 * 512);
    expect(parsePax(h.subarray(512, 1024).subarray(0, parseHeader(h).size))).toEqual(new Map([['path', `${ninetyNine}e/`]]));
  });

  test('name length counts bytes, not characters', () => {
    // 60 two-byte characters: 120 bytes, 60 characters.
    const wide = `case/${'é'.repeat(60)}`;
    const h = entryHeader({ path: wide, type: 'file', size: 3 });
    expect(h.length).toBe(3 * 512);
    const pax = parseHeader(h);
    expect(pax).toEqual({ name: 'PaxHeader', typeflag: 'x', size: Buffer.byteLength(` path=${wide}\n`) + 3 });
    expect(parsePax(h.subarray(512, 512 + pax.size))).toEqual(new Map([['path', wide]]));
  });

  test('a long name: a pax header (type x, 0644, the record as its content, padded) before the ustar header', () => {
    const name = `case/live/files/${'d'.repeat(120)}/dropper`;
    const h = entryHeader({ path: name, type: 'file', size: 5 });
    expect(h.length).toBe(3 * 512);
    const record = ` path=${name}\n`;
    const body = `${Buffer.byteLength(record) + 3}${record}`;
    expect(Buffer.byteLength(body)).toBe(Buffer.byteLength(record) + 3);
    const paxHeader = h.subarray(0, 512);
    expect(text(paxHeader, 0, 100)).toBe('PaxHeader');
    expect(raw(paxHeader, 100, 8)).toBe('0000644\0');
    expect(raw(paxHeader, 124, 12)).toBe(`${Buffer.byteLength(body).toString(8).padStart(11, '0')}\0`);
    expect(raw(paxHeader, 156, 1)).toBe('x');
    expect(parseHeader(paxHeader)).toEqual({ name: 'PaxHeader', typeflag: 'x', size: Buffer.byteLength(body) });
    expect(h.subarray(512, 1024).toString('utf8')).toBe(body + '\0'.repeat(512 - Buffer.byteLength(body)));
    // The ustar header that follows holds the first 50 characters of the name, the real size and type.
    expect(parseHeader(h.subarray(1024))).toEqual({ name: name.slice(0, 50), typeflag: '0', size: 5 });
  });

  test('pax record lengths count their own digits, also where the digit count changes', () => {
    // ` path=<name>\n` is the name plus 7 bytes; the length field adds 3 digits up to 999, then 4.
    for (const [nameBytes, total] of [
      [101, 111],
      [989, 999],
      [990, 1001], // 997 + 3 digits would be 1000, which has 4: so 1001
      [991, 1002],
    ] as const) {
      const name = `case/${'v'.repeat(nameBytes - 5)}`;
      const h = entryHeader({ path: name, type: 'file', size: 0 });
      const size = parseHeader(h).size;
      expect(size).toBe(total);
      expect(h.subarray(512, 512 + size).toString('utf8')).toBe(`${total} path=${name}\n`);
      expect(h.length).toBe(512 + size + padding(size).length + 512);
    }
  });

  test('a size beyond 11 octal digits gets a pax size record, and the ustar field holds the largest it can', () => {
    const max = 0o77777777777;
    const fits = entryHeader({ path: 'case/big', type: 'file', size: max });
    expect(fits.length).toBe(512);
    expect(raw(fits, 124, 12)).toBe('77777777777\0');
    const over = entryHeader({ path: 'case/big', type: 'file', size: max + 1 });
    expect(over.length).toBe(3 * 512);
    const pax = parseHeader(over);
    expect(parsePax(over.subarray(512, 512 + pax.size))).toEqual(new Map([['size', String(max + 1)]]));
    expect(raw(over, 1024 + 124, 12)).toBe('77777777777\0');
    // Both records when both are needed: path first.
    const both = entryHeader({ path: `case/${'n'.repeat(100)}`, type: 'file', size: max + 2 });
    const p = parseHeader(both);
    expect([...parsePax(both.subarray(512, 512 + p.size)).entries()]).toEqual([
      ['path', `case/${'n'.repeat(100)}`],
      ['size', String(max + 2)],
    ]);
  });
});

describe('tar parsers', () => {
  /** A valid ustar header for a file, then `edit` applied and the checksum rewritten. */
  const header = (edit: (h: Buffer) => void = () => undefined) => {
    const h = entryHeader({ path: 'case/a', type: 'file', size: 10 });
    edit(h);
    return resum(h);
  };

  test('reads name, type and size; a prefix field is joined to the name', () => {
    expect(parseHeader(header())).toEqual({ name: 'case/a', typeflag: '0', size: 10 });
    const prefixed = header((h) => h.write('case/deep/er', 345, 'utf8'));
    expect(parseHeader(prefixed)).toEqual({ name: 'case/deep/er/case/a', typeflag: '0', size: 10 });
  });

  test('a name and prefix filling their fields (no NUL) are read whole', () => {
    const name = 'n'.repeat(100);
    const prefix = 'p'.repeat(155);
    const h = header((b) => {
      b.write(name, 0, 100, 'utf8');
      b.write(prefix, 345, 155, 'utf8');
    });
    expect(parseHeader(h).name).toBe(`${prefix}/${name}`);
  });

  test('a size field with spaces around the digits, or empty, is read (empty as 0)', () => {
    expect(parseHeader(header((h) => h.write(' 17 \0\0\0\0\0\0\0\0', 124, 'latin1'))).size).toBe(0o17);
    expect(parseHeader(header((h) => h.fill(0, 124, 136))).size).toBe(0);
    expect(parseHeader(header((h) => h.write('77777777777\0', 124, 'latin1'))).size).toBe(0o77777777777);
  });

  test('refuses a size field with a character that is not an octal digit, wherever it is', () => {
    for (const field of ['8\0', '0000000001x\0', 'x0000000001\0', '-1\0', '1 2\0']) {
      const h = header((b) => {
        b.fill(0, 124, 136);
        b.write(field, 124, 'latin1');
      });
      expect(() => parseHeader(h)).toThrow(`size field ${JSON.stringify(field.replace(/\0$/, '').trim())} is not octal`);
    }
  });

  test('refuses a wrong checksum, also one off by one, and a checksum with spaces around it is read', () => {
    const good = header();
    expect(() => parseHeader(good)).not.toThrow();
    const stored = parseInt(raw(good, 148, 6), 8);
    const off = Buffer.from(good);
    off.write(`${(stored + 1).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(() => parseHeader(off)).toThrow('header checksum mismatch (not a tar archive, or corrupted)');
    const spaced = Buffer.from(good);
    spaced.write(` ${stored.toString(8)}\0`.padEnd(8, ' '), 148, 'latin1');
    expect(parseHeader(spaced)).toEqual({ name: 'case/a', typeflag: '0', size: 10 });
    const changed = Buffer.from(good);
    changed[0] = 'C'.charCodeAt(0);
    expect(() => parseHeader(changed)).toThrow('header checksum mismatch');
  });

  test('refuses a header whose magic is not "ustar"', () => {
    for (const magic of ['ustaR\0', 'ustar ', 'gnutar', '\0\0\0\0\0\0']) {
      expect(() => parseHeader(header((h) => h.write(magic, 257, 'latin1')))).toThrow('not a ustar header');
    }
  });

  test('a pax body holds records of any key, values may hold "=" and spaces, and the last record wins', () => {
    const body = Buffer.from('12 path=a b\n15 comment=x=y\n16 path=case/cc\n', 'utf8');
    expect(parsePax(body)).toEqual(new Map([['path', 'case/cc'], ['comment', 'x=y']]));
    expect(parsePax(Buffer.alloc(0))).toEqual(new Map());
    // A record's length counts multi-byte characters as bytes.
    expect(parsePax(Buffer.from('13 path=é/x\n', 'utf8'))).toEqual(new Map([['path', 'é/x']]));
  });

  test.each<[string, string]>([
    ['no space at all', '11'],
    ['no space in the last record', '9 path=a\n9'],
    ['a length that is not a number', 'ab path=a\n'],
    ['a length of 0', '0 path=a\n'],
    ['a length that stops inside its own digits', '01 path=a\n'],
    ['a length that ends right at the space', '1 path=a\n'],
    ['a length past the end of the body', '11 path=a\n'],
    ['a length of 2^53', `${2 ** 53} p=a\n`],
  ])('refuses a pax header with %s', (_what, body) => {
    expect(() => parsePax(Buffer.from(body, 'utf8'))).toThrow('malformed pax header');
  });

  test('a length that ends exactly at the end of the body is taken', () => {
    expect(parsePax(Buffer.from('9 path=a\n', 'utf8'))).toEqual(new Map([['path', 'a']]));
  });

  test('refuses a pax record without "="', () => {
    expect(() => parsePax(Buffer.from('9 pathxa\n', 'utf8'))).toThrow('malformed pax record');
    expect(() => parsePax(Buffer.from('9 path=a\n9 pathxa\n', 'utf8'))).toThrow('malformed pax record');
  });

  test('a record is read up to its length less the newline, whatever the byte there', () => {
    // The last byte of a record is its newline and is not part of the value.
    expect(parsePax(Buffer.from('9 path=ab', 'utf8'))).toEqual(new Map([['path', 'a']]));
  });
});
