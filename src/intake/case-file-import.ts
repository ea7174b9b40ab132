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
  // The journal names cases by their derived name; where each one moved, if it did. Each pass parses
  // only the lines that can concern this case (a storm's journal holds every other case's alerts too).
  // Nor the files last written before `writtenSince` (the pod's creation: no alert about it can be older).
  const movedTo = new Map<string, string>();
  for await (const e of readJournal(dir, { only: ['"type":"moved"'], writtenSince })) if (e.type === 'moved' && e.investigation.namespace === namespace) movedTo.set(e.investigation.name, e.to);
  const journaledAs = [...(movedTo.has(name) ? [] : [name]), ...[...movedTo].filter(([, to]) => to === name).map(([from]) => from)];
  if (journaledAs.length === 0) return undefined; // its derived name moved elsewhere: the holder takes none
  const only = journaledAs.map((n) => `"name":${JSON.stringify(n)}`);
  const wanted = (e: { type: string; seq: number; investigation: { namespace: string; name: string } }): boolean =>
    e.type === 'alert' && e.seq > through && e.investigation.namespace === namespace && (movedTo.get(e.investigation.name) ?? e.investigation.name) === name;
  // Two more passes: the artifact's name needs the range, and nothing is held in memory.
  let first = 0;
  let last = 0;
  for await (const e of readJournal(dir, { only, writtenSince })) {
    if (!wanted(e)) continue;
    first ||= e.seq;
    last = Math.max(last, e.seq);
  }
  if (last === 0) return undefined;
  async function* lines(): AsyncGenerator<string> {
    for await (const e of readJournal(dir, { only, writtenSince })) {
      if (wanted(e) && e.seq <= last) yield `${JSON.stringify(e as AlertEntry)}\n`;
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
