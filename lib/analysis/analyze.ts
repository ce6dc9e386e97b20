// One call for everything the report needs: partition, FLOPs, per-group bytes and intensity,
// peak memory of the unfused and fused graphs, and the summary numbers. Measured peaks (from
// the runtime) plug in through withMeasuredPeaks.
import type { Graph } from '../core/ir';
import { buildFacts, VK, type GraphFacts } from '../core/facts';
import { countFlops, type FlopCategory, type FlopsReport } from './flops';
import { estimateMemory, type MemoryEstimate, type MemoryOptions } from './memory';
import { partitionGraph, type FusionGroup, type Partition } from '../fusion/partition';
import type { Rule } from '../fusion/rules';
import { TorchGraphError } from '../core/errors';
import { valueInfo } from '../core/value-info';

export interface GroupCost {
  group: number;
  kind: FusionGroup['kind'];
  flops: number;
  /** Bytes of the tensors the group reads from outside (activations and weights). */
  bytesRead: number;
  /** Bytes of the tensors it writes for the outside (outputs that are not views of inputs). */
  bytesWritten: number;
  /** Bytes of the tensors the unfused graph allocates inside the group: never materialised when fused. */
  bytesInternal: number;
  /** flops / (bytesRead + bytesWritten). */
  arithmeticIntensity: number;
}

export interface AnalysisSummary {
  /** All nodes of the graph (graph.allNodes(), bookkeeping included). */
  nodes: number;
  /** Nodes that compute (launch a kernel): not bookkeeping, weights, views or containers. */
  computeNodes: number;
  /**
   * Explicit attention ops: nodes (compute or view) tagged node.meta.attention by the
   * decomposition when any are tagged; else the members of explicit attention-core groups.
   */
  attentionOpsExposed: number;
  /** Opaque attention ops left (scaled_dot_product_attention, _native_multi_head_attention, ...). */
  opaqueAttentionOps: number;
  /** Attention groups: explicit cores fused by the attention_core rule, plus opaque attention ops. */
  attentionCores: { explicit: number; opaque: number };
  /** Attention cores whose q/k/v come from one qkv_projection group, a kv_projection group, or one packed linear. */
  projections: { qkvFused: number; kvFused: number; packed: number; notFused: number };
  fusionGroups: number;
  /** Mean members per fusion group (views between steps included). */
  averageGroupSize: number;
  /** Kernel launches: compute nodes unfused; groups plus ungrouped compute nodes fused. */
  kernels: { unfused: number; fused: number };
  flops: number;
  flopsByCategory: Record<FlopCategory, number>;
  /** Estimated peak of live activation storage, bytes. */
  peakBytes: { unfused: number; fused: number };
  /** (unfused peak - fused peak) / unfused peak. */
  memoryReduction: number;
  weightBytes: number;
  inputBytes: number;
  notFused: number;
  /** Filled by withMeasuredPeaks. */
  measured?: PeakComparison;
}

export interface PeakComparison {
  unfused?: { estimated: number; measured: number; relError: number };
  fused?: { estimated: number; measured: number; relError: number };
  /** Largest |estimated - measured| / measured seen. */
  worstRelError: number;
  source?: string;
}

export interface GraphAnalysis {
  partition: Partition;
  flops: FlopsReport;
  groups: GroupCost[];
  memory: { unfused: MemoryEstimate; fused: MemoryEstimate };
  summary: AnalysisSummary;
  /** Milliseconds per stage. */
  ms: { facts: number; partition: number; flops: number; memory: number; total: number };
}

export interface AnalyzeOptions {
  rules?: readonly Rule[];
  memory?: Omit<MemoryOptions, 'partition' | 'facts'>;
  /** Write node.meta.group/groupKind/groupRole and node.meta.flops (default true). */
  writeMeta?: boolean;
}

/** Costs of each group. */
export function groupCosts(partition: Partition, flops: FlopsReport): GroupCost[] {
  const f = partition.facts;
  const bytesOf = (i: number) => f.info[i]?.bytes ?? 0;
  return partition.groups.map((g) => {
    const members = new Set(g.nodes.map((n) => f.pos.get(n)!));
    let fl = 0;
    for (const p of members) fl += flops.perNode[p];
    let read = 0, written = 0, internal = 0;
    for (const v of g.inputs) read += bytesOf(f.vindex.get(v)!);
    const outputs = new Set(g.outputs.map((v) => f.vindex.get(v)!));
    for (const i of outputs) {
      let r = i;
      while (f.parent[r] >= 0 && members.has(f.producer[f.parent[r]])) r = f.parent[r];
      if (f.parent[r] < 0) written += bytesOf(i);
    }
    for (const p of members) {
      if (f.role[p] !== 'compute') continue;
      for (const o of f.nodes[p].outputs) {
        const i = f.vindex.get(o)!;
        if (f.vkind[i] === VK.Tensor && !f.scalar[i] && !outputs.has(i)) internal += f.info[i]?.storageBytes ?? 0;
      }
    }
    const moved = read + written;
    return {
      group: g.id, kind: g.kind, flops: fl, bytesRead: read, bytesWritten: written, bytesInternal: internal,
      arithmeticIntensity: moved ? fl / moved : 0,
    };
  });
}

function summarize(
  f: GraphFacts, partition: Partition, flops: FlopsReport, unfused: MemoryEstimate, fused: MemoryEstimate,
): AnalysisSummary {
  let computeNodes = 0, labelled = 0, opaque = 0;
  for (let p = 0; p < f.nodes.length; p++) {
    const r = f.role[p];
    if (r === 'compute') computeNodes++;
    if ((r === 'compute' || r === 'view') && f.nodes[p].meta.attention) labelled++;
    if (f.classes[p].includes('attention')) opaque++;
  }
  const explicitCores = partition.groups.filter((g) => g.kind === 'attention' && g.rule !== 'attention_op');
  const coreMembers = explicitCores.reduce((k, g) => k + g.nodes.length, 0);
  const groupedCompute = new Set<number>();
  let fusedKernels = 0;
  for (const g of partition.groups) {
    let hasCompute = false;
    for (const n of g.nodes) { const p = f.pos.get(n)!; if (f.role[p] === 'compute') { hasCompute = true; groupedCompute.add(p); } }
    if (hasCompute) fusedKernels++;
  }
  fusedKernels += computeNodes - groupedCompute.size;
  const proj = { qkvFused: 0, kvFused: 0, packed: 0, notFused: 0 };
  for (const ps of partition.projections) {
    if (ps.status === 'fused') proj.qkvFused++;
    else if (ps.status === 'kv_fused') proj.kvFused++;
    else if (ps.status === 'packed' || ps.status === 'packed_kv') proj.packed++;
    else if (ps.status === 'not_fused') proj.notFused++;
  }
  const groups = partition.groups;
  return {
    nodes: f.nodes.length,
    computeNodes,
    attentionOpsExposed: labelled > 0 ? labelled : coreMembers,
    opaqueAttentionOps: opaque,
    attentionCores: {
      explicit: explicitCores.length,
      opaque: groups.filter((g) => g.kind === 'attention' && g.rule === 'attention_op').length,
    },
    projections: proj,
    fusionGroups: groups.length,
    averageGroupSize: groups.length ? groups.reduce((k, g) => k + g.nodes.length, 0) / groups.length : 0,
    kernels: { unfused: computeNodes, fused: fusedKernels },
    flops: flops.total,
    flopsByCategory: flops.byCategory,
    peakBytes: { unfused: unfused.peakBytes, fused: fused.peakBytes },
    memoryReduction: unfused.peakBytes > 0 ? (unfused.peakBytes - fused.peakBytes) / unfused.peakBytes : 0,
    weightBytes: unfused.weightBytes,
    inputBytes: unfused.inputBytes,
    notFused: partition.notFused.length,
  };
}

/**
 * Partition, FLOPs, group costs and both peak estimates for a graph whose shapes have been
 * propagated (lib/torchscript/propagate-shapes.ts). Pure TypeScript: no libtorch call.
 */
export function analyzeGraph(graph: Graph, opts: AnalyzeOptions = {}): GraphAnalysis {
  // Without shapes every count would be 0 (FLOPs, bytes, peaks): refuse rather than mislead.
  if (graph.allNodes().length > 0 && !graph.allValues().some((v) => valueInfo(v) !== undefined)) {
    throw new TorchGraphError(
      'ERR_INVALID_ARG', 'analyzeGraph: the graph has no shapes; run propagateShapes(graph, module, inputs) on it first',
    );
  }
  const t0 = performance.now();
  const facts = buildFacts(graph);
  const t1 = performance.now();
  const partition = partitionGraph(graph, { facts, rules: opts.rules, writeMeta: opts.writeMeta });
  const t2 = performance.now();
  const flops = countFlops(facts, { writeMeta: opts.writeMeta });
  const groups = groupCosts(partition, flops);
  const t3 = performance.now();
  const unfused = estimateMemory(facts, { ...opts.memory, facts });
  const fused = estimateMemory(facts, { ...opts.memory, facts, partition });
  const t4 = performance.now();
  const summary = summarize(facts, partition, flops, unfused, fused);
  const t5 = performance.now();
  return {
    partition, flops, groups, memory: { unfused, fused }, summary,
    ms: { facts: t1 - t0, partition: t2 - t1, flops: t3 - t2, memory: t4 - t3, total: t5 - t0 },
  };
}

/**
 * The hook for the runtime: compare estimated peaks with measured ones (bytes of live tensor
 * storage above the level before the run, as lib/pipeline/compare.ts measures them). Returns the comparison
 * and stores it in analysis.summary.measured.
 */
export function withMeasuredPeaks(
  analysis: GraphAnalysis, measured: { unfused?: number; fused?: number; source?: string },
): PeakComparison {
  const cmp = (estimated: number, m: number) => ({
    estimated, measured: m, relError: m > 0 ? (estimated - m) / m : estimated === 0 ? 0 : Infinity,
  });
  const out: PeakComparison = { worstRelError: 0, source: measured.source };
  if (measured.unfused !== undefined) out.unfused = cmp(analysis.memory.unfused.peakBytes, measured.unfused);
  if (measured.fused !== undefined) out.fused = cmp(analysis.memory.fused.peakBytes, measured.fused);
  out.worstRelError = Math.max(Math.abs(out.unfused?.relError ?? 0), Math.abs(out.fused?.relError ?? 0));
  analysis.summary.measured = out;
  return out;
}
