// optimize() keeps the faster form: the rewritten graph is timed against the original model on
// the planned inputs before the weights move, and where every rewritten run is slower than every
// original run (a fast-path op PyTorch runs whole, or a model too small for the lowered kernels
// to pay), the original graph is kept instead, with both times in the report.
import type { Graph } from '../core/ir';
import type { Module } from '../torchscript/module';
import type { InputSpec } from '../torchscript/propagate-shapes';
import { nativeSync } from '../core/errors';
import { nativeOf } from '../torchscript/tensor';
import { randomTensor } from '../torchscript/random';
import { median } from './median';
import type { NativeRunResult } from '../torchscript/binding';
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
  const times = `${r.toFixed(3)} ms against the original's ${o.toFixed(3)} ms (medians of ${rewritten.length} interleaved runs)`;
  return slower
    ? {
        kept: 'original', rewrittenMs: r, originalMs: o,
        reason: `the rewritten graph ran slower: ${times}, every run slower; the original graph is kept`,
      }
    : { kept: 'rewritten', rewrittenMs: r, originalMs: o, reason: `the rewritten graph ran ${times}` };
}

/** A form timed inside libtorch, its outputs disposed. */
function form(run: () => Promise<NativeRunResult>) {
  const once = async () => (await runDiscardingOutputs(run)).ms;
  return { warm: once, timed: once };
}

/** Time `rewritten` (built over `module`'s weights) against `module`'s own forward on seeded inputs like `specs`. */
export async function timeAgainstOriginal(
  module: Module, rewritten: Graph, specs: readonly InputSpec[], repetitions = 5,
): Promise<FormChoice> {
  const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, i));
  const moved = inputs.map((t) => (t.device === module.device ? t : t.to(module.device)));
  const args = module._resolveInputs(moved.map(nativeOf));
  const g = nativeSync(() => module._native.buildGraph(rewritten.toData()));
  try {
    const { results: [original, rewrittenTimes] } = await interleavedRuns(
      [form(() => module._native.run('forward', args)), form(() => g.run(args))],
      { repetitions, warmUp: { min: 2, budgetMs: 5_000 } },
    );
    return chooseForm(rewrittenTimes, original);
  } finally {
    g.dispose();
    moved.forEach((t, i) => { if (t !== inputs[i]) t.dispose(); });
    inputs.forEach((t) => t.dispose());
  }
}
