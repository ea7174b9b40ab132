import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { IndicatorScanner, scannedArtifact, type IndicatorLimits } from '../../../src/live/indicators.js';

/** Scans `bytes` as one artifact fed in chunks of `chunk` bytes. */
function scan(bytes: Buffer | string, chunk = 65536, limits?: Partial<IndicatorLimits>, scanner = new IndicatorScanner(limits && { ...new IndicatorScanner().limits, ...limits })) {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
  const sink = scanner.open('a.bin');
  for (let i = 0; i < buf.length; i += chunk) sink.write(buf.subarray(i, i + chunk));
  sink.end();
  return scanner;
}

const values = (s: IndicatorScanner): string[] => s.document().indicators.map((i) => `${i.kind} ${i.value}`);

describe('indicator extraction', () => {
  it('finds URLs, IPv4, IPv6 and domains between binary bytes, sorted by kind then value', () => {
    const text = '\x00\x01https://evil.example.net/p?q=1\x00\xff10.1.2.3\x002001:db8::7\x00zzz.onion\x00Kubernetes.Default.svc.cluster.local\x00';
    expect(values(scan(text))).toEqual([
      'domain evil.example.net',
      'domain kubernetes.default.svc.cluster.local',
      'domain zzz.onion',
      'ipv4 10.1.2.3',
      'ipv6 2001:db8::7',
      'url https://evil.example.net/p?q=1',
    ]);
  });

  it('a value across a chunk boundary is seen whole, at its offset in the artifact', () => {
    const text = `${'\x00'.repeat(10)}see http://c2.example.com/beacon and 192.168.7.9 then`;
    for (const chunk of [1, 2, 3, 7, 16, 25, 33, 1000]) {
      const doc = scan(text, chunk).document();
      expect({ chunk, found: doc.indicators.map((i) => [i.kind, i.value, i.seen]) }).toEqual({
        chunk,
        found: [
          ['domain', 'c2.example.com', [{ artifact: 'a.bin', offset: 21 }]],
          ['ipv4', '192.168.7.9', [{ artifact: 'a.bin', offset: 47 }]],
          ['url', 'http://c2.example.com/beacon', [{ artifact: 'a.bin', offset: 14 }]],
        ],
      });
    }
  });

  it('is not fooled by look-alikes: versions, file names, C++ scopes, out-of-range octets', () => {
    const text = ['libc.so.6', 'busybox-1.35.0', 'v1.2.3.4', '1.2.3.4.5', '300.1.1.1', 'std::vector', 'a::b', '::1', 'configure.ac', 'run.sh', 'x.zip', 'main.py', 'a.b'].join('\x00');
    expect(values(scan(text))).toEqual([]);
  });

  it('trailing punctuation is not part of a URL; overlong URLs are cut at maxValueLength', () => {
    const long = `http://x.example.com/${'a'.repeat(1000)}`;
    const s = scan(`go to http://x.example.com/a. \x00${long}\x00`, 64, { maxValueLength: 100 });
    const urls = s.document().indicators.filter((i) => i.kind === 'url').map((i) => i.value);
    expect(urls).toEqual(['http://x.example.com/a', long.slice(0, 100)]);
  });

  it('bounds the number of indicators and of sightings, and says it cut', () => {
    const many = Array.from({ length: 50 }, (_, i) => `10.0.0.${i}`).join(' ');
    const s = scan(`${many} ${'10.0.0.1 '.repeat(20)}`, 7, { maxIndicators: 10, maxSeenPerIndicator: 3 });
    const doc = s.document();
    expect(doc.indicators).toHaveLength(10);
    expect(doc.truncated).toBe(true);
    expect(Math.max(...doc.indicators.map((i) => i.seen.length))).toBe(3);
    expect(s.losses).toEqual({ indicators: 40, sightings: 18 });
  });

  it('binary garbage and one endless token do not grow memory or hang', () => {
    const garbage = randomBytes(4 * 1024 * 1024);
    const s = scan(garbage);
    expect(s.document().indicators.length).toBeLessThanOrEqual(s.limits.maxIndicators);
    // 2 MiB of token characters: scanned in maxTokenBytes pieces, never buffered whole.
    const endless = Buffer.alloc(2 * 1024 * 1024, 'a.b');
    expect(scan(endless, 65536, { maxTokenBytes: 4096 }).scannedBytes).toBe(endless.length);
  });

  it('the same bytes give the same document', () => {
    const text = 'b.example.com a.example.com 8.8.8.8 1.1.1.1 http://z.example.org http://a.example.org';
    expect(JSON.stringify(scan(text, 5).document())).toBe(JSON.stringify(scan(text, 64).document()));
  });

  it('scans memory copies and dropped files only', () => {
    expect(scannedArtifact('live/memory/7/00400000-00401000.bin')).toBe(true);
    expect(scannedArtifact('live/memory/7/regions.json')).toBe(false);
    expect(scannedArtifact('live/files/tmp/x.sh')).toBe(true);
    expect(scannedArtifact('live/processes.json')).toBe(false);
  });
});
