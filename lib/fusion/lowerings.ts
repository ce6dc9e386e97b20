// The lowerings that can be switched, declared once: their option name, when each is on by
// default, and whether what it writes is portable (kept in a saved optimized model) or specific
// to this machine (prepacked weights, redone when a saved model is optimized again).
// prepareGraphs' defaults, `bench --ablate` and optimize's split read this table.
import { runtimeInfo } from '../torchscript/runtime-info';

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
   * float32 linear layers on weights oneDNN reorders once (mkldnn::_linear_pointwise,
   * linear-packed.ts), held by the fused graph (the weight's own size); `optimize` replaces the
   * originals with them. Default: on CPU where libtorch has oneDNN.
   */
  packedLinears?: boolean;
  /** Activations and residual adds in place where their input dies there (in-place.ts). Default: on. */
  inPlace?: boolean;
  /** Activations written out as arithmetic (GPT-2's tanh GELU, ...) as the one ATen op (transforms/written-out-activations.ts). Default: on. */
  writtenOutActivations?: boolean;
}

export type LoweringName = keyof LoweringSwitches;

export interface LoweringEntry {
  name: LoweringName;
  /** Kept in a saved optimized model (true), or redone on the machine that runs it (false). */
  portable: boolean;
  /** On unless the caller says otherwise, on `device`. */
  onByDefault(device: string): boolean;
  /** What it does, in one line (lib/fusion/ holds the lowering). */
  what: string;
}

const oneDnnCpu = (device: string) => device === 'cpu' && runtimeInfo().hasMkldnn;

export const LOWERINGS: readonly LoweringEntry[] = [
  { name: 'concatenateProjections', portable: true, onByDefault: (d) => d !== 'cpu',
    what: 'projections with separate weights as one GEMM over weights concatenated once (concat-weights.ts)' },
  { name: 'foldBatchNorms', portable: true, onByDefault: () => true,
    what: 'eval batch norms folded into the convolutions before them (fold-batch-norm.ts)' },
  { name: 'pointwiseConvolutions', portable: false, onByDefault: oneDnnCpu,
    what: 'convolutions with their residual add and activation on oneDNN\'s pointwise kernels over prepacked weights, channels last (conv-pointwise.ts)' },
  { name: 'packedLinears', portable: false, onByDefault: oneDnnCpu,
    what: 'linear layers on weights oneDNN reorders once (linear-packed.ts)' },
  { name: 'inPlace', portable: true, onByDefault: () => true,
    what: 'activations and residual adds in place where their input dies (in-place.ts)' },
  { name: 'writtenOutActivations', portable: true, onByDefault: () => true,
    what: 'activations written out as arithmetic as the one ATen op (transforms/written-out-activations.ts)' },
];

/** Whether lowering `name` runs: the caller's switch, else its default on `device`. */
export function loweringOn(name: LoweringName, options: LoweringSwitches, device: string): boolean {
  return options[name] ?? LOWERINGS.find((l) => l.name === name)!.onByDefault(device);
}

/** `options` with every machine-specific lowering off: the portable rewrites only. */
export function portableOnly<T extends LoweringSwitches>(options: T): T {
  return { ...options, ...Object.fromEntries(LOWERINGS.filter((l) => !l.portable).map((l) => [l.name, false])) };
}
