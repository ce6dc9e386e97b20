// optimize() keeps the faster form: the rewritten graph is timed against the original model on
// the planned inputs before the weights move, and where every rewritten run is slower than every
// original run (a fast-path op PyTorch runs whole, or a model too small for the lowered kernels
// to pay), the original graph is kept instead, with both times in the report. The two are timed
// apart so that neither runs beside the other's memory: the original first, before the rewrite
// (and its worker thread) exists; the rewritten graph once its weights have moved to a module of
// their own and the original module is gone. Timed side by side, the original's transient memory
// (ATen's per-call weight reorders, its activations) on top of the rewrite's graphs and copies
// set optimize's peak RSS (ResNet-50 batch 1: 443 MiB, against 387 for load + run of the original).
// Runs apart can each fall on a noisy moment of a shared machine (a CI run timed a rewrite that
// usually wins 26 ms to 27-34 at 34 against 27), so where the rewrite ran slower apart, the two are
// timed again side by side (the original is loaded again then to be kept anyway), and that decides.
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
export function chooseForm(
  rewritten: readonly number[], original: readonly number[], timed: 'apart' | 'side by side' = 'apart',
): FormChoice {
  const r = median(rewritten), o = median(original);
  const slower = ranSlower(rewritten, original);
  const times = `${r.toFixed(3)} ms against the original's ${o.toFixed(3)} ms (medians of ${rewritten.length} runs each, timed ${timed})`;
  return slower
    ? {
        kept: 'original', rewrittenMs: r, originalMs: o,
        reason: `the rewritten graph ran slower: ${times}, every run slower; the original graph is kept`,
      }
    : { kept: 'rewritten', rewrittenMs: r, originalMs: o, reason: `the rewritten graph ran ${times}` };
}

/** Seeded inputs like `specs` on `module`'s device, resolved for its forward; `use` gets them, then they are disposed. */
async function withInputs<T>(module: Module, specs: readonly InputSpec[], use: (args: NativeValue[]) => Promise<T>): Promise<T> {
  const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, i));
  const moved = inputs.map((t) => (t.device === module.device ? t : t.to(module.device)));
  try {
    return await use(module._resolveInputs(moved.map(nativeOf)));
  } finally {
    moved.forEach((t, i) => { if (t !== inputs[i]) t.dispose(); });
    inputs.forEach((t) => t.dispose());
  }
}

const WARM_UP = { min: 2, budgetMs: 5_000 };

/** Timed runs of `run` on seeded inputs like `specs` (after a warm-up that settles), outputs disposed; ms inside libtorch. */
function timedRuns(
  module: Module, specs: readonly InputSpec[], repetitions: number, run: (args: NativeValue[]) => Promise<NativeRunResult>,
): Promise<number[]> {
  return withInputs(module, specs, async (args) => {
    const once = async () => (await runDiscardingOutputs(() => run(args))).ms;
    const { results: [times] } = await interleavedRuns([{ warm: once, timed: once }], { repetitions, warmUp: WARM_UP });
    return times;
  });
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

/** A graph over the module that owns its weights. */
export interface OwnedGraph {
  module: Module;
  graph: Graph;
}

/** Times of two forms run side by side. */
export interface SideBySideTimes {
  rewritten: number[];
  original: number[];
}

/**
 * The rewritten and the original graph, each over its own weights, timed interleaved on the same
 * seeded inputs: where the rewrite ran slower alone, this settles it (the runs apart can fall on
 * either side of a noisy moment of a shared machine; interleaved, both see it).
 */
export async function timeSideBySide(
  rewritten: OwnedGraph, original: OwnedGraph, specs: readonly InputSpec[], repetitions = 7,
): Promise<SideBySideTimes> {
  const built = [rewritten, original].map((f) => nativeSync(() => f.module._native.buildGraph(f.graph.toData())));
  try {
    return await withInputs(rewritten.module, specs, (rArgs) => withInputs(original.module, specs, async (oArgs) => {
      const form = (i: number, args: NativeValue[]) => {
        const once = async () => (await runDiscardingOutputs(() => built[i].run(args))).ms;
        return { warm: once, timed: once };
      };
      const { results } = await interleavedRuns([form(0, rArgs), form(1, oArgs)], { repetitions, warmUp: WARM_UP });
      return { rewritten: results[0], original: results[1] };
    }));
  } finally {
    built.forEach((g) => g.dispose());
  }
}
