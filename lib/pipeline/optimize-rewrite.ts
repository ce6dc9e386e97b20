// optimize()'s rewrite, on whichever thread runs it (optimize-worker.ts runs it in a worker):
//   1. portable rewrites on the original module (decompose, lower attention to SDPA, activations
//      as one op): prepareGraphs with every lowering that has a step on the owned module off;
//   2. the weights that graph reads move into a flat module of their own (fusion/own-weights.ts)
//      and the original module is disposed: what the graph does not read is freed;
//   3. each lowering's step on the owned module (lib/fusion/lowerings.ts), one weight at a time:
//      batch norms folded (portable), then weights prepacked in place (machine-specific: oneDNN's
//      reordered linear weight is the same bytes, and aten::to_dense gives it back exactly,
//      which is how save() writes the portable file).
import type { Graph } from '../core/ir';
import { Module } from '../torchscript/module';
import { binding, releaseFreedMemory } from '../torchscript/binding';
import { nativeSync } from '../core/errors';
import type { ArgumentInfo } from '../torchscript/arguments';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { prepareGraphs, type FuseOptions } from './prepare';
import type { LoweringOutcome, LoweringReport } from '../fusion/lower-fused';
import { ownWeights, ownedModuleSpec, type OwnedWeight } from '../fusion/own-weights';
import { partitionForLowering } from '../fusion/lower-groups';
import { LOWERINGS, loweringOn, portableOnly, type LoweringEntry } from '../fusion/lowerings';
import type { OwnedPass, PackedWeight } from '../fusion/lowering-pass';
import { packageVersion } from '../torchscript/package-root';
import { exportView, functionGraphs } from '../transforms/module-views';
import { inlineFunctionCalls } from '../transforms/inline-functions';
import {
  chooseForm, timeOriginalRuns, timeRewrittenRuns, timeSideBySide, type FormChoice, type OwnedGraph, type SideBySideTimes,
} from './faster-form';
import { loadModel } from '../program/load-model';

export interface OptimizeOptions extends Omit<FuseOptions, 'partition'> {
  /**
   * Rewrite in a worker thread (default true): the rewrite's JavaScript objects (graphs, shape
   * runs) then live in a heap that is freed when it ends, instead of growing this thread's heap
   * for good (V8 keeps a grown young generation: ~30 MiB after a ResNet-50). The weights are
   * shared, not copied. false rewrites on this thread.
   */
  worker?: boolean;
  /**
   * Time the rewritten graph against the original on the planned inputs before the weights move,
   * and keep the original graph where every rewritten run is slower (default true; faster-form.ts).
   */
  keepFaster?: boolean;
}

export interface OptimizeReport {
  /** The input specs the graph was planned for. */
  plannedFor: InputSpec[];
  /** What the portable lowering did (attention cores, folds, activations, in place). */
  lowering: LoweringReport;
  /** Linear layers on oneDNN-reordered weights (machine-specific, redone when a saved file is optimized). */
  packedLinears: LoweringOutcome[];
  /** Convolutions (with their residual add and activation) on oneDNN's pointwise kernels over prepacked weights, channels last. */
  convolutions: LoweringOutcome[];
  /** The tensors the optimized model holds, by attribute, with where each came from. */
  weights: OwnedWeight[];
  packed: PackedWeight[];
  /** Bytes of every tensor the optimized model holds (packed weights included), and of the original module's parameters and buffers. */
  heldBytes: number;
  originalBytes: number;
  /** How calls with other shapes than `plannedFor` run. */
  otherShapes: string;
  /** The rewritten graph timed against the original, and which one was kept (absent with keepFaster false or a saved file). */
  form?: FormChoice;
  timings: Record<string, number>;
}

/** What a saved optimized model records (the archive's torchgraph.json). */
export interface OptimizedMetadata {
  torchgraph: string;
  torch: string;
  optimizedFrom: string;
  plannedFor: InputSpec[];
  options: OptimizeOptions;
  inputs: { name: string; type: string }[];
}

/** `g`'s weights moved off `from` into a new flat module (ownWeights), wrapped with forward's arguments. */
async function moveWeights(
  from: Module, g: Graph, signature: readonly ArgumentInfo[],
): Promise<{ module: Module; weights: OwnedWeight[] }> {
  const owned = await ownWeights(from._native, g);
  try {
    const handle = nativeSync(() => binding().createModule(ownedModuleSpec(owned.graph, owned.tensors, signature), from.device));
    const forward = signature.length ? signature : graphSignature(owned.graph);
    return { module: Module._fromNative(handle, from.path, forward), weights: owned.weights };
  } finally {
    for (const t of owned.tensors.values()) t.dispose();
  }
}

/** The arguments of the graph after self, as the owned module's forward signature when the original has none to give. */
function graphSignature(g: Graph): ArgumentInfo[] {
  return g.inputs.slice(1).map((v, i) => ({ name: v.name?.replace(/\.\d+$/, '') ?? `input_${i}`, type: v.type.kind === 'Tensor' ? 'Tensor' : v.type.kind, hasDefault: false, kwargOnly: false }));
}

/** The options a saved model records: the lowerings' switches (not where the rewrite ran). */
function optionsRecorded(options: OptimizeOptions): OptimizeOptions {
  const { worker: _worker, ...switches } = options;
  return switches;
}

/** What optimize() builds an OptimizedModel from: the module that owns the weights and the graphs over it. */
export interface RewrittenModel {
  module: Module;
  /** What save() writes (SDPA cores, folded batch norms; plain weights), with shapes. */
  portable: Graph;
  /** `portable` with the machine-specific lowerings: what every run plan starts from. */
  run: Graph;
  packed: Map<string, PackedWeight>;
  signature: ArgumentInfo[];
  metadata: OptimizedMetadata;
  report: OptimizeReport;
  inPlace: boolean;
}

export const OTHER_SHAPES = (maxPlans: number) => 'a call with other shapes re-plans the run graph for them from the portable graph '
  + '(shapes, ops on the prepacked weights, adds in place where an input dies at those shapes) in milliseconds; '
  + `the ${maxPlans} most recent plans are kept; the prepacked weights serve every shape`;

/** The portable rewrite: the fused graph, or a saved file's graph as it is; with the original's timed runs for the faster-form check. */
async function portableGraph(module: Module, inputs: readonly InputSpec[], options: OptimizeOptions,
  time: <T>(name: string, f: () => T | Promise<T>) => Promise<T>, originalMs: number[] | undefined,
): Promise<{ portable: Graph; lowering: LoweringReport; fromSaved: boolean; originalTimes?: number[] }> {
  if (savedRewrite(module)) {
    // Already rewritten by torchgraph: only the weights move and are prepacked again.
    return { portable: exportView(module, 'inlined').graph, lowering: nothingLowered(), fromSaved: true };
  }
  // The lowerings with a step on the owned module run there, after the weights have moved (batch
  // norms folded one at a time, weights prepacked in place). Adds in place depend on the shapes
  // (an operand may broadcast at others): each run plan makes its own.
  const fuseOptions: FuseOptions = {
    ...portableOnly(options), ...Object.fromEntries(LOWERINGS.filter((l) => l.onOwnedModule).map((l) => [l.name, false])), inPlace: false,
  };
  const originalTimes = options.keepFaster === false ? undefined
    : originalMs ?? await time('time the original', () => timeOriginalFirst(module, inputs));
  const p = await time('prepare', () => prepareGraphs(module, inputs, fuseOptions));
  // TorchScript functions a scripted model calls (timm's F.layer_norm) live in its compilation
  // unit, not in the module of its own the weights move to: their bodies are inlined first.
  if (inlineFunctionCalls(p.fused, functionGraphs(module)) > 0) await propagateShapes(p.fused, module, inputs);
  return { portable: p.fused, lowering: p.lowering, fromSaved: false, ...(originalTimes ? { originalTimes } : {}) };
}

/** The original model's own graph over a module of its own, loaded again from its file (the rewrite ran slower). */
async function originalOwned(
  path: string, device: string, inputs: readonly InputSpec[], signature: readonly ArgumentInfo[],
): Promise<{ portable: Graph; module: Module; weights: OwnedWeight[] }> {
  const again = await loadModel(path, { device });
  try {
    const portable = exportView(again, 'inlined').graph;
    inlineFunctionCalls(portable, functionGraphs(again));
    await propagateShapes(portable, again, inputs);
    return { portable, ...await moveWeights(again, portable, signature) };
  } finally {
    again.dispose();
    releaseFreedMemory();
  }
}

/**
 * The original's times for optimize's faster-form check: its runs timed before the rewrite began
 * (timeOriginalBeforeRewrite), and how the two are timed side by side where the rewrite ran slower
 * apart (timeSideBySide; a test gives times of its own to drive either outcome).
 */
export interface FormCheck {
  originalMs: number[];
  sideBySide?: (rewritten: OwnedGraph, original: OwnedGraph, inputs: readonly InputSpec[]) => Promise<SideBySideTimes>;
}

/**
 * The faster-form check on what optimize will run (its run graph, every lowering in it, over the
 * module that owns the weights), against the original's runs timed before the rewrite began:
 * timed apart, neither runs beside the other's memory (faster-form.ts). Where every run was
 * slower, the original's own graph is loaded again from its file, unlowered, over its own weights,
 * and the two are timed side by side: where the rewrite is slower there too, the original is kept.
 */
async function fasterForm(
  owned: { portable: Graph; run: Graph; module: Module; weights: OwnedWeight[] }, check: FormCheck, inputs: readonly InputSpec[],
  signature: readonly ArgumentInfo[], time: <T>(name: string, f: () => T | Promise<T>) => Promise<T>,
): Promise<{ form: FormChoice; portable: Graph; run: Graph; module: Module; weights: OwnedWeight[] }> {
  const rewrittenTimes = await time('time the rewritten graph', () => timeRewrittenRuns(owned.module, owned.run, inputs));
  const apart = chooseForm(rewrittenTimes, check.originalMs);
  if (apart.kept === 'rewritten') return { form: apart, ...owned };
  const path = owned.module.path;
  let original: Awaited<ReturnType<typeof originalOwned>>;
  try {
    original = await time('load the original again', () => originalOwned(path, owned.module.device, inputs, signature));
  } catch (e) {
    const reason = `${apart.reason.replace(/; the original graph is kept$/, '')}, but the original could not be loaded again from ${path} `
      + `(${(e as Error).message}): the rewritten graph is kept`;
    return { form: { ...apart, kept: 'rewritten', reason }, ...owned };
  }
  let keep = false;
  try {
    const sideBySide = check.sideBySide ?? timeSideBySide;
    const t = await time('time both side by side', () => sideBySide(
      { module: owned.module, graph: owned.run }, { module: original.module, graph: original.portable }, inputs));
    const form = chooseForm(t.rewritten, t.original, 'side by side');
    if (form.kept === 'rewritten') {
      const before = `apart, it had run ${apart.rewrittenMs.toFixed(3)} ms against ${apart.originalMs.toFixed(3)}`;
      return { form: { ...form, reason: `${form.reason} (${before})` }, ...owned };
    }
    keep = true;
    owned.module.dispose();
    return { form, ...original, run: original.portable.clone() };
  } finally {
    if (!keep) original.module.dispose();
  }
}

/** A fresh report of no portable lowering (the owned-module steps add to it). */
const nothingLowered = (): LoweringReport => ({
  attentionCores: [], projections: [], linearActs: [], notLowered: [], heldWeightBytes: 0,
});

/** Whether `module` is a file OptimizedModel.save() wrote: only its weights move and are prepacked again. */
function savedRewrite(module: Module): boolean {
  const saved = module.metadata as OptimizedMetadata | null;
  return !!saved && typeof saved.torchgraph === 'string';
}

async function timeOriginalFirst(module: Module, inputs: readonly InputSpec[]): Promise<number[]> {
  const times = await timeOriginalRuns(module, inputs);
  releaseFreedMemory();
  return times;
}

/**
 * The original's timed runs for the faster-form check, when optimize will make one: before the
 * rewrite packs anything, and before a worker thread exists (faster-form.ts says why), so that
 * they add nothing to the peak of load + run of the original.
 */
export async function timeOriginalBeforeRewrite(
  module: Module, inputs: readonly InputSpec[], options: OptimizeOptions,
): Promise<number[] | undefined> {
  if (options.keepFaster === false || savedRewrite(module)) return undefined;
  return timeOriginalFirst(module, inputs);
}

/**
 * optimize()'s rewrite of `module` for inputs like `inputs` (see optimize.ts), with the faster-form
 * check's original times if taken already (timeOriginalBeforeRewrite). The module is disposed once its weights
 * have moved, after `weightsMoved` resolves (a worker's caller disposes its own handle then).
 */
export async function rewriteModel(module: Module, inputs: readonly InputSpec[], options: OptimizeOptions, maxPlans: number,
  check?: FormCheck, weightsMoved: () => Promise<void> = async () => {}): Promise<RewrittenModel> {
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await f(); } finally { timings[name] = performance.now() - t0; }
  };
  const device = module.device;
  const originalBytes = module.parameterBytes;
  const signature = module._signature('forward').map((a) => ({ ...a }));
  const saved = module.metadata as OptimizedMetadata | null;
  const rewrite = await portableGraph(module, inputs, options, time, check?.originalMs);
  const { fromSaved, originalTimes } = rewrite;
  const { lowering } = rewrite;
  let { portable } = rewrite;
  const owned = await time('own weights', () => moveWeights(module, portable, signature));
  // The original's tensors that the graph does not read are freed here.
  try {
    await weightsMoved();
  } finally {
    module.dispose();
    releaseFreedMemory();
  }
  let ownedModule = owned.module;
  let weights = owned.weights;
  let form: FormChoice | undefined;
  const on = (l: LoweringEntry) => l.onOwnedModule !== undefined && loweringOn(l.name, options, device);
  const pass: OwnedPass = {
    module: ownedModule._native, portable, run: portable, packed: new Map(), lowering, partition: partitionForLowering,
  };
  try {
    if (!fromSaved) {
      // Portable steps on the owned module (batch norms folded one at a time); the new weights
      // they leave as graph constants move to a module of their own, the released ones stay behind.
      let moved = false;
      for (const l of LOWERINGS.filter((x) => x.portable && on(x))) {
        const r = await time(l.name, () => l.onOwnedModule!(pass));
        moved ||= r?.movedWeights === true;
      }
      if (moved) {
        const again = await time('own new weights', () => moveWeights(ownedModule, portable, signature));
        const first = new Map(weights.map((w) => [w.name, w.source]));
        const sourceOf = (s: string) => first.get(s) ?? (s === 'constant' ? 'computed by a lowering' : s);
        weights = again.weights.map((w) => ({ ...w, source: sourceOf(w.source) }));
        ownedModule.dispose();
        ownedModule = again.module;
        pass.module = ownedModule._native;
        await propagateShapes(portable, ownedModule, inputs);
      }
    } else {
      // The graph keeps the shapes propagated when it was lowered (ownWeights copies them over); a saved file's has none yet.
      await propagateShapes(portable, ownedModule, inputs);
    }
    // Machine-specific steps, one weight at a time in place, on the run graph only.
    pass.run = portable.clone();
    for (const l of LOWERINGS.filter((x) => !x.portable && on(x))) await time(`prepack: ${l.name}`, () => l.onOwnedModule!(pass));
    if (originalTimes) {
      const checked = await fasterForm(
        { portable, run: pass.run, module: ownedModule, weights }, { ...check, originalMs: originalTimes }, inputs, signature, time);
      form = checked.form;
      if (form.kept === 'original') {
        ({ portable, run: pass.run, module: ownedModule, weights } = checked);
        Object.assign(pass, { portable, module: ownedModule._native, packed: new Map(), lowering: nothingLowered() });
      }
    }
    const packed = pass.packed;
    const metadata: OptimizedMetadata = {
      torchgraph: packageVersion(), torch: binding().torchVersion, optimizedFrom: saved?.optimizedFrom ?? module.path,
      plannedFor: inputs.map((s) => ({ shape: [...s.shape], dtype: s.dtype })), options: optionsRecorded(options),
      inputs: signature.map((a) => ({ name: a.name, type: a.type })),
    };
    const { packedLinears = [], convolutions = [], ...portableLowering } = pass.lowering;
    const report: OptimizeReport = {
      plannedFor: metadata.plannedFor, lowering: portableLowering, packedLinears, convolutions, weights,
      packed: [...packed.values()], heldBytes: ownedModule.parameterBytes, originalBytes, otherShapes: OTHER_SHAPES(maxPlans), timings,
      ...(form ? { form } : {}),
    };
    const inPlace = loweringOn('inPlace', options, device);
    return { module: ownedModule, portable, run: pass.run, packed, signature, metadata, report, inPlace };
  } catch (e) {
    ownedModule.dispose();
    throw e;
  }
}
