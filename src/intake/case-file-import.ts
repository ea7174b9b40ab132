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
import type { JournalIndex } from './journal-index.js';
import type { ImportedCheck } from './journal-format.js';

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

/** Copies the not-yet-imported alerts of namespace/name; returns the new artifact, or undefined if there were none. */
export async function importJournaledAlerts(caseFile: CaseFile, journal: JournalIndex, namespace: string, name: string): Promise<ArtifactRecord | undefined> {
  await journal.refresh();
  // The journal names cases by their derived name; where each one moved, if it did.
  const movedTo = new Map(journal.moves(namespace).map((m) => [m.investigation.name, m.to]));
  const journaledAs = [...(movedTo.has(name) ? [] : [name]), ...[...movedTo].filter(([, to]) => to === name).map(([from]) => from)].map((n) => ({ namespace, name: n }));
  const range = journal.range(journaledAs, importedThrough(caseFile));
  if (!range) return undefined; // none new, or its derived name moved elsewhere: the holder takes none
  const { first, last } = range;
  async function* lines(): AsyncGenerator<string> {
    for await (const e of journal.alerts(journaledAs, first, last)) yield `${JSON.stringify(e)}\n`;
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
