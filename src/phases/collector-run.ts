// One collector run, shared by LiveStateCaptured and NodeStateCaptured: a custody record of what is
// about to run, one exec in casefile's own container, its framed output into the case file, then the
// notes, the findings (into status) and one outcome that says what arrived and what did not.
import type { Finding } from '../api/investigation.js';
import { ExecOverflowError, ExecTimeoutError, execStream } from '../kube/exec.js';
import { errorMessage } from '../errors.js';
import { captureCollectorOutput, COLLECTOR_STARTED, collectorBase, type CollectorOutput } from './collector-output.js';
import type { PhaseContext, PhaseOutcome } from './phase.js';

export const COLLECTOR_ENTRY = '/app/dist/live/collector-cli.js';
/**
 * The collector's files walk gets half of the exec's time: the suspect decides how long a walk takes,
 * and everything else (processes, sockets, findings) is written before it starts.
 */
export function walkSeconds(timeoutSeconds: number): number {
  return Math.max(1, Math.floor(timeoutSeconds / 2));
}

/** Findings kept in status (all of them are in the case file and the report). */
export const MAX_STATUS_FINDINGS = 20;

export interface CollectorRun {
  phase: 'LiveStateCaptured' | 'NodeStateCaptured';
  /** Artifact prefix the collector writes under: `live` or `node`. */
  prefix: 'live' | 'node';
  target: { namespace: string; pod: string; container: string };
  command: string[];
  /** Extra facts for the custody record (e.g. the cluster ranges used). */
  custody?: Record<string, unknown>;
  /** Called with the base directory once the output is in, before the outcome is decided. */
  afterCapture?: (base: string) => Promise<void>;
}

export async function runCollector(ctx: PhaseContext, run: CollectorRun): Promise<PhaseOutcome> {
  const base = collectorBase(ctx.caseFile, run.prefix);
  const where = `${run.target.namespace}/${run.target.pod}/${run.target.container}`;
  await ctx.caseFile.record(COLLECTOR_STARTED, { prefix: run.prefix, base, in: where, command: run.command, ...run.custody }, run.phase);
  const exec = await execStream(ctx.kube, run.target, run.command, ctx.spec.evidence.live.timeoutSeconds * 1000);
  let output: CollectorOutput;
  try {
    output = await captureCollectorOutput(exec.stdout, ctx.caseFile, { expectPrefix: run.prefix, base, phase: run.phase, detail: { collector: where } });
  } finally {
    exec.abort();
  }
  const ended = await exec.result.then(
    (r) => ({ ok: r.exitCode === 0, text: r.exitCode === 0 ? 'exited 0' : `exited ${r.exitCode}: ${r.stderrTail.trim().slice(-500)}`, timeout: false, overflow: false }),
    (err: unknown) => ({ ok: false, text: errorMessage(err), timeout: err instanceof ExecTimeoutError, overflow: err instanceof ExecOverflowError }),
  );
  await run.afterCapture?.(base);
  return finish(ctx, output, ended, base, run.phase);
}

/** Notes to the case file, findings to status, one outcome. */
async function finish(
  ctx: PhaseContext,
  output: CollectorOutput,
  ended: { ok: boolean; text: string; timeout: boolean; overflow: boolean },
  base: string,
  phase: 'LiveStateCaptured' | 'NodeStateCaptured',
): Promise<PhaseOutcome> {
  await ctx.caseFile.writeJSON(`${base}/collector-notes.json`, { notes: output.notes, droppedNotes: output.droppedNotes, problems: output.problems, summary: output.summary ?? null, exit: ended.text }, { phase });
  const findings = await collectorFindings(ctx, base);
  // Status stays small: summaries quote attacker-chosen paths; the case file and report keep them whole.
  ctx.status.findings = mergeFindings(ctx.status.findings ?? [], findings.map((f) => ({ ...f, summary: f.summary.slice(0, 500) })));
  const counts = output.summary ? Object.entries(output.summary).map(([k, v]) => `${v} ${k}`).join(', ') : 'no summary';
  const where = `${output.artifacts.length} artifacts under ${base}/`;
  if (ended.timeout) {
    return { status: 'False', reason: 'CollectorTimeout', message: `the collector did not finish within ${ctx.spec.evidence.live.timeoutSeconds} s (spec.evidence.live.timeoutSeconds); kept what it sent: ${where}` };
  }
  if (ended.overflow) {
    return { status: 'False', reason: 'CollectorOutputOverflow', message: `${ended.text}; the collector wrote faster than the case file could take: ${where}` };
  }
  if (!output.complete || !ended.ok || output.problems.length > 0) {
    const why = [!ended.ok ? `collector ${ended.text}` : '', !output.complete ? 'its output ended before the final frame' : '', ...output.problems.slice(0, 3)].filter(Boolean).join('; ');
    return { status: 'False', reason: 'CollectorFailed', message: `${why}; kept what it sent: ${where}` };
  }
  return { status: 'True', reason: 'Captured', message: `${where} (${counts}); ${findings.length} findings` };
}

/** Everything a collector found: written before its files walk (findings.json) and by it (file-findings.json). */
export async function collectorFindings(ctx: Pick<PhaseContext, 'caseFile' | 'log'>, base: string): Promise<Finding[]> {
  return [...(await readFindings(ctx, `${base}/findings.json`)), ...(await readFindings(ctx, `${base}/file-findings.json`))];
}

/** A collector's findings artifact, entries that are not well-formed findings dropped; [] when absent or unreadable. */
export async function readFindings(ctx: Pick<PhaseContext, 'caseFile' | 'log'>, artifact: string): Promise<Finding[]> {
  if (!ctx.caseFile.has(artifact)) return [];
  try {
    const parsed = JSON.parse(await ctx.caseFile.readText(artifact)) as unknown;
    const list = Array.isArray(parsed) ? parsed : ((parsed as { findings?: unknown[] }).findings ?? []);
    return list.filter(isFinding).map((f) => ({ severity: f.severity, kind: f.kind, summary: f.summary, artifact: f.artifact }));
  } catch (err) {
    ctx.log.warn({ artifact, err: errorMessage(err) }, 'findings artifact unreadable');
    return [];
  }
}

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;

function isFinding(f: unknown): f is Finding {
  const x = f as Partial<Finding> | null;
  return !!x && SEVERITIES.includes(x.severity as never) && typeof x.kind === 'string' && typeof x.summary === 'string' && typeof x.artifact === 'string';
}

/** Most severe first, bounded; a repeated run replaces nothing already reported. */
export function mergeFindings(existing: Finding[], added: Finding[], limit = MAX_STATUS_FINDINGS): Finding[] {
  const key = (f: Finding) => `${f.kind}\0${f.summary}`;
  const seen = new Set(existing.map(key));
  const all = [...existing, ...added.filter((f) => isFinding(f) && !seen.has(key(f)))];
  return all.sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity)).slice(0, limit);
}
