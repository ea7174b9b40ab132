/** Suspicious regions of /proc/<pid>/maps. */
import { DELETED } from './procfs.js';

export type RegionReason = 'rwx' | 'anonymous-executable' | 'deleted-file-executable';

export interface SuspiciousRegion {
  range: string;
  perms: string;
  path: string;
  reason: RegionReason;
}

/** Kernel-provided executable pseudo-mappings every process has. */
const BENIGN_SPECIAL = new Set(['[vdso]', '[vsyscall]', '[uprobes]']);

/**
 * Classifies one maps line ("range perms offset dev inode  path"; the path may contain spaces).
 * A deleted backing file (including memfd:) outranks rwx, which outranks a plain anonymous region.
 */
export function suspiciousRegion(line: string): SuspiciousRegion | null {
  const m = /^(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line);
  if (!m) return null;
  const [, range, perms, rawPath] = m as unknown as [string, string, string, string];
  const path = rawPath.trimEnd();
  if (!perms.includes('x')) return null;
  let reason: RegionReason | null = null;
  if (path.endsWith(DELETED)) reason = 'deleted-file-executable';
  else if (perms.includes('w')) reason = 'rwx';
  else if (path === '' || (path.startsWith('[') && !BENIGN_SPECIAL.has(path))) reason = 'anonymous-executable';
  return reason === null ? null : { range, perms, path, reason };
}
