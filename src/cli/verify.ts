// `casefile verify` and `kubectl casefile verify`: one check, one report, one exit code.
import { verifyCaseDir } from '../evidence/verify-case.js';

/** Verifies a case directory, prints each problem and the verdict; resolves with the exit code (0 ok, 1 failed). */
export async function verifyAndReport(dir: string): Promise<number> {
  const result = await verifyCaseDir(dir);
  for (const problem of result.problems) console.error(`FAIL ${problem}`);
  console.log(result.ok ? `OK ${result.artifacts} artifact(s) verified in ${dir}` : `FAILED ${result.problems.length} problem(s) in ${dir}`);
  return result.ok ? 0 : 1;
}
