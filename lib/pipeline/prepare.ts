// From a loaded model to the three graphs the runtime compares:
//   standard    leaf modules kept as calls (as torch.fx keeps them), for node counts;
//   decomposed  attention expanded into explicit ops (leaf modules then inlined too, so every
//               op is visible to the partitioner and the analyses): the "unfused" graph;
//   fused       the decomposed graph with fusion groups lowered to fused kernels.
import type { Graph } from '../core/ir';
import type { Module } from '../torchscript/module';
import { decomposeModelGraph, type DecompositionResult } from '../transforms/decompose-model';
import { lowerFusionGroups, partitionForLowering, type FusionGroupLike } from '../fusion/lower-groups';
import type { LoweringReport } from '../fusion/lower-fused';
import { tensorConstantOf } from '../core/constants';
import { planPackedLinears } from '../fusion/linear-packed';
import { canonicalize } from '../transforms/canonicalize';
import { inlineModuleCalls } from '../transforms/inline-modules';
import { foldModuleConstants } from '../transforms/fold-module-constants';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { inlineTakenBranches } from '../transforms/taken-branches';
import { cpuFlashAttentionWorkspace, estimateMemory, type MemoryEstimate } from '../analysis';
import { runtimeInfo } from '../torchscript/runtime-info';
import { exportView, functionGraphs, methodGraphs, type ViewReport } from '../transforms/module-views';
import { inlineFunctionCalls } from '../transforms/inline-functions';
import { loweringOn, loweringsAt, type LoweringName, type LoweringStage, type LoweringSwitches } from '../fusion/lowerings';
import type { LoweringPass } from '../fusion/lowering-pass';

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
  // A scripted model's TorchScript functions (timm MViTv2's relative-position helper, writing into
  // the scores) are ops like any other once inlined: an opaque call hides a core and its memory.
  inlineFunctionCalls(decomposed, functionGraphs(module));
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
  const { threads, cpuCapability } = runtimeInfo();
  // oneDNN's channel block follows the instruction set it runs: nChw16c with AVX-512, nChw8c below.
  const cpuChannelBlock = cpuCapability === 'AVX512' ? 16 : 8;
  const options = mode === 'fused'
    ? { threads, cpuChannelBlock, sdpaWorkspace: cpuFlashAttentionWorkspace(threads) } : { threads, cpuChannelBlock };
  return estimateMemory(inlineTakenBranches(graph).graph, options);
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
      convolutionsOff = 'at these shapes the pointwise kernels (their per-thread scratchpad, '
        + 'the channels-last copies where values leave them) '
        + `would raise the fused peak to ${est.peakBytes} B against the unfused ${unfused.peakBytes} B: the convolutions stay as they are`;
      continue;
    }
    if (!lowering.attentionCores.some((c) => c.lowered)) return result;
    const atPeak = est.timeline[est.peakStep]?.nodes.map((n) => n.meta.fused as { kind: string; id: string } | undefined)
      .find((t) => t?.kind === 'attention_core' && !kept.has(t.id));
    if (!atPeak) return result;
    kept.set(atPeak.id, 'at these shapes SDPA (its output and per-thread workspace) is where the fused graph would peak, '
      + `at ${est.peakBytes} B against the explicit core's ${unfused.peakBytes} B: the core stays explicit`);
  }
}

/**
 * One lowering: a copy of `decomposed`, canonicalised, then each lowering that is on at its stage
 * (lib/fusion/lowerings.ts), the partitioner's groups lowered between the 'weights' and 'groups'
 * stages (cores in `kept` stay explicit), shapes propagated.
 */
async function lowerOnCopy(module: Module, decomposed: Graph, inputs: readonly InputSpec[], options: FuseOptions,
  kept: ReadonlyMap<string, string>, convolutionsOff?: string):
Promise<{ fused: Graph; groups: FusionGroupLike[]; lowering: LoweringReport }> {
  const graph = decomposed.clone();
  // One spelling per pattern before matching: same-dtype casts, eval dropout, softmax's dtype.
  canonicalize(graph);
  const on = (name: LoweringName) => loweringOn(name, options, module.device);
  const pass: LoweringPass = {
    module: module._native, device: module.device, graph, groups: [], concatenated: new Map(), folded: new Map(),
    lowering: { attentionCores: [], projections: [], linearActs: [], notLowered: [], heldWeightBytes: 0 },
    propagateShapes: async (g) => { await propagateShapes(g, module, inputs); },
    partition: partitionForLowering, convolutionsOff,
  };
  const runStage = async (stage: LoweringStage) => {
    for (const l of loweringsAt(stage)) {
      if (on(l.name)) await l.lower(pass);
      else l.off?.(pass);
    }
  };
  await runStage('rewrite');
  const groups = (options.partition ?? partitionForLowering)(pass.graph).map((g) => {
    const why = kept.get(g.id);
    return why && g.kind === 'attention_core' ? { ...g, core: { ok: false as const, reason: why } } : g;
  });
  pass.groups = groups;
  await runStage('weights');
  // linear + activation groups whose linear will be packed are left to that lowering (the
  // activation becomes oneDNN's post-op on the reordered weight, reported with the linear).
  const willPack = new Set(on('packedLinears') ? planPackedLinears(pass.graph).requests.map((r) => r.linear) : []);
  const early = pass.lowering;
  pass.lowering = {
    ...lowerFusionGroups(pass.graph, groups, module.device, pass.concatenated, pass.folded,
      (nodes) => (nodes.some((n) => willPack.has(n)) ? null : undefined)),
    ...(early.writtenOutActivations ? { writtenOutActivations: early.writtenOutActivations } : {}),
  };
  await runStage('groups');
  pass.lowering.heldWeightBytes = heldBytes(pass.graph, decomposed);
  await propagateShapes(pass.graph, module, inputs);
  await runStage('last');
  return { fused: pass.graph, groups, lowering: pass.lowering };
}

/** Bytes of the tensor constants `fused` holds that `decomposed` does not (concatenated, folded, prepacked weights). */
function heldBytes(fused: Graph, decomposed: Graph): number {
  const tensorsOf = (g: Graph) => g.allNodes().filter((n) => n.isConstant).flatMap((n) => tensorConstantOf(n.output) ?? []);
  const own = new Set(tensorsOf(decomposed));
  return [...new Set(tensorsOf(fused))].filter((t) => !own.has(t)).reduce((sum, t) => sum + ((t as { nbytes?: number }).nbytes ?? 0), 0);
}

export async function prepareGraphs(module: Module, inputs: readonly InputSpec[], options: FuseOptions = {}): Promise<PreparedGraphs> {
  // Shapes a torch.export program does not allow fail here, before any graph is built from them.
  module._checkInputShapes(inputs.map((s) => s?.shape));
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
