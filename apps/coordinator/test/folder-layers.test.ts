import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

// The coordinator's folders form layers: every relative import (type-only ones included, as
// they tie the folders' meanings together just the same) points down this list, so no folder
// imports one that imports it back. Bottom first; README.md "Layout" lists them top first.
const LAYERS = [
  'config',
  'security',
  'contract',
  'model',
  'metrics',
  'audit',
  'workers',
  'runners',
  'engine',
  'jobs',
  'services',
  'api',
  'grpc',
  'coordinator.module.ts',
  'main.ts',
];

const SRC = resolve(__dirname, '../src');

type Graph = Map<string, Set<string>>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The folder under src a file belongs to; a file directly in src is a node of its own. */
function folderOf(file: string): string {
  return relative(SRC, file).split(sep)[0]!;
}

/** Relative specifiers of static imports and re-exports (`import type` too) and `import()`. */
function relativeImports(text: string): string[] {
  const specifiers: string[] = [];
  for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    specifiers.push(match[1]!);
  }
  return specifiers;
}

/** Folder → folders it imports from (imports inside a folder are not edges). */
function folderGraph(files: readonly string[]): Graph {
  const graph: Graph = new Map();
  for (const file of files) {
    const from = folderOf(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const specifier of relativeImports(readFileSync(file, 'utf8'))) {
      const to = folderOf(resolve(dirname(file), specifier));
      if (to !== from) edges.add(to);
    }
  }
  return graph;
}

/** One cycle of the graph as a path (first node repeated at the end), or undefined. */
function findCycle(graph: Graph): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const at = path.indexOf(node);
    if (at >= 0) return [...path.slice(at), node];
    if (done.has(node)) return undefined;
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('apps/coordinator folder layers', () => {
  const graph = folderGraph(sourceFiles(SRC));

  it('finds a cycle where there is one (the check itself)', () => {
    const cyclic: Graph = new Map([
      ['jobs', new Set(['engine'])],
      ['engine', new Set(['runners'])],
      ['runners', new Set(['jobs', 'workers'])],
      ['workers', new Set<string>()],
    ]);
    expect(findCycle(cyclic)).toEqual(['jobs', 'engine', 'runners', 'jobs']);
    expect(
      relativeImports("import type {\n  A,\n} from '../jobs/x';\nawait import('./y');"),
    ).toEqual(['../jobs/x', './y']);
  });

  it('has no folder-level import cycle', () => {
    expect(graph.size).toBeGreaterThan(5);
    const cycle = findCycle(graph);
    expect(cycle, `folder import cycle: ${cycle?.join(' → ')}`).toBeUndefined();
  });

  it('imports only down the documented layers', () => {
    expect([...graph.keys()].filter((folder) => !LAYERS.includes(folder))).toEqual([]);
    const upward = [...graph].flatMap(([from, to]) =>
      [...to].filter((t) => LAYERS.indexOf(t) >= LAYERS.indexOf(from)).map((t) => `${from} → ${t}`),
    );
    expect(upward).toEqual([]);
  });
});
