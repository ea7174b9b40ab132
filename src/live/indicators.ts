/**
 * Indicators (URLs, IPv4 and IPv6 addresses, domain-like strings) found in the bytes of artifacts
 * as they stream: process memory and dropped files. The suspect chooses those bytes, so everything
 * is bounded: the token buffer, the length of a value, the number of values and of sightings each.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Findings } from './findings.js';
import type { Run } from './run.js';

export type IndicatorKind = 'url' | 'ipv4' | 'ipv6' | 'domain';

export interface Sighting {
  artifact: string;
  /** Byte offset of the value in the artifact (for a memory region: its start address plus this). */
  offset?: number;
}

export interface Indicator {
  kind: IndicatorKind;
  value: string;
  seen: Sighting[];
}

export interface IndicatorLimits {
  maxIndicators: number;
  maxSeenPerIndicator: number;
  /** Longer URLs are kept up to here. */
  maxValueLength: number;
  /** An unbroken run of token characters is scanned in pieces of this size (a value across a cut is lost). */
  maxTokenBytes: number;
}

export const DEFAULT_INDICATOR_LIMITS: IndicatorLimits = { maxIndicators: 5000, maxSeenPerIndicator: 10, maxValueLength: 512, maxTokenBytes: 8192 };

export interface IndicatorsDocument {
  indicators: Indicator[];
  truncated: boolean;
  limits: IndicatorLimits;
}

/** Bytes that may be part of a URL, an address or a domain; every other byte ends a token. */
const TOKEN = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@$&+=%') TOKEN[c.charCodeAt(0)] = 1;
const DOT = 0x2e;
const COLON = 0x3a;
/** The shortest value worth a regex pass ("a.io"). */
const MIN_TOKEN = 4;

const URL_RE = /(?:https?|ftps?|wss?):\/\/[A-Za-z0-9[][A-Za-z0-9\-._~:/?#[\]@$&+=%]*/gi;
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`(?<![0-9A-Za-z.])(?:${OCTET}\\.){3}${OCTET}(?![0-9A-Za-z]|\\.[0-9])`, 'g');
const IPV6_RE = /(?<![0-9A-Za-z:.])[0-9A-Fa-f:]{6,39}(?![0-9A-Za-z:.])/g;
const DOMAIN_RE = /(?<![0-9A-Za-z.\-_])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![0-9A-Za-z\-_]|\.[A-Za-z0-9])/g;

/**
 * Top-level domains a domain-like string must end in. Common ones only: TLDs that are also file
 * extensions seen in binaries and scripts (so, sh, py, pl, md, rs, cc, in, am, ac, ml, zip, mov, is, ps)
 * are left out, so "libc.so" or "configure.ac" is not reported.
 */
const TLDS = new Set(
  (
    'com net org edu gov mil int info biz io co me tv ws xyz top online site club pro app dev cloud tech store shop live link click work ' +
    'onion ru su cn ua by kz de fr uk nl eu be ch at it es se no fi dk cz sk hu ro bg gr pt ie us ca au nz jp kr br ar mx za tr ir vn id th my sg hk tw ph pk ng ke ' +
    'local internal'
  ).split(' '),
);

const KIND_ORDER: IndicatorKind[] = ['domain', 'ipv4', 'ipv6', 'url'];

/** Collects indicators across artifacts; one `open` per artifact, fed its bytes in order. */
export class IndicatorScanner {
  private readonly found = new Map<string, Indicator>();
  private dropped = 0;
  private sightingsDropped = 0;
  scannedArtifacts = 0;
  scannedBytes = 0;

  constructor(readonly limits: IndicatorLimits = DEFAULT_INDICATOR_LIMITS) {}

  /** A sink for one artifact's bytes. A token spanning two chunks is seen whole. */
  open(artifact: string): { write(chunk: Buffer): void; end(): void } {
    this.scannedArtifacts++;
    const token = Buffer.alloc(this.limits.maxTokenBytes);
    let length = 0;
    let start = 0;
    let offset = 0;
    let promising = false;
    const flush = (): void => {
      if (length >= MIN_TOKEN && promising) this.scanToken(artifact, token.toString('latin1', 0, length), start);
      length = 0;
      promising = false;
    };
    return {
      write: (chunk: Buffer): void => {
        this.scannedBytes += chunk.length;
        for (let i = 0; i < chunk.length; i++) {
          const b = chunk[i]!;
          if (TOKEN[b] === 0) {
            if (length > 0) flush();
            continue;
          }
          if (length === token.length) flush();
          if (length === 0) start = offset + i;
          token[length++] = b;
          if (b === DOT || b === COLON) promising = true;
        }
        offset += chunk.length;
      },
      end: flush,
    };
  }

  private scanToken(artifact: string, text: string, base: number): void {
    for (const m of text.matchAll(URL_RE)) {
      const value = m[0].replace(/[.:?#&]+$/, '').slice(0, this.limits.maxValueLength);
      this.add('url', value, artifact, base + m.index);
    }
    for (const m of text.matchAll(IPV4_RE)) if (isIPv4(m[0])) this.add('ipv4', m[0], artifact, base + m.index);
    for (const m of text.matchAll(IPV6_RE)) {
      // "::1" and "a::b" are everywhere in binaries (C++ scopes, hex dumps): three colons at least.
      if ((m[0].match(/:/g) ?? []).length >= 3 && isIPv6(m[0])) this.add('ipv6', m[0].toLowerCase(), artifact, base + m.index);
    }
    for (const m of text.matchAll(DOMAIN_RE)) {
      if (m[0].length <= 253 && TLDS.has(m[1]!.toLowerCase())) this.add('domain', m[0].toLowerCase(), artifact, base + m.index);
    }
  }

  private add(kind: IndicatorKind, value: string, artifact: string, offset: number): void {
    const key = `${kind}\0${value}`;
    let indicator = this.found.get(key);
    if (indicator === undefined) {
      if (this.found.size >= this.limits.maxIndicators) {
        this.dropped++;
        return;
      }
      indicator = { kind, value, seen: [] };
      this.found.set(key, indicator);
    }
    if (indicator.seen.length < this.limits.maxSeenPerIndicator) indicator.seen.push({ artifact, offset });
    else this.sightingsDropped++;
  }

  /** Values not kept (the indicator cap) and sightings not kept (the per-indicator cap). */
  get losses(): { indicators: number; sightings: number } {
    return { indicators: this.dropped, sightings: this.sightingsDropped };
  }

  countByKind(): Record<IndicatorKind, number> {
    const counts: Record<IndicatorKind, number> = { url: 0, ipv4: 0, ipv6: 0, domain: 0 };
    for (const i of this.found.values()) counts[i.kind]++;
    return counts;
  }

  /** Sorted by kind, then value (code units): the same bytes give the same document. */
  document(): IndicatorsDocument {
    const indicators = [...this.found.values()].sort(
      (a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0),
    );
    return { indicators, truncated: this.dropped > 0 || this.sightingsDropped > 0, limits: this.limits };
  }
}

/** Artifacts whose bytes are scanned: copied memory regions and dropped files. */
export function scannedArtifact(name: string): boolean {
  return (name.startsWith('live/memory/') && name.endsWith('.bin')) || name.startsWith('live/files/');
}

/** Writes live/indicators.json, a note for what was scanned and any cap hit, and one finding when something was found. */
export async function emitIndicators(scanner: IndicatorScanner, run: Run, findings: Findings): Promise<void> {
  const artifact = 'live/indicators.json';
  const doc = scanner.document();
  await run.artifact(artifact, `${JSON.stringify(doc, null, 1)}\n`);
  run.count('indicators', doc.indicators.length);
  await run.note('info', `indicators: ${doc.indicators.length} found in ${scanner.scannedArtifacts} scanned artifact(s) (${scanner.scannedBytes} bytes of memory copies and dropped files)`);
  const { indicators: lost, sightings } = scanner.losses;
  if (lost > 0) await run.note('warn', `${artifact}: ${lost} more indicator value(s) past the cap of ${scanner.limits.maxIndicators} are not listed`);
  if (sightings > 0) await run.note('info', `${artifact}: ${sightings} more sighting(s) past ${scanner.limits.maxSeenPerIndicator} per indicator are not listed`);
  if (doc.indicators.length === 0) return;
  const counts = scanner.countByKind();
  const parts = (['url', 'ipv4', 'ipv6', 'domain'] as const).filter((k) => counts[k] > 0).map((k) => `${counts[k]} ${k}`);
  const urls = doc.indicators.filter((i) => i.kind === 'url').slice(0, 3).map((i) => i.value);
  findings.add({
    severity: 'low',
    kind: 'indicators-found',
    summary: `${doc.indicators.length} indicator(s) (${parts.join(', ')}) found in process memory and dropped files${urls.length > 0 ? `, among them ${urls.join(', ')}` : ''}; most may be benign, each is listed with where it was seen.`,
    artifact,
  });
}
