// Which kernel a machine-specific lowering emits where torchgraph has its own beside oneDNN's
// (packed linears: linear-packed.ts; image stems: conv-pointwise.ts). Ours measured faster where
// ATen runs AVX2 and is unmeasured on AVX-512, so oneDNN's stays the pick there; an environment
// variable forces either on any machine (the tests run both).
import { runtimeInfo } from '../torchscript/runtime-info';

export type KernelChoice = 'onednn' | 'torchgraph';

/** Ours where ATen's kernels run AVX2, oneDNN's elsewhere; `variable`=onednn|torchgraph picks one. */
export function kernelChoice(variable: string): KernelChoice {
  const forced = process.env[variable];
  if (forced === 'onednn' || forced === 'torchgraph') return forced;
  if (forced) throw new Error(`${variable} is '${forced}': it takes 'onednn' or 'torchgraph'`);
  return runtimeInfo().cpuCapability === 'AVX2' ? 'torchgraph' : 'onednn';
}
