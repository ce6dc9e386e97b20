// What a lowering's steps work on (the table in lowerings.ts names them): a decomposed graph
// being lowered with its weights as graph constants (prepareGraphs), or an optimized model's
// graph over a module of its own whose weights are replaced one at a time (optimize).
import type { Graph } from '../core/ir';
import type { NativeModule } from '../torchscript/binding';
import type { FoldedWeights } from './fold-batch-norm';
import type { FusionGroupLike } from './lower-groups';
import type { LoweringReport, PackedWeights } from './lower-fused';

/** A copy of the decomposed graph being lowered: each step rewrites `graph` in place and reports into `lowering`. */
export interface LoweringPass {
  module: NativeModule;
  device: string;
  /** The copy being lowered; a step that must check its rewrite whole may lower a copy and put it here. */
  graph: Graph;
  /** The partitioner's groups on `graph` (the 'weights' and 'groups' stages). */
  groups: FusionGroupLike[];
  /** Weights the group lowering reads (lower-groups.ts), by group id, or why there are none: the 'weights' steps fill them. */
  concatenated: Map<string, PackedWeights | string>;
  folded: Map<string, FoldedWeights | string>;
  lowering: LoweringReport;
  /** Shapes of `g` from a run over the module with the planned inputs. */
  propagateShapes(g: Graph): Promise<void>;
  partition(g: Graph): FusionGroupLike[];
  /** Set when prepareGraphs' peak judgement keeps the convolutions as they are at these shapes (the reason). */
  convolutionsOff?: string;
}

/**
 * A weight an optimized model holds prepacked: the attribute that holds it, whether it replaced
 * the plain weight (save() turns it back with aten::to_dense, or torchgraph::unpack_linear_weight
 * for our own linear's panels of `outFeatures` outputs, transposed for an addmm's (in, out)
 * weight, or torchgraph::unpack_conv2d_weight to `weightSize`) or sits beside it, and its bytes.
 */
export interface PackedWeight {
  attribute: string; format: 'onednn-linear' | 'onednn-conv' | 'torchgraph-linear' | 'torchgraph-conv2d'; transposed: boolean;
  inPlace: boolean; bytes: number;
  outFeatures?: number;
  /** torchgraph::conv2d's plain weight's (out, in, kh, kw), for torchgraph::unpack_conv2d_weight. */
  weightSize?: number[];
}

/**
 * An optimized model's graphs over the module that owns its weights (own-weights.ts): portable
 * steps rewrite `portable` (their new weights as graph constants, moved to the module after),
 * machine-specific ones replace attributes of `module` one weight at a time and rewrite `run`.
 */
export interface OwnedPass {
  module: NativeModule;
  /** What save() writes, with shapes. */
  portable: Graph;
  /** What runs: `portable` with the machine-specific lowerings. */
  run: Graph;
  packed: Map<string, PackedWeight>;
  lowering: LoweringReport;
  partition(g: Graph): FusionGroupLike[];
}
