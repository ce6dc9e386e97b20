// The memory model's schedule: which nodes run as one unit (a fusion group run as one kernel, or
// a top-level node with its nested blocks) and the order the units run in.
import type { GraphFacts } from '../core/facts';
import type { Partition } from '../fusion/partition';
import type { GroupKind } from '../fusion/rules';

export interface Unit { members: number[]; group: number; key: number }

export interface Schedule {
  fused: boolean;
  /** Group of each node position (fused mode; -1 outside groups, and everywhere unfused). */
  groupOfPos: Int32Array;
  /** Rule of each group that runs as one kernel, by group id. */
  groupRule: string[];
  units: Unit[];
  /** Unit of each node position. */
  unitOf: Int32Array;
  /** Units in run order. */
  order: number[];
  /** Step (position in `order`) of each unit. */
  stepOf: Int32Array;
  /** True when the fused schedule had to fall back to group position order. */
  scheduleFallback: boolean;
  /** A value read only inside its producer's group never materialises (fused mode). */
  internal(i: number): boolean;
  /** Step of the unit that runs node position p. */
  stepOfPos(p: number): number;
}

/** The units and their order: graph order unfused; fused, a topological order of the contracted graph. */
export function buildSchedule(f: GraphFacts, part: Partition | undefined, fusedKinds: readonly GroupKind[] | undefined): Schedule {
  const fused = !!part;
  const { groupOfPos, groupRule } = groupsByPosition(f, part, fusedKinds);
  const { units, unitOf } = buildUnits(f, groupOfPos);
  const internal = (i: number): boolean => {
    const q = f.producer[i];
    if (!fused || q < 0) return false;
    const g = groupOfPos[q];
    if (g < 0 || f.graphOutput[i]) return false;
    for (const u of f.dataUsers[i]) if (groupOfPos[f.topOf[u]] !== g) return false;
    return true;
  };
  const { order, scheduleFallback } = fused
    ? contractedOrder(f, units, unitOf, internal)
    : { order: units.map((_, u) => u), scheduleFallback: false };
  const stepOf = new Int32Array(units.length);
  order.forEach((u, s) => { stepOf[u] = s; });
  const stepOfPos = (p: number) => stepOf[unitOf[p]];
  return { fused, groupOfPos, groupRule, units, unitOf, order, stepOf, scheduleFallback, internal, stepOfPos };
}

/** Group of each node (fused mode), by position; only groups of fusedKinds when given. */
function groupsByPosition(f: GraphFacts, part: Partition | undefined, fusedKinds: readonly GroupKind[] | undefined) {
  const groupOfPos = new Int32Array(f.nodes.length).fill(-1);
  const groupRule: string[] = [];
  if (part) {
    for (const g of part.groups) {
      if (fusedKinds && !fusedKinds.includes(g.kind)) continue;
      groupRule[g.id] = g.rule;
      for (const n of g.nodes) { const p = f.pos.get(n); if (p !== undefined) groupOfPos[p] = g.id; }
    }
  }
  return { groupOfPos, groupRule };
}

/** Units: groups and top-level nodes (nested nodes run inside their top-level owner's unit). */
function buildUnits(f: GraphFacts, groupOfPos: Int32Array): { units: Unit[]; unitOf: Int32Array } {
  const N = f.nodes.length;
  const units: Unit[] = [];
  const unitOf = new Int32Array(N).fill(-1);
  const groupUnit = new Map<number, number>();
  for (let p = 0; p < N; p++) {
    const top = f.topOf[p];
    if (top !== p) { unitOf[p] = unitOf[top]; units[unitOf[top]].members.push(p); continue; }
    const g = groupOfPos[p];
    if (g >= 0) {
      let u = groupUnit.get(g);
      if (u === undefined) { u = units.length; groupUnit.set(g, u); units.push({ members: [], group: g, key: p }); }
      unitOf[p] = u;
      units[u].members.push(p);
    } else {
      unitOf[p] = units.length;
      units.push({ members: [p], group: -1, key: p });
    }
  }
  return { units, unitOf };
}

/**
 * A topological order of the units (edges: data reads, and metadata reads of values that
 * materialise), ready units taken by first position so that the original order is kept where
 * it can be; units left on a cycle follow in position order (scheduleFallback).
 */
function contractedOrder(f: GraphFacts, units: Unit[], unitOf: Int32Array, internal: (i: number) => boolean):
{ order: number[]; scheduleFallback: boolean } {
  const U = units.length;
  const succ: number[][] = Array.from({ length: U }, () => []);
  const indeg = new Int32Array(U);
  const addEdge = (a: number, b: number) => { if (a !== b) { succ[a].push(b); indeg[b]++; } };
  for (let i = 0; i < f.values.length; i++) {
    const q = f.producer[i];
    if (q < 0) continue;
    const from = unitOf[q];
    for (const u of f.dataUsers[i]) addEdge(from, unitOf[u]);
    if (f.metaUsers[i].length && !internal(i)) for (const u of f.metaUsers[i]) addEdge(from, unitOf[u]);
  }
  const order: number[] = [];
  const heap = unitHeap(units);
  for (let u = 0; u < U; u++) if (indeg[u] === 0) heap.push(u);
  while (heap.size()) {
    const u = heap.pop();
    order.push(u);
    for (const v of succ[u]) if (--indeg[v] === 0) heap.push(v);
  }
  let scheduleFallback = false;
  if (order.length < U) {
    scheduleFallback = true;
    const done = new Set(order);
    for (let u = 0; u < U; u++) if (!done.has(u)) order.push(u);
  }
  return { order, scheduleFallback };
}

/** A binary min-heap of unit indices keyed by the units' first positions. */
function unitHeap(units: Unit[]): { push(u: number): void; pop(): number; size(): number } {
  const heap: number[] = [];
  const less = (a: number, b: number) => units[a].key < units[b].key;
  const push = (u: number) => {
    heap.push(u);
    for (let k = heap.length - 1; k > 0;) {
      const up = (k - 1) >> 1;
      if (!less(heap[k], heap[up])) break;
      [heap[k], heap[up]] = [heap[up], heap[k]];
      k = up;
    }
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      for (let k = 0; ;) {
        const l = 2 * k + 1, r = l + 1;
        let m = k;
        if (l < heap.length && less(heap[l], heap[m])) m = l;
        if (r < heap.length && less(heap[r], heap[m])) m = r;
        if (m === k) break;
        [heap[k], heap[m]] = [heap[m], heap[k]];
        k = m;
      }
    }
    return top;
  };
  return { push, pop, size: () => heap.length };
}
