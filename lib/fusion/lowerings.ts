// The lowerings that can be switched, declared once: their option name, when each is on by
// default, whether what it writes is portable (kept in a saved optimized model) or specific to
// this machine (prepacked weights, redone when a saved model is optimized again), and their
// steps. prepareGraphs runs each one's `lower` at its stage, optimize its `onOwnedModule`,
// `bench --ablate` switches them off by name. Adding a lowering is one entry here and its file.
import { runtimeInfo } from '../torchscript/runtime-info';
import { recognizeWrittenOutOps } from '../transforms/written-out-ops';
import type { LoweringPass, OwnedPass } from './lowering-pass';
import { concatenateProjectionsStep, concatenationsOff } from './concat-weights';
import { foldBatchNormsOnOwnedModule, foldBatchNormsStep } from './fold-batch-norm';
import { lowerConvolutionsStep, prepackConvolutionsOnOwnedModule } from './conv-pointwise';
import { packLinearsStep, prepackLinearsOnOwnedModule } from './linear-packed';
import { inPlaceWhereInputsDie } from './in-place';
import { addNormsOnOwnedModule, addNormsStep } from './add-norm';
import { biasGelusOnOwnedModule, biasGelusStep } from './bias-gelu';
import { maxPoolsOnOwnedModule, maxPoolsStep } from './max-pool';

/** On or off per lowering; one left out takes its default (LOWERINGS). */
export interface LoweringSwitches {
  /**
   * Projections whose weights are separate tensors as one GEMM over weights concatenated once
   * (held by the fused graph). Default: on CUDA only. On this project's CPUs one GEMM over the
   * concatenated weights measured no faster than the separate GEMMs (MKL, 2 threads: 438 vs 426 us
   * for three 768x768 projections of 16 rows, 8.32 vs 8.41 ms for 512 rows), while the merged
   * output keeps every part live until the last is used.
   */
  concatenateProjections?: boolean;
  /** Eval-mode batch norms folded into the convolutions before them (default: on). */
  foldBatchNorms?: boolean;
  /**
   * 2-D float32 convolutions, with their residual add and activation, as oneDNN's pointwise
   * kernels on weights prepacked once, activations channels last (conv-pointwise.ts). Default: on
   * CPU where libtorch has oneDNN.
   */
  pointwiseConvolutions?: boolean;
  /**
   * float32 linear layers on weights packed once, held by the fused graph (the weight's own size;
   * `optimize` replaces the originals with them), on oneDNN's GEMM (mkldnn::_linear_pointwise) or,
   * where ATen runs AVX2, torchgraph's own (torchgraph::linear; linear-packed.ts says why).
   * Default: on CPU where libtorch has oneDNN.
   */
  packedLinears?: boolean;
  /**
   * A residual add and the layer norm / RMSNorm reading its sum as one op of ours, float32 on CPU
   * (add-norm.ts, native/fused_ops.cc). Default: on CPU.
   */
  addNorms?: boolean;
  /** A bias add and the GELU after it as one op of ours, float32 on CPU (bias-gelu.ts). Default: on CPU. */
  biasGelus?: boolean;
  /**
   * Max pools over channels-last activations (a pointwise convolution's output) as one op of ours
   * that computes no indices, float32 on CPU (max-pool.ts). Default: on CPU.
   */
  maxPools?: boolean;
  /** Activations and residual adds in place where their input dies there (in-place.ts). Default: on. */
  inPlace?: boolean;
  /**
   * Activations written out as arithmetic (GPT-2's tanh GELU, ...) as the one ATen op
   * (transforms/written-out-ops.ts). Default: on.
   */
  writtenOutActivations?: boolean;
}

export type LoweringName = keyof LoweringSwitches;

/**
 * When a lowering runs in prepareGraphs, on the copy of the decomposed graph being lowered:
 * 'rewrite' before the partitioner, 'weights' computing what the group lowering reads
 * (lower-groups.ts), 'groups' on the graph with its groups lowered, 'last' after its final shapes.
 */
export type LoweringStage = 'rewrite' | 'weights' | 'groups' | 'last';

export interface LoweringEntry {
  name: LoweringName;
  /** Kept in a saved optimized model (true), or redone on the machine that runs it (false). */
  portable: boolean;
  /** On unless the caller says otherwise, on `device`. */
  onByDefault(device: string): boolean;
  /** onByDefault in words, for --help: 'always', 'on CUDA', ... */
  when: string;
  /** What it does, in one line (lib/fusion/ holds the lowering). */
  what: string;
  stage: LoweringStage;
  /** Plan, pack (weights as graph constants) and lower on `pass.graph`; outcomes into `pass.lowering`. */
  lower(pass: LoweringPass): Promise<void> | void;
  /** Switched off: what the report says instead, if anything. */
  off?(pass: LoweringPass): void;
  /**
   * optimize(): the lowering on the graph over the module that owns the weights, replacing them
   * one at a time. A portable step that leaves new weights as graph constants says so (they are
   * moved to the module after it). Without one, optimize keeps what prepareGraphs lowered
   * (inPlace aside: each run plan makes its own, its adds depending on the shapes).
   */
  onOwnedModule?(pass: OwnedPass): Promise<{ movedWeights: boolean } | void>;
}

const oneDnnCpu = (device: string) => device === 'cpu' && runtimeInfo().hasMkldnn;

export const LOWERINGS: readonly LoweringEntry[] = [
  { name: 'writtenOutActivations', portable: true, onByDefault: () => true, when: 'always', stage: 'rewrite',
    what: 'activations and RMSNorm written out as arithmetic as the one ATen op (transforms/written-out-ops.ts)',
    lower: (pass) => {
      const found = recognizeWrittenOutOps(pass.graph);
      if (Object.keys(found).length) pass.lowering.writtenOutActivations = found;
    } },
  { name: 'concatenateProjections', portable: true, onByDefault: (d) => d !== 'cpu', when: 'on CUDA', stage: 'weights',
    what: 'projections with separate weights as one GEMM over weights concatenated once (concat-weights.ts)',
    lower: concatenateProjectionsStep, off: concatenationsOff },
  { name: 'foldBatchNorms', portable: true, onByDefault: () => true, when: 'always', stage: 'weights',
    what: 'eval batch norms folded into the convolutions before them (fold-batch-norm.ts)',
    lower: foldBatchNormsStep, onOwnedModule: foldBatchNormsOnOwnedModule },
  { name: 'pointwiseConvolutions', portable: false, onByDefault: oneDnnCpu, when: 'on CPU with oneDNN', stage: 'groups',
    what: 'convolutions with their residual add and activation on oneDNN\'s pointwise kernels over prepacked weights,'
      + ' channels last (conv-pointwise.ts)',
    lower: lowerConvolutionsStep, onOwnedModule: prepackConvolutionsOnOwnedModule },
  { name: 'packedLinears', portable: false, onByDefault: oneDnnCpu, when: 'on CPU with oneDNN', stage: 'groups',
    what: 'linear layers on weights packed once, on oneDNN\'s GEMM or (AVX2) our own (linear-packed.ts)',
    lower: packLinearsStep, onOwnedModule: prepackLinearsOnOwnedModule },
  { name: 'addNorms', portable: false, onByDefault: (d) => d === 'cpu', when: 'on CPU', stage: 'groups',
    what: 'residual adds and the layer norm or RMSNorm after them as one op of ours (add-norm.ts)',
    lower: addNormsStep, onOwnedModule: addNormsOnOwnedModule },
  { name: 'biasGelus', portable: false, onByDefault: (d) => d === 'cpu', when: 'on CPU', stage: 'groups',
    what: 'a bias add and the GELU after it as one op of ours, where the linear stays on ATen (bias-gelu.ts)',
    lower: biasGelusStep, onOwnedModule: biasGelusOnOwnedModule },
  { name: 'maxPools', portable: false, onByDefault: (d) => d === 'cpu', when: 'on CPU', stage: 'groups',
    what: 'max pools over channels-last activations as one op of ours without indices (max-pool.ts)',
    lower: maxPoolsStep, onOwnedModule: maxPoolsOnOwnedModule },
  { name: 'inPlace', portable: true, onByDefault: () => true, when: 'always', stage: 'last',
    what: 'activations and residual adds in place where their input dies (in-place.ts)',
    lower: (pass) => { pass.lowering.inPlaceOps = inPlaceWhereInputsDie(pass.graph); } },
];

/** Whether lowering `name` runs: the caller's switch, else its default on `device`. */
export function loweringOn(name: LoweringName, options: LoweringSwitches, device: string): boolean {
  return options[name] ?? LOWERINGS.find((l) => l.name === name)!.onByDefault(device);
}

/** The lowerings of `stage`, in the table's order. */
export function loweringsAt(stage: LoweringStage): LoweringEntry[] {
  return LOWERINGS.filter((l) => l.stage === stage);
}

/** `options` with every machine-specific lowering off: the portable rewrites only. */
export function portableOnly<T extends LoweringSwitches>(options: T): T {
  return { ...options, ...Object.fromEntries(LOWERINGS.filter((l) => !l.portable).map((l) => [l.name, false])) };
}
