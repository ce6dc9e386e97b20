// optimize() keeps the faster form: the rewritten graph is timed against the original model on
// the planned inputs before the weights move, and where every rewritten run is slower than every
// original run (a fast-path op PyTorch runs whole, or a model too small for the lowered kernels
// to pay), the original graph is kept instead, with both times in the report. The two are timed
// apart so that neither runs beside the other's memory: the original first, before the rewrite
// (and its worker thread) exists; the rewritten graph once its weights have moved to a module of
// their own and the original module is gone. Timed side by side, the original's transient memory
// (ATen's per-call weight reorders, its activations) on top of the rewrite's graphs and copies
// set optimize's peak RSS (ResNet-50 batch 1: 443 MiB, against 387 for load + run of the original).
import type { Graph } from '../core/ir';
import type { Module } from '../torchscript/module';
import type { InputSpec } from '../torchscript/propagate-shapes';
import { nativeSync } from '../core/errors';
import { nativeOf } from '../torchscript/tensor';
import { randomTensor } from '../torchscript/random';
import { median } from './median';
import type { NativeRunResult, NativeValue } from '../torchscript/binding';
import { interleavedRuns, ranSlower, runDiscardingOutputs } from './interleaved-runs';

export interface FormChoice {
  /** The form optimize kept. */
  kept: 'rewritten' | 'original';
  /** Medians of the timed runs (inside libtorch), interleaved, after warm-up. */
  rewrittenMs: number;
  originalMs: number;
  reason: string;
}

/** Slower beyond the runs' spread, and by more than timer-level noise (ranSlower): the original is kept. */
export function chooseForm(rewritten: readonly number[], original: readonly number[]): FormChoice {
  const r = median(rewritten), o = median(original);
  const slower = ranSlower(rewritten, original);
  const times = `${r.toFixed(3)} ms against the original's ${o.toFixed(3)} ms (medians of ${rewritten.length} runs each)`;
  return slower
    ? {
        kept: 'original', rewrittenMs: r, originalMs: o,
        reason: `the rewritten graph ran slower: ${times}, every run slower; the original graph is kept`,
      }
    : { kept: 'rewritten', rewrittenMs: r, originalMs: o, reason: `the rewritten graph ran ${times}` };
}

/** Timed runs of `run` on seeded inputs like `specs` (after a warm-up that settles), outputs disposed; ms inside libtorch. */
async function timedRuns(
  module: Module, specs: readonly InputSpec[], repetitions: number, run: (args: NativeValue[]) => Promise<NativeRunResult>,
): Promise<number[]> {
  const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, i));
  const moved = inputs.map((t) => (t.device === module.device ? t : t.to(module.device)));
  try {
    const args = module._resolveInputs(moved.map(nativeOf));
    const once = async () => (await runDiscardingOutputs(() => run(args))).ms;
    const { results: [times] } = await interleavedRuns([{ warm: once, timed: once }], { repetitions, warmUp: { min: 2, budgetMs: 5_000 } });
    return times;
  } finally {
    moved.forEach((t, i) => { if (t !== inputs[i]) t.dispose(); });
    inputs.forEach((t) => t.dispose());
  }
}

/** `module`'s own forward, timed before any rewrite of it exists. */
export function timeOriginalRuns(module: Module, specs: readonly InputSpec[], repetitions = 5): Promise<number[]> {
  return timedRuns(module, specs, repetitions, (args) => module._native.run('forward', args));
}

/** `rewritten`, built over `module`'s weights, timed on the same seeded inputs. */
export async function timeRewrittenRuns(module: Module, rewritten: Graph, specs: readonly InputSpec[], repetitions = 5): Promise<number[]> {
  const g = nativeSync(() => module._native.buildGraph(rewritten.toData()));
  try {
    return await timedRuns(module, specs, repetitions, (args) => g.run(args));
  } finally {
    g.dispose();
  }
}
