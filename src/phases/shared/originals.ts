// Objects as found before containment changed them, saved in the case file under names no two objects
// share: containment/originals/<Kind>/<namespace or _cluster>/<name>.<uid>.yaml. The name is only a
// locator: a long name is shortened with a hash, so what an original is (kind, namespace, name) is
// always read back from the saved object itself, never from its file name.
import { parse } from 'yaml';
import { sanitizeSegment } from '../../evidence/paths.js';
import type { ReleaseContext } from '../phase.js';

export const ORIGINALS_ROOT = 'containment/originals/';

export function originalArtifact(kind: string, namespace: string | undefined, name: string, uid: string): string {
  return `${ORIGINALS_ROOT}${sanitizeSegment(kind)}/${namespace ? sanitizeSegment(namespace) : '_cluster'}/${sanitizeSegment(`${name}.${uid}`)}.yaml`;
}

export interface SavedObject<T> {
  artifact: string;
  object: T & { kind?: string; metadata?: { name?: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string } };
}

/** Where case files opened before this layout kept originals (same content, lossy file names). */
const LEGACY_DIRS: Record<string, string> = {
  NetworkPolicy: `${ORIGINALS_ROOT}networkpolicies/`,
  RoleBinding: `${ORIGINALS_ROOT}rbac/`,
  ClusterRoleBinding: `${ORIGINALS_ROOT}rbac/`,
};

/** Every saved original of `kind`, parsed, in artifact order; what it is comes from its content. */
export async function savedOriginals<T>(ctx: ReleaseContext, kind: string): Promise<SavedObject<T>[]> {
  const prefixes = [`${ORIGINALS_ROOT}${sanitizeSegment(kind)}/`, LEGACY_DIRS[kind]].filter((p): p is string => Boolean(p));
  const artifacts = ctx.caseFile.artifacts().map((a) => a.artifact).filter((a) => prefixes.some((p) => a.startsWith(p)) && a.endsWith('.yaml')).sort();
  const out: SavedObject<T>[] = [];
  for (const artifact of artifacts) {
    const object = parse(await ctx.caseFile.readText(artifact)) as SavedObject<T>['object'] | null;
    if (!object?.metadata?.name || (object.kind ?? kind) !== kind) {
      if (!object?.metadata?.name) ctx.log.warn({ artifact }, 'saved original names no object; skipped');
      continue;
    }
    out.push({ artifact, object });
  }
  return out;
}
