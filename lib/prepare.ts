// From a loaded model to the three graphs the runtime compares:
//   standard    torch.fx-like view (leaf modules are calls), for node counts;
//   decomposed  attention expanded into explicit ops (leaf modules then inlined too, so every
//               op is visible to the partitioner and the analyses): the "unfused" graph;
//   fused       the decomposed graph with fusion groups lowered to fused kernels.
import type { Graph } from './ir';
import type { Module } from './module';
import { decomposeModelGraph, type DecompositionResult } from './decompose';
import { lowerFusionGroups, partitionForLowering, type FusedLoweringReport, type FusionGroupLike } from './fuse';
import { inlineModuleCalls } from './passes/inline-modules';
import { propagateShapes, type InputSpec } from './passes/propagate-shapes';
import { exportView, methodGraphs, type ViewReport } from './views';

export interface PreparedGraphs {
  standard: Graph;
  standardReport: ViewReport;
  /** The standard view with attention decomposed (leaf module calls kept): node counts only. */
  decomposedStandard: Graph;
  /** Decomposed and fully inlined: the unfused graph that runs and is analysed. */
  decomposed: Graph;
  decomposition: DecompositionResult;
  fused: Graph;
  groups: FusionGroupLike[];
  lowering: FusedLoweringReport;
  timings: Record<string, number>;
}

export type Partitioner = (decomposed: Graph) => FusionGroupLike[];

/**
 * Attention decomposed on a copy of the standard view, then every remaining module call
 * inlined so the partitioner and the analyses see every op. Returns both stages.
 */
export async function decomposeStandardView(module: Module, standard: Graph, inputs: readonly InputSpec[]):
Promise<{ decomposedStandard: Graph; decomposed: Graph; decomposition: DecompositionResult }> {
  const decomposedStandard = standard.clone();
  const decomposition = await decomposeModelGraph(module, decomposedStandard, inputs);
  const decomposed = decomposedStandard.clone();
  inlineModuleCalls(decomposed, methodGraphs(module), () => true);
  await propagateShapes(decomposed, module, inputs);
  return { decomposedStandard, decomposed, decomposition };
}

/** The fused graph: a copy of `decomposed` with the partitioner's groups (found on that copy) lowered. */
export async function fuseDecomposed(module: Module, decomposed: Graph, inputs: readonly InputSpec[], partition: Partitioner = partitionForLowering):
Promise<{ fused: Graph; groups: FusionGroupLike[]; lowering: FusedLoweringReport }> {
  const fused = decomposed.clone();
  const groups = partition(fused);
  const lowering = lowerFusionGroups(fused, groups, module.device);
  await propagateShapes(fused, module, inputs);
  return { fused, groups, lowering };
}

export async function prepareGraphs(module: Module, inputs: readonly InputSpec[], partition: Partitioner = partitionForLowering): Promise<PreparedGraphs> {
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await f(); } finally { timings[name] = performance.now() - t0; }
  };
  const std = await time('standard', () => exportView(module, 'standard'));
  const dec = await time('decompose', () => decomposeStandardView(module, std.graph, inputs));
  const fus = await time('fuse', () => fuseDecomposed(module, dec.decomposed, inputs, partition));
  return { standard: std.graph, standardReport: std.report, ...dec, ...fus, timings };
}
