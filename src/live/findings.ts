import { jsonArray } from './json-stream.js';
import type { Run } from './run.js';

/** Findings: what a responder should look at first, each pointing at the artifact that proves it. */

export type Severity = 'critical' | 'high' | 'medium' | 'low';

export interface Finding {
  severity: Severity;
  kind: string;
  summary: string;
  artifact: string;
  pid?: number;
}

const RANK: Record<Severity, number> = { critical: 0, high: 1, medium: 2, low: 3 };

const MAX_FINDINGS = 100;

/** Keeps the `max` most severe findings (first come first within a severity); counts every one. */
export class Findings {
  private readonly kept: Finding[] = [];
  total = 0;

  constructor(private readonly max = MAX_FINDINGS) {}

  add(finding: Finding): void {
    this.total++;
    // Insert after every finding of equal or higher severity: stable, most severe first.
    let i = this.kept.length;
    while (i > 0 && RANK[this.kept[i - 1]!.severity] > RANK[finding.severity]) i--;
    if (i >= this.max) return;
    this.kept.splice(i, 0, finding);
    if (this.kept.length > this.max) this.kept.pop();
  }

  list(): readonly Finding[] {
    return this.kept;
  }

  get truncated(): boolean {
    return this.total > this.kept.length;
  }
}

/** Writes the findings artifact, with a note when it is truncated or empty (a negative finding is still a finding). */
export async function emitFindings(artifact: string, findings: Findings, run: Run): Promise<void> {
  run.count('findings', findings.total);
  await run.artifact(artifact, jsonArray(findings.list()));
  if (findings.truncated) await run.note('warn', `${artifact} keeps the ${findings.list().length} most severe of ${findings.total} findings`);
  if (findings.total === 0) await run.note('info', `no findings (${artifact} is empty)`);
}
