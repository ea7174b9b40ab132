import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  ArtifactPathError,
  caseDirName,
  caseRelativeDir,
  isSanitizedSegment,
  mirrorPath,
  resolveInside,
  sanitizeSegment,
  uidPrefix,
} from '../../../src/evidence/paths.js';

/** Inverse of sanitizeSegment for untruncated names. */
function unsanitize(seg: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < seg.length; ) {
    if (seg[i] === '%') {
      bytes.push(parseInt(seg.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(seg.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const ROOT = '/srv/cases/prod/web-12345678';

function expectSafe(seg: string): void {
  expect(seg).toMatch(/^[A-Za-z0-9._%~-]+$/);
  expect(seg.startsWith('.')).toBe(false);
  expect(seg.length).toBeLessThanOrEqual(180);
  expect(isSanitizedSegment(seg)).toBe(true);
  expect(path.dirname(resolveInside(ROOT, seg))).toBe(ROOT);
}

describe('sanitizeSegment', () => {
  it.each([
    ['..', '%2E.'],
    ['.', '%2E'],
    ['.bashrc', '%2Ebashrc'],
    ['a..b', 'a..b'],
    ['../../etc/passwd', '%2E.%2F..%2Fetc%2Fpasswd'],
    ['/', '%2F'],
    ['a\0b', 'a%00b'],
    ['café', 'caf%C3%A9'],
    ['a b%c', 'a%20b%25c'],
    ['app-1_x.log', 'app-1_x.log'],
    ['~', '%7E'],
    ['', '_'],
  ])('%j -> %j', (input, expected) => {
    const out = sanitizeSegment(input);
    expect(out).toBe(expected);
    expectSafe(out);
    if (input !== '') expect(unsanitize(out)).toBe(input);
  });

  it('keeps a/b and a%2Fb distinct', () => {
    expect(sanitizeSegment('a/b')).toBe('a%2Fb');
    expect(sanitizeSegment('a%2Fb')).toBe('a%252Fb');
  });

  it('round-trips emoji and other scripts', () => {
    for (const s of ['💣', '日本語', 'Ωmega', 'tab\there', 'nl\nthere']) {
      const out = sanitizeSegment(s);
      expectSafe(out);
      expect(unsanitize(out)).toBe(s);
    }
  });

  it('truncates long names with a hash suffix, keeping them distinct and escapes whole', () => {
    const a = 'x'.repeat(1000);
    const b = `${'x'.repeat(999)}y`;
    const sa = sanitizeSegment(a);
    const sb = sanitizeSegment(b);
    expect(sa).not.toBe(sb);
    expect(sa.length).toBeLessThanOrEqual(180);
    expect(sa.endsWith(`~${createHash('sha256').update(a).digest('hex').slice(0, 16)}`)).toBe(true);
    expectSafe(sa);
    expectSafe(sb);
    // Multi-byte characters: every cut position must leave whole %XX escapes.
    for (let pad = 0; pad < 3; pad++) {
      const out = sanitizeSegment(`${'a'.repeat(pad)}${'é'.repeat(200)}`);
      expectSafe(out);
      expect(out.split('~')[0]).toMatch(/^a*(%[0-9A-F]{2})*$/);
    }
    expect(sanitizeSegment('y'.repeat(180))).toBe('y'.repeat(180));
  });

  it('is injective and safe over random inputs', () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const alphabet = ['a', 'Z', '0', '.', '/', '%', '~', '-', '_', '\0', ' ', 'é', '💣', '\\', '\n'];
    const inputs = new Set<string>();
    while (inputs.size < 3000) {
      let s = '';
      for (let i = rand(8) + 1; i > 0; i--) s += alphabet[rand(alphabet.length)];
      inputs.add(s);
    }
    const outputs = new Set<string>();
    for (const s of inputs) {
      const out = sanitizeSegment(s);
      expectSafe(out);
      expect(unsanitize(out)).toBe(s);
      outputs.add(out);
    }
    expect(outputs.size).toBe(inputs.size);
  });
});

describe('isSanitizedSegment', () => {
  it.each(['app.log', 'app.previous.log', '%2E.', '%2Ebashrc', 'caf%C3%A9', `${'x'.repeat(163)}~0123456789abcdef`])('accepts %j', (s) => {
    expect(isSanitizedSegment(s)).toBe(true);
  });
  it.each(['', '.', '..', '.hidden', 'a/b', 'a b', '%2e', '%61pp', 'a%2Eb', 'a~b', '%', '%G0', 'x'.repeat(221)])('rejects %j', (s) => {
    expect(isSanitizedSegment(s)).toBe(false);
  });
});

describe('mirrorPath', () => {
  it('keeps .. as a literal name, never traversal', () => {
    const m = mirrorPath('/tmp/../../etc/passwd');
    expect(m).toBe('tmp/%2E./%2E./etc/passwd');
    const abs = resolveInside(ROOT, `live/files/${m}`);
    expect(abs).toBe(`${ROOT}/live/files/tmp/%2E./%2E./etc/passwd`);
  });

  it('drops empty segments and sanitises each', () => {
    expect(mirrorPath('//var///tmp/.x/a b')).toBe('var/tmp/%2Ex/a%20b');
    expect(mirrorPath('/./a')).toBe('%2E/a');
  });

  it('refuses a path that names no file', () => {
    expect(() => mirrorPath('/')).toThrow(ArtifactPathError);
    expect(() => mirrorPath('')).toThrow(ArtifactPathError);
  });
});

describe('resolveInside', () => {
  it.each(['../x', '/etc/passwd', 'a/../../x', '', '.', 'a/..', `../${path.basename(ROOT)}x/y`])('rejects %j', (rel) => {
    expect(() => resolveInside(ROOT, rel)).toThrow(ArtifactPathError);
  });

  it('resolves paths that stay inside', () => {
    expect(resolveInside(ROOT, 'logs/app.log')).toBe(`${ROOT}/logs/app.log`);
    expect(resolveInside(`${ROOT}/`, 'a/../b')).toBe(`${ROOT}/b`);
  });
});

describe('caseDirName', () => {
  it('combines the sanitised name with the first 8 hex of the uid', () => {
    expect(caseDirName('web-shell-0001', '6f1c2d3e-aaaa-bbbb-cccc-000000000000')).toBe('web-shell-0001-6f1c2d3e');
    expect(caseDirName('../x', '6f1c2d3e-aaaa')).toBe('%2E.%2Fx-6f1c2d3e');
    expect(caseDirName('x', '../../..')).not.toContain('/');
  });
});

// Answers to the fourth round's mutation testing of paths.ts (docs/testing.md).
describe('paths edges', () => {
  it('errors are ArtifactPathErrors naming the path, with exact messages', () => {
    const caught = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return err as ArtifactPathError;
      }
      throw new Error('no error');
    };
    const none = caught(() => mirrorPath('//'));
    expect([none.name, none.message, none.artifact]).toEqual(['ArtifactPathError', 'path "//" names no file', '//']);
    const out = caught(() => resolveInside(ROOT, '../x'));
    expect([out.name, out.message, out.artifact]).toEqual(['ArtifactPathError', `"../x" escapes ${ROOT}`, '../x']);
  });

  it('the root itself is not inside, even when the root is /', () => {
    expect(() => resolveInside('/', '.')).toThrow('"." escapes /');
    expect(resolveInside('/', 'x')).toBe('/x');
  });

  it('a cut name keeps a %XX escape that ends right at the cut, and does not cut early for an escape further back', () => {
    const keep = sanitizeSegment(`${'a'.repeat(160)} ${'b'.repeat(100)}`);
    expect(keep.startsWith(`${'a'.repeat(160)}%20~`)).toBe(true);
    const early = sanitizeSegment(` ${'b'.repeat(300)}`);
    expect(early.startsWith(`%20${'b'.repeat(160)}~`)).toBe(true);
    expect(early).toHaveLength(180);
  });

  it('isSanitizedSegment takes 220 characters, not 221, and a ~hash whatever its digits', () => {
    expect(isSanitizedSegment('a'.repeat(220))).toBe(true);
    expect(isSanitizedSegment('a'.repeat(221))).toBe(false);
    expect(isSanitizedSegment('abc~0000000000000041')).toBe(true);
  });

  it('caseRelativeDir and uidPrefix: namespace/name-uid8, dashes dropped and lower case', () => {
    expect(caseRelativeDir('prod', 'inv', '0123456789abcdef')).toBe('prod/inv-01234567');
    expect(uidPrefix('AB-CD-EF01-2345')).toBe('abcdef01');
  });
});
