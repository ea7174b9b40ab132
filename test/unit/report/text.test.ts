// Markdown escaping of case text: nothing a suspect writes may become a table border, a link, an
// image, raw HTML, emphasis, a heading or a hidden character.
import { describe, expect, test } from '@jest/globals';
import { mdCode, mdText } from '../../../src/report/text.js';

describe('mdText', () => {
  test('escapes what breaks tables, links, HTML and emphasis; keeps ordinary text readable', () => {
    expect(mdText('a | b')).toBe('a \\| b');
    expect(mdText('[click](https://evil.example) ![x](y)')).toBe('\\[click\\](https://evil.example) !\\[x\\](y)');
    expect(mdText('<img src=x onerror=alert(1)>')).toBe('\\<img src=x onerror=alert(1)\\>');
    expect(mdText('&#x202E; *bold* _it_ `code` ~~s~~ \\')).toBe('\\&#x202E; \\*bold\\* \\_it\\_ \\`code\\` \\~\\~s\\~\\~ \\\\');
    expect(mdText('# heading')).toBe('\\# heading');
    expect(mdText('- item')).toBe('\\- item');
    expect(mdText('1. item')).toBe('\\1. item');
    expect(mdText('line\nbreak\r\nhere')).toBe('line break here');
    // The markers' brackets are escaped too: a marker followed by "(url)" must not become a link.
    expect(mdText('invoice\u202Efdp.exe\u0000(https://evil.example)')).toBe('invoice\\[U+202E\\]fdp.exe\\[U+0000\\](https://evil.example)');
    expect(mdText('2026-11-20T10:17:03.000Z pid 7 runs /tmp/kworkerd (deleted)')).toBe('2026-11-20T10:17:03.000Z pid 7 runs /tmp/kworkerd (deleted)');
  });
});

describe('mdCode', () => {
  test('a code span no backtick inside can close, that keeps table cells whole', () => {
    expect(mdCode('live/files.json')).toBe('`live/files.json`');
    expect(mdCode('a`b')).toBe('``a`b``');
    expect(mdCode('`x``')).toBe('``` `x`` ```');
    expect(mdCode('a|b')).toBe('`a\\|b`');
    expect(mdCode('http://evil.example/x\n')).toBe('`http://evil.example/x `');
    expect(mdCode('\u202E')).toBe('`[U+202E]`');
  });
});
