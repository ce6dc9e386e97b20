// The lowerings that can be switched, declared once: their option name, when each is on by
// default, and whether what it writes is portable (kept in a saved optimized model) or specific
// to this machine (prepacked weights, redone when a saved model is optimized again).
// prepareGraphs' defaults, `bench --ablate` and optimize's split read this table.
import { runtimeInfo } from '../torchscript/runtime-info';

export interface LoweringSwitches {
  concatenateProjections?: boolean;
  foldBatchNorms?: boolean;
  pointwiseConvolutions?: boolean;
  packedLinears?: boolean;
  inPlace?: boolean;
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
