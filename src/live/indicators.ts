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

/** Runs a global regex over `text` with exec (matchAll allocates an iterator and a regex copy per call: too slow per token). */
function eachMatch(re: RegExp, text: string, onMatch: (value: string, at: number, group: string) => unknown): void {
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) onMatch(m[0], m.index, m[1] ?? '');
}

/** Collects indicators across artifacts; one `open` per artifact, fed its bytes in order. */
export class IndicatorScanner {
  private readonly found: Record<IndicatorKind, Map<string, Indicator>> = { domain: new Map(), ipv4: new Map(), ipv6: new Map(), url: new Map() };
  private size = 0;
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
    let dots = 0;
    let colons = 0;
    const flush = (): void => {
      if (length >= MIN_TOKEN && dots + colons > 0) this.scanToken(artifact, token.toString('latin1', 0, length), start, dots, colons);
      length = 0;
      dots = 0;
      colons = 0;
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
          if (b === DOT) dots++;
          else if (b === COLON) colons++;
        }
        offset += chunk.length;
      },
      end: flush,
    };
  }

  /** Each pattern runs only on a token that can hold it (the scan's cost is in the regexes). */
  private scanToken(artifact: string, text: string, base: number, dots: number, colons: number): void {
    if (colons > 0 && text.includes('://')) {
      eachMatch(URL_RE, text, (value, at) => this.add('url', value.replace(/[.:?#&]+$/, '').slice(0, this.limits.maxValueLength), artifact, base + at));
    }
    if (dots >= 3) eachMatch(IPV4_RE, text, (value, at) => isIPv4(value) && this.add('ipv4', value, artifact, base + at));
    // "::1" and "a::b" are everywhere in binaries (C++ scopes, hex dumps): three colons at least.
    if (colons >= 3) eachMatch(IPV6_RE, text, (value, at) => (value.split(':').length > 3 && isIPv6(value) ? this.add('ipv6', value.toLowerCase(), artifact, base + at) : undefined));
    if (dots > 0) {
      eachMatch(DOMAIN_RE, text, (value, at, tld) => (value.length <= 253 && TLDS.has(tld.toLowerCase()) ? this.add('domain', value.toLowerCase(), artifact, base + at) : undefined));
    }
  }

  private add(kind: IndicatorKind, value: string, artifact: string, offset: number): void {
    const ofKind = this.found[kind];
    let indicator = ofKind.get(value);
    if (indicator === undefined) {
      if (this.size >= this.limits.maxIndicators) {
        this.dropped++;
        return;
      }
      indicator = { kind, value, seen: [] };
      ofKind.set(value, indicator);
      this.size++;
    }
    if (indicator.seen.length < this.limits.maxSeenPerIndicator) indicator.seen.push({ artifact, offset });
    else this.sightingsDropped++;
  }

  /** Values not kept (the indicator cap) and sightings not kept (the per-indicator cap). */
  get losses(): { indicators: number; sightings: number } {
    return { indicators: this.dropped, sightings: this.sightingsDropped };
  }

  countByKind(): Record<IndicatorKind, number> {
    return { url: this.found.url.size, ipv4: this.found.ipv4.size, ipv6: this.found.ipv6.size, domain: this.found.domain.size };
  }

  /** Sorted by kind, then value (code units): the same bytes give the same document. */
  document(): IndicatorsDocument {
    const indicators = KIND_ORDER.flatMap((kind) => [...this.found[kind].values()].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0)));
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
