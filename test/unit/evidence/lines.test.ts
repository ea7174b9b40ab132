import { describe, expect, it } from '@jest/globals';
import { bufferLines, needles, OVERSIZED, type LineOptions } from '../../../src/evidence/lines.js';

async function* chunks(text: string, size: number): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function lines(text: string, size: number, opts?: LineOptions): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for await (const line of bufferLines(chunks(text, size), opts)) out.push(line === OVERSIZED ? null : line.toString('utf8'));
  return out;
}

describe('bufferLines', () => {
  it('gives the same lines whatever the chunk size, a multi-byte character cut between chunks included', async () => {
    const text = 'first\n{"name":"ü-日本"}\n\nlast without newline';
    for (const size of [1, 2, 3, 7, 64]) {
      expect(await lines(text, size)).toEqual(['first', '{"name":"ü-日本"}', '', 'last without newline']);
    }
  });

  it('gives a line longer than maxLine as OVERSIZED once, and the lines after it whole', async () => {
    const text = `a\n${'x'.repeat(50)}\nb\n${'y'.repeat(50)}`;
    for (const size of [4, 16, 200]) {
      const counts = { lines: 0 };
      expect(await lines(text, size, { maxLine: 10, counts })).toEqual(['a', null, 'b', null]);
      expect(counts.lines).toBe(4);
    }
  });

  it('with only, gives just the lines containing a needle and counts every line', async () => {
    const counts = { lines: 0 };
    const text = '{"name":"web-0"}\n{"name":"db-0"}\n{"user":"system:serviceaccount:shop:web"}\n{"name":"web-01"}\n';
    const only = needles(['"name":"web-0"', '"system:serviceaccount:shop:web"']);
    expect(await lines(text, 5, { only, counts })).toEqual(['{"name":"web-0"}', '{"user":"system:serviceaccount:shop:web"}']);
    expect(counts.lines).toBe(4);
  });

  it('with only, the same lines whatever the chunk size, with or without counting, a needle cut between chunks included', async () => {
    const text = Array.from({ length: 40 }, (_, i) => (i % 7 === 3 ? `{"seq":${i},"name":"web-0","pad":"${'p'.repeat(i)}"}` : `{"seq":${i},"name":"db-${i}"}`)).join('\n') + '\n{"name":"web-0"}';
    const expected = text.split('\n').filter((l) => l.includes('"name":"web-0"'));
    for (const size of [1, 5, 13, 64, 4096]) {
      expect(await lines(text, size, { only: needles(['"name":"web-0"']) })).toEqual(expected);
      const counts = { lines: 0 };
      expect(await lines(text, size, { only: needles(['"name":"web-0"']), counts })).toEqual(expected);
      expect(counts.lines).toBe(41);
    }
  });

  it('with only, a line longer than maxLine is counted, never given, even when it holds a needle', async () => {
    const text = `{"name":"web-0","x":"${'x'.repeat(100)}"}\n{"name":"web-0"}\n`;
    for (const size of [8, 1000]) {
      const counts = { lines: 0 };
      expect(await lines(text, size, { only: needles(['"name":"web-0"']), maxLine: 50, counts })).toEqual(['{"name":"web-0"}']);
      expect(counts.lines).toBe(2);
    }
  });
});
