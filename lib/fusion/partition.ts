// The fusion partitioner: runs the rule table (rules.ts) over a graph's top block and each nested
// block on its own (grouping.ts, with one matcher: chain-match.ts), and publishes the groups with
// the attention cores and Q/K/V projection sets it could not fuse, and why (partition-explain.ts).
import type { Graph, Node, Value } from '../core/ir';
import { buildFacts, regionFacts, VK } from '../core/facts';
import { RULES, type ParallelRule } from './rules';
import { readAttentionCore } from './attention-core';
import { Grouping } from './grouping';
import { attentionLabel, projectionSets, unfusedCores } from './partition-explain';
import type { FusionGroup, NotFused, Partition, PartitionOptions, ProjectionSet, RefusedMerge } from './partition-types';

export type { FusionGroup, NotFused, Partition, PartitionOptions, ProjectionSet, ProjectionStatus, RefusedMerge } from './partition-types';

/** Partition a graph into fusion groups (shapes should be propagated first for shape conditions). */
export function partitionGraph(graph: Graph, opts: PartitionOptions = {}): Partition {
  const t0 = performance.now();
  const f = opts.facts ?? buildFacts(graph);
  const rules = opts.rules ?? RULES;
  const regions = [f];
  // Each nested block is fused on its own: a group never spans a block boundary.
  if (opts.nestedBlocks !== false && f.hasBlocks) {
    for (const b of graph.allBlocks().slice(1)) {
      if (b.nodes().some((n) => f.role[f.pos.get(n)!] === 'compute')) regions.push(regionFacts(f, b));
    }
  }
  const groups: FusionGroup[] = [];
  const projections: ProjectionSet[] = [];
  const notFused: NotFused[] = [];
  const refused: RefusedMerge[] = [];
  for (const rf of regions) {
    const pt = new Grouping(rf, rules);
    pt.run();
    const mine = publicGroups(pt);
    // Projection sets name the kinds of the parallel groups they find (qkv_projection, kv_projection).
    projections.push(...projectionSets(pt, mine, mine.filter((g) => g.kind === 'attention'), rules));
    notFused.push(...unfusedCores(pt, rules));
    refused.push(...pt.refused.map((r) => ({
      rule: r.rule, nodes: r.set.map((p) => f.nodes[p]), culprit: f.nodes[r.culprit], message: r.message,
    })));
    for (const g of mine) g.id += groups.length;
    groups.push(...mine);
  }
  for (const ps of projections) if (ps.why) notFused.push(ps.why);
  const attentionCores = groups.filter((g) => g.kind === 'attention');

  if (opts.writeMeta !== false) {
    for (const n of f.nodes) { delete n.meta.group; delete n.meta.groupKind; delete n.meta.groupRole; }
    for (const g of groups) g.nodes.forEach((n, k) => { n.meta.group = g.id; n.meta.groupKind = g.kind; n.meta.groupRole = g.roles[k]; });
  }
  const byNode = new Map<Node, FusionGroup>();
  for (const g of groups) for (const n of g.nodes) byNode.set(n, g);
  return {
    graph, facts: f, groups, groupOf: (n: Node) => byNode.get(n), attentionCores, projections, notFused, refused,
    ms: performance.now() - t0,
  };
}

/** The partitioner's groups as published: members, roles, the tensors read and written, the core's reading. */
function publicGroups(pt: Grouping): FusionGroup[] {
  const f = pt.f;
  return pt.groups.map((g) => {
    const inG = (p: number) => pt.groupOf[p] === g.id;
    const inputs: Value[] = [];
    const outputs: Value[] = [];
    const seenIn = new Set<number>();
    for (const m of g.members) {
      for (const v of f.nodes[m].inputs) {
        const i = f.vindex.get(v)!;
        if (f.vkind[i] !== VK.Tensor || f.scalar[i] || seenIn.has(i)) continue;
        const prod = f.producer[i];
        if (prod >= 0 && inG(prod)) continue;
        seenIn.add(i);
        inputs.push(v);
      }
      for (const v of f.nodes[m].outputs) {
        const i = f.vindex.get(v)!;
        if (f.vkind[i] !== VK.Tensor) continue;
        if (f.graphOutput[i] || pt.users(i).some((u) => !inG(u))) outputs.push(v);
      }
    }
    const nodes = g.members.map((p) => f.nodes[p]);
    const roles = g.members.map((p) => g.roles.get(p)!);
    const isCore = g.kind === 'attention' && roles.includes('softmax');
    return {
      id: g.id, kind: g.kind, rule: g.rule, rules: [...g.rules], nodes, roles,
      inputs, outputs, label: attentionLabel(nodes), ...(isCore ? { core: readAttentionCore(nodes, roles) } : {}),
    };
  });
}

/** @internal for tests: would merging these nodes (as one group) create a cycle? Returns the culprit. */
export function mergeWouldCycle(graph: Graph, nodes: Node[], existing: Node[][] = []): Node | null {
  const f = buildFacts(graph);
  const pt = new Grouping(f, []);
  const fake: ParallelRule = { type: 'parallel', name: 'test', kind: 'parallel_linear', description: '', ops: [], min: 1, where: [] };
  for (const grp of existing) {
    const picked = new Map(grp.map((n) => [f.pos.get(n)!, 'x'] as [number, string]));
    if (pt.merge(fake, 0, picked, [], -1) < 0) throw new Error('an existing group is itself cyclic');
  }
  const c = pt.cycleThrough(new Set(nodes.map((n) => f.pos.get(n)!)));
  return c >= 0 ? f.nodes[c] : null;
}
