// The folders of src/ depend on each other in one direction: a cycle (engine ↔ phases ↔ intake, as
// there once was) makes every layer load and test with all the others. Files at the top of src/ count
// as their own nodes (errors.ts, log.ts, config.ts are leaves; operator.ts wires everything).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** src/engine/queue.ts → engine; src/errors.ts → errors.ts */
const nodeOf = (file: string): string => path.relative(SRC, file).split(path.sep)[0]!;

function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(SRC)) {
    const from = nodeOf(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)\.js'/g)) {
      const to = nodeOf(`${path.resolve(path.dirname(file), m[1]!)}.ts`);
      if (to === from) continue;
      if (!graph.has(from)) graph.set(from, new Set());
      graph.get(from)!.add(to);
    }
  }
  return graph;
}

/** Every package a file loads at run time, through its relative imports (`import type` is erased, so it is not followed). */
function runtimeImportsOf(entry: string): string[] {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^import (?!type )[^;]*?from '([^']+)';/gms)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(`${path.resolve(path.dirname(file), spec.replace(/\.js$/, ''))}.ts`);
      else if (!spec.startsWith('node:')) packages.add(spec);
    }
  };
  visit(entry);
  return [...packages].sort();
}

function cycles(graph: Map<string, Set<string>>): string[] {
  const found: string[] = [];
  const walk = (node: string, trail: string[]) => {
    for (const next of graph.get(node) ?? []) {
      if (next === trail[0]) found.push([...trail, next].join(' → '));
      else if (!trail.includes(next)) walk(next, [...trail, next]);
    }
  };
  for (const node of graph.keys()) walk(node, [node]);
  return found;
}

describe('src/ folder dependencies', () => {
  it('have no cycle', () => {
    expect(cycles(folderGraph())).toEqual([]);
  });

  it('keep phases, the Kubernetes client layer and the evidence store below the engine and intake', () => {
    const graph = folderGraph();
    const reaches = (from: string, to: string) => graph.get(from)?.has(to) ?? false;
    expect({
      'phases → engine': reaches('phases', 'engine'),
      'phases → intake': reaches('phases', 'intake'),
      'engine → intake': reaches('engine', 'intake'),
      'kube → engine': reaches('kube', 'engine'),
      'evidence → engine': reaches('evidence', 'engine'),
    }).toEqual({ 'phases → engine': false, 'phases → intake': false, 'engine → intake': false, 'kube → engine': false, 'evidence → engine': false });
  });

  it('keep client-node out of the intake thread (it cost about 70 MB of RSS there): no runtime import reaches it', () => {
    expect(runtimeImportsOf(path.join(SRC, 'intake/service-thread.ts')).filter((m) => m.startsWith('@kubernetes/'))).toEqual([]);
    // The check itself works: the main thread's client layer does reach it.
    expect(runtimeImportsOf(path.join(SRC, 'kube/client.ts'))).toContain('@kubernetes/client-node');
  });

  it('sees a cycle when there is one (the check itself works)', () => {
    const graph = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]]);
    expect(cycles(graph)).toContain('a → b → c → a');
  });
});
