// From a loaded model to the three graphs the runtime compares:
//   standard    torch.fx-like view (leaf modules are calls), for node counts;
//   decomposed  attention expanded into explicit ops (leaf modules then inlined too, so every
//               op is visible to the partitioner and the analyses): the "unfused" graph;
//   fused       the decomposed graph with fusion groups lowered to fused kernels.
import type { Graph } from '../core/ir';
import type { Module } from '../torchscript/module';
import { decomposeModelGraph, type DecompositionResult } from '../transforms/decompose-model';
import { lowerFusionGroups, partitionForLowering, type FusionGroupLike } from './fuse';
import type { LoweringOutcome, LoweringReport } from '../fusion/lower-fused';
import type { TensorHandleLike } from '../core/ir/serialized';
import { foldBatchNorms, planBatchNormFolds, type FoldedWeights } from '../fusion/fold-batch-norm';
import { lowerConvPointwise, packConvWeights, planConvPointwise } from '../fusion/conv-pointwise';
import { restoreLayouts } from '../fusion/channels-last';
import { lowerPackedLinear, packLinearWeights, planPackedLinears } from '../fusion/linear-packed';
import { inPlaceWhereInputsDie } from '../fusion/in-place';
import { recognizeWrittenOutActivations } from '../transforms/written-out-activations';
import { canonicalize } from '../transforms/canonicalize';
import { concatenateWeights, planConcatenations } from '../fusion/concat-weights';
import type { PackedWeights } from '../fusion/lower-fused';
import { inlineModuleCalls } from '../transforms/inline-modules';
import { foldModuleConstants } from '../transforms/fold-module-constants';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { inlineTakenBranches } from '../transforms/taken-branches';
import { cpuFlashAttentionWorkspace, estimateMemory, type MemoryEstimate } from '../analysis';
import { runtimeInfo } from '../torchscript/runtime-info';
import { exportView, methodGraphs, type ViewReport } from '../transforms/module-views';
import { loweringOn, type LoweringName, type LoweringSwitches } from '../fusion/lowerings';

export interface PreparedGraphs {
  standard: Graph;
  standardReport: ViewReport;
  /** The standard view with attention decomposed (leaf module calls kept): node counts only. */
  decomposedStandard: Graph;
  /** Decomposed and fully inlined: the unfused graph that runs and is analysed. */
  decomposed: Graph;
  decomposition: DecompositionResult;
  fused: Graph;
  groups: FusionGroupLike[];
  lowering: LoweringReport;
  /** The peak estimates the lowering was judged by (fuseDecomposed). */
  estimates: PeakEstimates;
  timings: Record<string, number>;
}

export type Partitioner = (decomposed: Graph) => FusionGroupLike[];

/** The lowerings' switches (lib/fusion/lowerings.ts: each one's default and whether it is portable), and the partitioner. */
export interface FuseOptions extends LoweringSwitches {
  partition?: Partitioner;
}

const PACKED_OVER_ADDMM_REASON = 'the linear runs on a weight oneDNN reordered once, and the activation after it (in place where its input dies); '
  + '_addmm_activation would read the plain weight';

const CPU_CONCAT_REASON = 'separate weights: on CPU one GEMM over concatenated weights is no faster than separate GEMMs and keeps every output live longer (the concatenateProjections option of prepareGraphs forces it)';

/**
 * Attention decomposed on a copy of the standard view, then every remaining module call
 * inlined so the partitioner and the analyses see every op. Returns both stages.
 */
export async function decomposeStandardView(module: Module, standard: Graph, inputs: readonly InputSpec[]):
Promise<{ decomposedStandard: Graph; decomposed: Graph; decomposition: DecompositionResult }> {
  const decomposedStandard = standard.clone();
  const decomposition = await decomposeModelGraph(module, decomposedStandard, inputs);
  const decomposed = decomposedStandard.clone();
  inlineModuleCalls(decomposed, methodGraphs(module), () => true);
  // Scripted leaf modules' bodies branch on their attributes (Dropout: `if self.inplace`);
  // folded, those branches leave straight-line ops the partitioner can group.
  foldModuleConstants(decomposed, module.tree());
  await propagateShapes(decomposed, module, inputs);
  return { decomposedStandard, decomposed, decomposition };
}

/**
 * The liveness peak estimate that measurements are checked against (validate) and lowering is
 * judged by. It follows the branches the shape run took (scripted models keep run-time checks as
 * prim::If; counted whole, an If would hold both of its paths at once). On CPU the flash kernel
 * and convolutions keep per-thread scratch; CUDA's caching allocator rounds to 512 B.
 */
export function estimatePeak(graph: Graph, device: string, mode: 'unfused' | 'fused'): MemoryEstimate {
  if (device !== 'cpu') return estimateMemory(inlineTakenBranches(graph).graph, { alignBytes: 512 });
  const threads = runtimeInfo().threads;
  return estimateMemory(inlineTakenBranches(graph).graph, mode === 'fused' ? { threads, sdpaWorkspace: cpuFlashAttentionWorkspace(threads) } : { threads });
}

/**
 * The fused graph: a copy of `decomposed` with the partitioner's groups (found on that copy)
 * lowered. A lowered attention core is judged by the peak estimate: when SDPA itself is where
 * the fused graph peaks above the unfused one (tiny sequences, where its output and per-thread
 * workspace outweigh the scores it saves), that core is kept explicit, with the figures.
 */
/** The peak estimates the lowering was judged by: what validate checks against measurements. */
export interface PeakEstimates { unfused: MemoryEstimate; fused: MemoryEstimate }

export async function fuseDecomposed(module: Module, decomposed: Graph, inputs: readonly InputSpec[], options: FuseOptions = {}):
Promise<{ fused: Graph; groups: FusionGroupLike[]; lowering: LoweringReport; estimates: PeakEstimates }> {
  const kept = new Map<string, string>();
  const unfused = estimatePeak(decomposed, module.device, 'unfused');
  let convolutionsOff: string | undefined;
  for (;;) {
    const { fused, groups, lowering } = await lowerOnCopy(module, decomposed, inputs, options, kept, convolutionsOff);
    const est = estimatePeak(fused, module.device, 'fused');
    const result = { fused, groups, lowering, estimates: { unfused, fused: est } };
    if (est.peakBytes <= unfused.peakBytes) return result;
    // Small feature maps: the pointwise kernels' scratchpads and the channels-last copies at the
    // region's exits can outweigh what they save; then the convolutions stay as they were.
    if (!convolutionsOff && lowering.convolutions?.some((c) => c.lowered)) {
      convolutionsOff = `at these shapes the pointwise kernels (their per-thread scratchpad, the channels-last copies where values leave them) would raise the fused peak to ${est.peakBytes} B against the unfused ${unfused.peakBytes} B: the convolutions stay as they are`;
      continue;
    }
    if (!lowering.attentionCores.some((c) => c.lowered)) return result;
    const atPeak = est.timeline[est.peakStep]?.nodes.map((n) => n.meta.fused as { kind: string; id: string } | undefined)
      .find((t) => t?.kind === 'attention_core' && !kept.has(t.id));
    if (!atPeak) return result;
    kept.set(atPeak.id, `at these shapes SDPA (its output and per-thread workspace) is where the fused graph would peak, at ${est.peakBytes} B against the explicit core's ${unfused.peakBytes} B: the core stays explicit`);
  }
}

/** One lowering: a copy of `decomposed`, canonicalised, partitioned, lowered (cores in `kept` stay explicit), shapes propagated. */
async function lowerOnCopy(module: Module, decomposed: Graph, inputs: readonly InputSpec[], options: FuseOptions, kept: ReadonlyMap<string, string>,
  convolutionsOff?: string):
Promise<{ fused: Graph; groups: FusionGroupLike[]; lowering: LoweringReport }> {
  let fused = decomposed.clone();
  // One spelling per pattern before matching: same-dtype casts, eval dropout, softmax's dtype.
  canonicalize(fused);
  const on = (name: LoweringName) => loweringOn(name, options, module.device);
  const activations = on('writtenOutActivations') ? recognizeWrittenOutActivations(fused) : {};
  const found = (options.partition ?? partitionForLowering)(fused);
  const groups = found.map((g) => {
    const why = kept.get(g.id);
    return why && g.kind === 'attention_core' ? { ...g, core: { ok: false as const, reason: why } } : g;
  });
  const plan = planConcatenations(fused, groups);
  const packed = new Map<string, PackedWeights | string>(plan.refused);
  if (on('concatenateProjections')) {
    for (const [id, p] of await concatenateWeights(module._native, fused, plan.requests)) packed.set(id, p);
  } else {
    for (const r of plan.requests) packed.set(r.id, CPU_CONCAT_REASON);
  }
  const folded = new Map<string, FoldedWeights | string>();
  if (on('foldBatchNorms')) {
    const folds = planBatchNormFolds(fused, groups);
    for (const [id, why] of folds.refused) folded.set(id, why);
    for (const [id, f] of await foldBatchNorms(module._native, fused, folds.requests)) folded.set(id, f);
  }
  const packLinears = on('packedLinears');
  // linear + activation groups whose linear will be packed keep their activation after it.
  const willPack = new Set(packLinears ? planPackedLinears(fused).requests.map((r) => r.linear) : []);
  const lowering = lowerFusionGroups(fused, groups, module.device, packed, folded,
    (nodes) => (nodes.some((n) => willPack.has(n)) ? PACKED_OVER_ADDMM_REASON : undefined));
  if (Object.keys(activations).length) lowering.writtenOutActivations = activations;
  if (on('pointwiseConvolutions')) {
    // Checked on a copy: a channels-last value written in place leaves the graph as it was.
    const attempt = fused.clone();
    const found = await lowerConvolutions(module, attempt, partitionForLowering(attempt));
    if (found.length) lowering.convolutions = convolutionsOff ? found.map((c) => ({ id: c.id, lowered: false, reason: c.reason ?? convolutionsOff })) : found;
    if (!convolutionsOff && found.some((c) => c.lowered)) fused = attempt;
  }
  if (packLinears) {
    // Packed for the row count each linear runs with: the lowered graph's own shapes.
    await propagateShapes(fused, module, inputs);
    const plan = planPackedLinears(fused);
    const weights = await packLinearWeights(module._native, fused, plan.requests);
    lowering.packedLinears = [...plan.requests.map((r) => lowerPackedLinear(fused, r, weights.get(r.id))),
      ...[...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }))];
    fused.eliminateDeadCode();
  }
  lowering.heldWeightBytes = heldBytes(fused, decomposed);
  await propagateShapes(fused, module, inputs);
  if (on('inPlace')) lowering.inPlaceOps = inPlaceWhereInputsDie(fused);
  return { fused, groups, lowering };
}

/** Pointwise-kernel lowering of the graph's conv_bn_act groups, in place; then the graph's layouts where values leave channels last. */
async function lowerConvolutions(module: Module, g: Graph, groups: FusionGroupLike[]): Promise<LoweringOutcome[]> {
  const plan = planConvPointwise(g, groups);
  const weights = await packConvWeights(module._native, g, plan.requests);
  const outcomes = [...plan.refused].map(([id, reason]): LoweringOutcome => ({ id, lowered: false, reason }));
  const lowered = plan.requests.map((r) => lowerConvPointwise(g, r, weights.get(r.id)));
  const starts = g.allNodes().filter((n) => n.kind === 'mkldnn::_convolution_pointwise').map((n) => n.output);
  try {
    restoreLayouts(g, starts);
  } catch (e) {
    const reason = `activations cannot stay channels last: ${(e as Error).message}`;
    return [...outcomes, ...lowered.map((o) => ({ id: o.id, lowered: false, reason }))].map((o) => ({ ...o, lowered: false, reason: o.reason ?? reason }));
  }
  g.eliminateDeadCode();
  g.verify();
  return [...lowered, ...outcomes];
}

/** Bytes of the tensor constants `fused` holds that `decomposed` does not (concatenated, folded, prepacked weights). */
function heldBytes(fused: Graph, decomposed: Graph): number {
  const tensorsOf = (g: Graph) => g.allNodes().filter((n) => n.isConstant).map((n) => n.attr('value')).filter((t): t is TensorHandleLike => typeof t === 'object' && t !== null && 'shape' in t);
  const own = new Set(tensorsOf(decomposed));
  return [...new Set(tensorsOf(fused))].filter((t) => !own.has(t)).reduce((sum, t) => sum + ((t as { nbytes?: number }).nbytes ?? 0), 0);
}

export async function prepareGraphs(module: Module, inputs: readonly InputSpec[], options: FuseOptions = {}): Promise<PreparedGraphs> {
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await f(); } finally { timings[name] = performance.now() - t0; }
  };
  const std = await time('standard', () => exportView(module, 'standard'));
  const dec = await time('decompose', () => decomposeStandardView(module, std.graph, inputs));
  const fus = await time('fuse', () => fuseDecomposed(module, dec.decomposed, inputs, options));
  return { standard: std.graph, standardReport: std.report, ...dec, ...fus, timings };
}
