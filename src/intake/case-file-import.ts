// Brings an Investigation's journaled alerts into its case file. The first alert is already there as
// alert.json (from spec.alert); the ones that attached later are copied, verbatim journal lines, into
// write-once artifacts `alerts/<firstSeq>-<lastSeq>.jsonl`, each holding only alerts no earlier
// artifact holds. Called right before the case is sealed; alerts after the seal stay in the journal.
// A case that moved off its derived name (someone else's Investigation held it) takes the alerts
// journaled under that name; the holder takes none.
import type { ArtifactRecord, CaseFile } from '../evidence/store.js';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { sanitizeSegment } from '../evidence/paths.js';
import { POLICY_ANNOTATION } from './investigation-factory.js';
import { journalDir, readJournal, type AlertEntry, type ImportedCheck } from './journal.js';

const ALERTS_ARTIFACT = /^alerts\/(\d+)-(\d+)\.jsonl$/;

/** The highest sequence number already in the case file's alerts/ artifacts (0: none). */
function importedThrough(caseFile: CaseFile): number {
  let through = 0;
  for (const { artifact } of caseFile.artifacts()) {
    const m = ALERTS_ARTIFACT.exec(artifact);
    if (m) through = Math.max(through, Number(m[2]));
  }
  return through;
}

/**
 * Whether the journal can hold alerts for this Investigation: intake attaches alerts only to a case it
 * opened (its ResponsePolicy annotation; isCasefileCase). Any other case skips the journal read, which
 * grows with the journal, not with the case.
 */
export function mayHoldJournaledAlerts(inv: { metadata: { annotations?: Record<string, string> } }): boolean {
  return inv.metadata.annotations?.[POLICY_ANNOTATION] !== undefined;
}

/** Copies the not-yet-imported alerts of namespace/name (from journal files written since `writtenSince`, when given); returns the new artifact, or undefined if there were none. */
export async function importJournaledAlerts(caseFile: CaseFile, evidenceDir: string, namespace: string, name: string, writtenSince?: string): Promise<ArtifactRecord | undefined> {
  const dir = journalDir(evidenceDir);
  const through = importedThrough(caseFile);
  // The journal names cases by their derived name; where each one moved, if it did. Two passes, each
  // parsing only the lines that can concern this case (a storm's journal holds every other case's
  // alerts too), over the files written since `writtenSince` (the pod's creation: no alert about it is
  // older). The first finds the moves and the range (the artifact's name), the second copies: nothing
  // is held in memory. A moved name is its derived name's first characters and 9 more (movedName), so
  // the derived name starts with `stem`.
  const stem = name.replace(/-[0-9a-f]{8}$/, '');
  const movedTo = new Map<string, string>();
  const ranges = new Map<string, [number, number]>();
  for await (const e of readJournal(dir, { only: ['"type":"moved"', `"name":${JSON.stringify(stem).slice(0, -1)}`], writtenSince })) {
    if (e.investigation.namespace !== namespace) continue;
    if (e.type === 'moved') movedTo.set(e.investigation.name, e.to);
    if (e.type !== 'alert' || e.seq <= through) continue;
    const range = ranges.get(e.investigation.name);
    ranges.set(e.investigation.name, range ? [Math.min(range[0], e.seq), Math.max(range[1], e.seq)] : [e.seq, e.seq]);
  }
  const journaledAs = [...(movedTo.has(name) ? [] : [name]), ...[...movedTo].filter(([, to]) => to === name).map(([from]) => from)];
  const found = journaledAs.map((n) => ranges.get(n)).filter((r): r is [number, number] => r !== undefined);
  if (found.length === 0) return undefined; // none, or its derived name moved elsewhere: the holder takes none
  const first = Math.min(...found.map(([a]) => a));
  const last = Math.max(...found.map(([, b]) => b));
  const only = journaledAs.map((n) => `"name":${JSON.stringify(n)}`);
  const wanted = (e: { type: string; seq: number; investigation: { namespace: string; name: string } }): boolean =>
    e.type === 'alert' && e.seq > through && e.seq <= last && e.investigation.namespace === namespace && (movedTo.get(e.investigation.name) ?? e.investigation.name) === name;
  async function* lines(): AsyncGenerator<string> {
    for await (const e of readJournal(dir, { only, writtenSince })) {
      if (wanted(e)) yield `${JSON.stringify(e as AlertEntry)}\n`;
    }
  }
  return caseFile.captureOnce(`alerts/${first}-${last}.jsonl`, () => lines(), { phase: 'EvidenceSealed', detail: { firstSeq: first, lastSeq: last, source: 'alert journal' } });
}

/**
 * For journal compaction: whether an alert is in a sealed case file of its Investigation, any UID
 * (MANIFEST.sha256 present: nothing more is imported into it, and what is there is final). Reads each
 * case's directories once per check.
 */
export function sealedImports(evidenceDir: string): ImportedCheck {
  const ranges = new Map<string, Promise<[number, number][]>>();
  const load = async (namespace: string, name: string): Promise<[number, number][]> => {
    const nsDir = path.join(evidenceDir, sanitizeSegment(namespace));
    const prefix = `${sanitizeSegment(name)}-`;
    const found: [number, number][] = [];
    const dirs = await readdir(nsDir).catch(() => [] as string[]);
    for (const d of dirs) {
      if (!d.startsWith(prefix) || d.length !== prefix.length + 8) continue;
      const files = await readdir(path.join(nsDir, d)).catch(() => [] as string[]);
      if (!files.includes('MANIFEST.sha256')) continue;
      for (const a of await readdir(path.join(nsDir, d, 'alerts')).catch(() => [] as string[])) {
        const m = ALERTS_ARTIFACT.exec(`alerts/${a}`);
        if (m) found.push([Number(m[1]), Number(m[2])]);
      }
    }
    return found;
  };
  return async (entry, name) => {
    const key = `${entry.investigation.namespace}/${name}`;
    let r = ranges.get(key);
    if (!r) ranges.set(key, (r = load(entry.investigation.namespace, name)));
    return (await r).some(([a, b]) => a <= entry.seq && entry.seq <= b);
  };
}
