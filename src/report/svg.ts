// The picture report.html opens with: the case's timeline as an inline SVG, one lane per source, a dot
// per entry (its time and text in a <title>, shown on hover without script), and labelled marks for
// the key moments. Every attribute is a number or a fixed name; case text only lands, escaped, in
// <title> and <text> content.
import { escapeHtml } from './text.js';
import type { KeyMoment } from './sections.js';
import type { TimelineEntry, TimelineSourceKind } from './timeline.js';

const LANES: readonly TimelineSourceKind[] = ['alert', 'audit', 'event', 'pod', 'container', 'process', 'file', 'finding', 'custody', 'condition'];
const WIDTH = 1000;
const LEFT = 120;
const RIGHT = 24;
const TOP = 52;
const LANE = 26;
const AXIS = 34;

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

/**
 * The window runs from a little before the earliest key moment or casefile action to the last entry:
 * facts from long before the incident (a pod started weeks ago, old files) would squeeze it into a
 * line, so each lane counts those at its left edge instead.
 */
export function timelineSvg(entries: readonly TimelineEntry[], moments: readonly KeyMoment[]): string {
  const dated = entries.map((e) => ({ e, at: Date.parse(e.time) })).filter((d) => !Number.isNaN(d.at));
  const lanes = LANES.filter((l) => dated.some((d) => d.e.source === l));
  const marked = moments.map((m) => Date.parse(m.time)).filter((at) => !Number.isNaN(at));
  const times = [...dated.map((d) => d.at), ...marked];
  if (times.length === 0) return '<p class="none">Nothing with a recorded time to draw.</p>';
  const earliest = Math.min(...times);
  const end = Math.max(...times);
  const anchors = [...marked, ...dated.filter((d) => d.e.source === 'custody' || d.e.source === 'alert').map((d) => d.at)];
  const first = anchors.length ? Math.min(...anchors) : earliest;
  const length = Math.max(end - first, 1000);
  const start = Math.max(earliest, first - length / 4) - length * 0.02;
  const span = Math.max(end - start, 1000);
  const scale = (WIDTH - LEFT - RIGHT) / (end + span * 0.03 - start);
  const x = (at: number) => Math.round((LEFT + (at - start) * scale) * 10) / 10;
  const height = TOP + lanes.length * LANE + AXIS;
  const out: string[] = [`<svg class="timeline" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="Timeline of the incident">`];
  lanes.forEach((lane, i) => {
    const y = TOP + i * LANE + LANE / 2;
    const inLane = dated.filter((d) => d.e.source === lane);
    const earlier = inLane.filter((d) => d.at < start).length;
    out.push(`<g class="lane ${lane}">`, `<line class="track" x1="${LEFT}" y1="${y}" x2="${WIDTH - RIGHT}" y2="${y}"/>`, `<text class="lane-label" x="${LEFT - 8}" y="${y + 4}">${lane}</text>`);
    if (earlier) out.push(`<text class="earlier" x="${LEFT + 2}" y="${y - 6}">${earlier} earlier</text>`);
    for (const d of inLane.filter((d) => d.at >= start)) {
      out.push(`<circle cx="${x(d.at)}" cy="${y}" r="${d.e.suspicious ? 5 : 3.5}"${d.e.suspicious ? ' class="suspicious"' : ''}><title>${escapeHtml(`${d.e.time} ${d.e.source}: ${d.e.what}`)}</title></circle>`);
    }
    out.push('</g>');
  });
  const bottom = TOP + lanes.length * LANE;
  moments.forEach((m, i) => {
    const mx = x(Date.parse(m.time));
    const ly = 14 + (i % 3) * 13;
    const anchor = mx > WIDTH - 200 ? 'end' : 'start';
    out.push(
      `<g class="moment">`,
      `<line x1="${mx}" y1="${ly + 3}" x2="${mx}" y2="${bottom}"/>`,
      `<text x="${anchor === 'end' ? mx - 4 : mx + 4}" y="${ly}" text-anchor="${anchor}">${escapeHtml(m.label)} ${clock(Date.parse(m.time))}<title>${escapeHtml(`${m.time}: ${m.what}`)}</title></text>`,
      '</g>',
    );
  });
  out.push(`<g class="axis"><line x1="${LEFT}" y1="${bottom + 4}" x2="${WIDTH - RIGHT}" y2="${bottom + 4}"/>`);
  for (let t = 0; t <= 4; t++) {
    const at = start + ((end - start) * t) / 4;
    out.push(`<text x="${x(at)}" y="${bottom + 20}" text-anchor="${t === 0 ? 'start' : t === 4 ? 'end' : 'middle'}">${clock(at)}</text>`);
  }
  out.push(`<text x="${LEFT - 8}" y="${bottom + 20}" text-anchor="end">${new Date(start).toISOString().slice(0, 10)} UTC</text>`, '</g>', '</svg>');
  return out.join('\n');
}
