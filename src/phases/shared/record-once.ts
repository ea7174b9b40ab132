// A custody note written once, however often a phase (or its release) runs.
import type { ReleaseContext } from '../phase.js';

export async function recordOnce(ctx: ReleaseContext, phase: string, action: string, detail: Record<string, unknown>): Promise<void> {
  const key = JSON.stringify(detail);
  if (ctx.caseFile.custodyRecords().some((r) => r.action === action && r.phase === phase && JSON.stringify(r.detail) === key)) return;
  await ctx.caseFile.record(action, detail, phase);
}
