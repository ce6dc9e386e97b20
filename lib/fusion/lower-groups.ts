// The fused graph's groups: each fusion group of the decomposed graph lowered to a fused
// op where libtorch has one. Groups come from the partitioner (partition.ts); each kind has a
// lowering, and what is not lowered is reported with the reason.
import { moduleSelf, type Graph, type Node } from '../core/ir';
import { partitionGraph, type Partition } from './partition';
import type { CoreReading } from './attention-core';
import {
  lowerAttentionCore, lowerLinearAct, lowerParallelProjections, outcomeId, type LoweringReport, type PackedWeights,
} from './lower-fused';
import { scoresProductOf } from './attention-candidates';
import { tensorInfo } from '../core/value-info';
import { lowerConvBatchNorm, type FoldedWeights } from './fold-batch-norm';

export interface FusionGroupLike {
  /** Group kind: 'attention_core', 'parallel_projection', 'linear_act', 'elementwise', ... */
  kind: string;
  id: string;
  nodes: Node[];
  /** Attention cores: the partitioner's reading of what the core computes. */
  core?: CoreReading;
}

// Why elementwise chains stay unfused, per device. Checked in torch 2.13.0+cpu:
// torch._C._llvm_enabled() and torch._C._jit_can_fuse_on_cpu() are both False, so NNC has no
// CPU code generator there (only its IR interpreter, slower than the eager ops).
function notLoweredReason(kind: string, device: string): string {
  if (kind !== 'elementwise') return 'libtorch has no fused op for this pattern';
  return device.startsWith('cuda')
    ? 'TorchScript\'s CUDA fuser (NNC) is not used yet; graphs run as built so unfused and fused timings compare like for like'
    : 'TorchScript\'s fuser (NNC) cannot generate CPU code in this libtorch (the torch wheels are built without LLVM)';
}

/**
 * Lower the groups, in place on `graph` (pass a clone to keep the unfused graph). Groups must
 * have been computed on this graph (their nodes belong to it). `packed` holds concatenated
 * weights for projection groups whose weights are separate tensors (concat-weights.ts),
 * or why there are none, by group id. `linearActOff` says why a linear + activation group stays as
 * it is, or null where a later lowering takes it over (the packed linear, with oneDNN's post-op).
 */
export function lowerFusionGroups(
  graph: Graph, groups: FusionGroupLike[], device = 'cpu', packed: ReadonlyMap<string, PackedWeights | string> = new Map(),
  folded: ReadonlyMap<string, FoldedWeights | string> = new Map(),
  linearActOff: (nodes: Node[]) => string | null | undefined = () => undefined,
): LoweringReport {
  const report: LoweringReport = {
    attentionCores: [], projections: [], linearActs: [], foldedBatchNorms: [], notLowered: [], heldWeightBytes: 0,
  };
  const others = new Map<string, number>();
  for (const g of groups) {
    if (g.kind === 'attention_core') report.attentionCores.push(lowerAttentionCore(graph, g.core, g.id));
    else if (g.kind === 'parallel_projection') {
      const linears = g.nodes.filter((n) => n.kind === 'aten::linear');
      report.projections.push(lowerParallelProjections(graph, linears, g.id, packed.get(g.id)));
    } else if (g.kind === 'linear_act') {
      const off = linearActOff(g.nodes);
      // null: a later lowering takes the group over and reports it.
      if (off === null) continue;
      report.linearActs.push(off
        ? { id: g.id, lowered: false, reason: off }
        : lowerLinearAct(graph, g.nodes, g.id, (v) => tensorInfo(v)?.shape.length, device));
    } else if (g.kind === 'conv_bn_act' && folded.size) {
      report.foldedBatchNorms!.push(lowerConvBatchNorm(graph, g.nodes, g.id, folded.get(g.id)));
    } else others.set(g.kind, (others.get(g.kind) ?? 0) + 1);
  }
  for (const [kind, count] of others) {
    report.notLowered.push({ kind, groups: count, reason: notLoweredReason(kind, device) });
  }
  report.heldWeightBytes = [...report.projections, ...report.foldedBatchNorms!].reduce((sum, p) => sum + (p.heldBytes ?? 0), 0);
  if (!report.foldedBatchNorms!.length) delete report.foldedBatchNorms;
  graph.eliminateDeadCode();
  graph.verify();
  return report;
}

/**
 * Partitioner groups (partition.ts) in the shape the lowering takes, and every attention
 * candidate the attention rule did not group (attention-candidates.ts: a softmax over a product
 * of two activations) as an attention core that cannot be read, with the rule's reason.
 */
export function loweringGroups(p: Partition): FusionGroupLike[] {
  const groups: FusionGroupLike[] = p.groups.map((g) => ({
    kind: g.kind === 'attention' ? 'attention_core'
    : g.kind === 'qkv_projection' || g.kind === 'kv_projection' || g.kind === 'parallel_linear' ? 'parallel_projection' : g.kind,
    id: g.label ?? `group ${g.id}`,
    nodes: g.nodes,
    ...(g.core ? { core: g.core } : {}),
  }));
  const self = moduleSelf(p.graph);
  for (const miss of p.notFused) {
    const softmax = miss.nodes[0];
    if (miss.subject !== 'attention_core' || !softmax) continue;
    const found = scoresProductOf(softmax, self);
    if (!found) continue;
    const between = [...new Set(found.foreign.map((n) => n.kind))];
    const reason = `an attention candidate (${found.product.kind} of two activations, then ${softmax.kind})`
      + ' that the attention rule does not read: '
      + (between.length ? `${between.join(', ')} between the scores and the softmax, a step SDPA does not have` : miss.message);
    groups.push({
      kind: 'attention_core', id: miss.attention ?? outcomeId(softmax), nodes: [softmax], core: { ok: false, reason, node: softmax },
    });
  }
  return groups;
}

/** The partitioner's groups of a graph, for lowering that same graph. */
export function partitionForLowering(graph: Graph): FusionGroupLike[] {
  return loweringGroups(partitionGraph(graph, { writeMeta: false }));
}
