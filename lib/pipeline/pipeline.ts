// The real validation pipeline behind `torchgraph validate` (stages in lib/pipeline/stages.ts):
// standard view -> attention decomposed (then every module call inlined) -> partitioned and
// lowered to fused kernels -> original, unfused and fused run and compared.
import type { Graph, Node } from '../core/ir';
import type { Module } from '../torchscript/module';
import type { Tensor } from '../torchscript/tensor';
import { analyzeGraph, countFlops } from '../analysis';
import { decomposeStandardView, fuseDecomposed, type FuseOptions } from './prepare';
import { attentionModuleOf } from '../transforms/decompose-attention';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { compareGraphs } from './compare';
import { checkModelTakesInputs } from './input-check';
import { attentionDiffs } from './attention-diffs';
import { describeSlowerOps } from './slower-ops';
import { runtimeInfo } from '../torchscript/runtime-info';
import { exportView } from '../transforms/module-views';
import type { DecomposeStage, PartitionStage, RunStage, StageGraph, ValidationPipeline } from './stages';
import type { MemoryPoint } from '../report/types';
import type { TimelineEntry } from '../analysis';

const specsOf = (inputs: Tensor[]): InputSpec[] => inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));

function timeline(entries: TimelineEntry[]): MemoryPoint[] {
  // The highest live bytes while each step runs: what the peak estimate is the maximum of.
  return entries.map((e) => ({ index: e.step, node: e.label, liveBytes: e.peakBytes }));
}

/** The standard view; with inputs, the unmodified model is run once on them and its FLOPs counted. */
async function standardStage(model: Module, inputs: Tensor[] = []): Promise<StageGraph> {
  const graph = exportView(model, 'standard').graph;
  // FLOPs of the original: leaf module calls hide their ops, so count on the inlined view.
  let flops: number | undefined;
  if (inputs.length) {
    await checkModelTakesInputs(model, inputs);
    const inlined = exportView(model, 'inlined').graph;
    await propagateShapes(inlined, model, specsOf(inputs));
    flops = countFlops(inlined).total;
  }
  return { graph, stats: flops !== undefined ? { flops } : {} };
}

/** Attention decomposed, then every module call inlined. */
async function decomposeStage(model: Module, standard: Graph, inputs: Tensor[]): Promise<DecomposeStage> {
  const { decomposed: graph, decomposition } = await decomposeStandardView(model, standard, specsOf(inputs));
  const { report } = decomposition;
  const sites = [...report.decomposed.map((d) => ({ module: attentionModuleOf(d.form, d.id), done: true })),
    ...report.skipped.map((x) => ({ module: attentionModuleOf(x.form, x.node.slice(x.node.indexOf(' ') + 1)), done: false }))];
  const modules = new Map<string, boolean>();
  for (const x of sites) modules.set(x.module, (modules.get(x.module) ?? true) && x.done);
  return {
    graph,
    stats: { flops: countFlops(graph).total },
    attention: {
      found: report.found,
      decomposed: report.decomposed.length,
      skipped: report.skipped.map((s) => ({ node: s.node, reason: s.reason })),
      modules: { found: modules.size, decomposed: [...modules.values()].filter(Boolean).length },
    },
    attentions: [
      ...report.decomposed.map((d) => ({
        id: d.id, form: d.form, heads: d.numHeads, embedDim: d.embedDim, batchFirst: d.batchFirst,
        opsExposed: d.opsExposed, decomposed: true,
      })),
      ...report.skipped.map((s) => ({ id: s.node, form: s.form, opsExposed: 0, decomposed: false, reason: s.reason })),
    ],
  };
}

/** Partitioned and lowered; the peak estimates the lowering was judged by. */
async function partitionStage(model: Module, decomposed: Graph, inputs: Tensor[], fuse: FuseOptions = {}): Promise<PartitionStage> {
  const analysis = analyzeGraph(decomposed, model.device === 'cpu' ? {} : { memory: { alignBytes: 512 } });
  // The estimates are of the graphs as lowered (groups without a fused kernel here still
  // materialise their intermediates), following the branches the shape run took.
  const { fused, lowering, estimates } = await fuseDecomposed(model, decomposed, specsOf(inputs), fuse);
  const unfusedEstimate = estimates.unfused;
  const fusedEstimate = estimates.fused;
  const groupOf = (n: Node) => analysis.partition.groupOf(n)?.id;
  return {
    graph: fused,
    groups: analysis.summary.fusionGroups,
    stats: { flops: countFlops(fused).total, averageGroupSize: analysis.summary.averageGroupSize, lowering },
    estimatedPeakBytes: { unfused: unfusedEstimate.peakBytes, fused: fusedEstimate.peakBytes },
    memory: {
      unfused: timeline(unfusedEstimate.timeline),
      fused: timeline(fusedEstimate.timeline),
      weightsBytes: analysis.summary.weightBytes,
      fusedExtraWeightsBytes: lowering.heldWeightBytes,
    },
    groupOf,
  };
}

/** Original, unfused and fused run, compared and measured. */
async function runStage(model: Module, graphs: { decomposed: Graph; fused: Graph }, inputs: Tensor[]): Promise<RunStage> {
  const cmp = await compareGraphs(model, { unfused: graphs.decomposed, fused: graphs.fused }, inputs,
    { warmup: 2, repetitions: 5, profile: true });
  // A detail of the attention table: where the cores' copy cannot be built or run, the table says "-", and validate goes on.
  const diffs = await attentionDiffs(model, { unfused: graphs.decomposed, fused: graphs.fused }, inputs).catch(() => ({}));
  const r = cmp.runs;
  const settled = (w: typeof r.original.warmUp) => ({ runs: w?.runs ?? 0, settled: w?.settled ?? true });
  return {
    timing: {
      warmUp: { original: settled(r.original.warmUp), unfused: settled(r.unfused.warmUp), fused: settled(r.fused.warmUp) },
      loadAverage: cmp.load.loadAverage, cores: cmp.load.cores, spread: cmp.load.spread,
      ...(cmp.load.warning ? { warning: cmp.load.warning } : {}),
      // Slower beyond the runs' own spread: never left for the reader to spot.
      ...(cmp.slowerOps ? {
        fusedSlower: 'the fused graph ran slower than the original: '
          + `median ${r.fused.medianMs.toFixed(3)} against ${r.original.medianMs.toFixed(3)} ms, `
          + `every fused run slower than every original run. Profiled, the time grew most in: ${describeSlowerOps(cmp.slowerOps)}`,
        slowerOps: cmp.slowerOps,
      } : {}),
      ...(cmp.opTimes ? { opTimes: cmp.opTimes } : {}),
    },
    attentionDiffs: diffs,
    original: { peakBytes: r.original.peakBytes, medianMs: r.original.medianMs },
    unfused: { peakBytes: r.unfused.peakBytes, medianMs: r.unfused.medianMs, maxAbsDiff: r.unfused.maxAbsDiff },
    fused: { peakBytes: r.fused.peakBytes, medianMs: r.fused.medianMs, maxAbsDiff: r.fused.maxAbsDiff },
  };
}

/** The real stages; `fuse` switches lowerings on or off (lib/fusion/lowerings.ts). */
export function createPipeline(fuse: FuseOptions = {}): ValidationPipeline {
  return {
    standard: standardStage,
    decompose: decomposeStage,
    partition: (model, decomposed, _dec, inputs) => partitionStage(model, decomposed, inputs, fuse),
    run: (model, graphs, inputs) => runStage(model, graphs, inputs),
    environment: () => ({ torchVersion: runtimeInfo().torchVersion }),
  };
}
