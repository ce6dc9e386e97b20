// The decomposition pipeline over a model view: shapes, traced attention bodies inlined,
// shapes again, then every attention expanded into explicit ops. In place on `graph`.
import { Graph } from '../core/ir';
import type { Module } from '../torchscript/module';
import { decomposeAttention, inlineAttentionModuleCalls, remainingAttentionOps, type DecomposeReport } from './decompose-attention';
import { foldModuleConstants } from './fold-module-constants';
import { inlineFunctionCalls } from './inline-functions';
import { propagateShapes, type InputSpec, type ShapeReport } from '../torchscript/propagate-shapes';
import { DECOMPOSED_ATTENTION_KINDS } from '../core/ops/classes';
import { shapeUntakenBranches, type UntakenShapesReport } from './untaken-branch-shapes';
import { functionGraphs, methodGraphs } from './module-views';

export interface DecompositionResult {
  report: DecomposeReport;
  shapes: ShapeReport;
  /** Attention ops of the four kinds still in the graph (skipped ones). */
  remaining: number;
  /** Shapes given to attention in branches the shape run did not take. */
  untaken: UntakenShapesReport;
}

/** Graph first, as propagateShapes(graph, module, inputs) takes it. */
export async function decomposeModelGraph(graph: Graph, module: Module, inputs: readonly InputSpec[]): Promise<DecompositionResult>;
/** The earlier order, module first: still accepted. */
export async function decomposeModelGraph(module: Module, graph: Graph, inputs: readonly InputSpec[]): Promise<DecompositionResult>;
export async function decomposeModelGraph(
  a: Graph | Module, b: Graph | Module, inputs: readonly InputSpec[],
): Promise<DecompositionResult> {
  const [graph, module] = a instanceof Graph ? [a, b as Module] : [b as Graph, a as Module];
  const tree = module.tree();
  let shapes = await propagateShapes(graph, module, inputs);
  const { inlined, explicitBodies } = inlineAttentionModuleCalls(graph, tree, methodGraphs(module));
  if (inlined > 0) {
    // Inlined scripted bodies compute masks and flags in helper functions and branch on
    // module attributes: inline the helpers and fold what those decide.
    inlineFunctionCalls(graph, functionGraphs(module));
    foldModuleConstants(graph, tree);
    shapes = await propagateShapes(graph, module, inputs);
  }
  // Attention in branches that did not run (a scripted model's other path) needs shapes too.
  const untaken = await shapeUntakenBranches(graph, module, inputs, (n) => DECOMPOSED_ATTENTION_KINDS.has(n.kind));
  const report = decomposeAttention(graph, { tree, explicitBodies });
  graph.verify();
  return { report, shapes, remaining: remainingAttentionOps(graph).length, untaken };
}
