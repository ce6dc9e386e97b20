// The real validation pipeline behind `torchgraph validate` (stages in lib/pipeline/stages.ts):
// standard view -> attention decomposed (then every module call inlined) -> partitioned and
// lowered to fused kernels -> original, unfused and fused run and compared.
import type { Graph, Node } from '../core/ir';
import type { Module } from '../torchscript/module';
import { disposeValue, type Tensor } from '../torchscript/tensor';
import { TorchGraphError } from '../core/errors';
import { analyzeGraph, countFlops, type GraphAnalysis } from '../analysis';
import { decomposeStandardView, estimatePeak, fuseDecomposed } from './prepare';
import { estimateVsMeasuredCheck } from './estimate-check';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { compareGraphs } from './compare';
import { runtimeInfo } from '../torchscript/runtime-info';
import { exportView } from '../transforms/module-views';
import type { DecomposeStage, PartitionStage, RunStage, ValidationPipeline } from './stages';
import type { MemoryPoint } from '../report/types';
import type { TimelineEntry } from '../analysis';

const specsOf = (inputs: Tensor[]): InputSpec[] => inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));

function timeline(entries: TimelineEntry[]): MemoryPoint[] {
  // The highest live bytes while each step runs: what the peak estimate is the maximum of.
  return entries.map((e) => ({ index: e.step, node: e.label, liveBytes: e.peakBytes }));
}

interface State { analysis?: GraphAnalysis; unfusedPeak?: number; fusedPeak?: number }

export function createPipeline(): ValidationPipeline {
  const state = new WeakMap<Module, State>();
  return {
    async standard(model, inputs: Tensor[] = []) {
      const graph = exportView(model, 'standard').graph;
      // FLOPs of the original: leaf module calls hide their ops, so count on the inlined view.
      let flops: number | undefined;
      if (inputs.length) {
        // The unmodified model failing on these shapes or dtypes is a problem with the inputs
        // (exit 2), not with torchgraph: check once before any rewriting.
        try {
          disposeValue((await model.run('forward', inputs.map((t) => (t.device === model.device ? t : t.to(model.device))))).output);
        } catch (e) {
          if (e instanceof TorchGraphError && e.code === 'ERR_TORCH') {
            throw new TorchGraphError('ERR_INVALID_ARG', `the model rejects these inputs: ${e.message.split('\n')[0]}`, { cause: e });
          }
          throw e;
        }
        const inlined = exportView(model, 'inlined').graph;
        await propagateShapes(inlined, model, specsOf(inputs));
        flops = countFlops(inlined).total;
      }
      return { graph, stats: flops !== undefined ? { flops } : {} };
    },

    async decompose(model, standard, inputs): Promise<DecomposeStage> {
      const { decomposed: graph, decomposition } = await decomposeStandardView(model, standard, specsOf(inputs));
      const { report } = decomposition;
      return {
        graph,
        stats: { flops: countFlops(graph).total },
        attention: {
          found: report.found,
          decomposed: report.decomposed.length,
          skipped: report.skipped.map((s) => ({ node: s.node, reason: s.reason })),
        },
        attentions: [
          ...report.decomposed.map((d) => ({ id: d.id, form: d.form, heads: d.numHeads, embedDim: d.embedDim, batchFirst: d.batchFirst, opsExposed: d.opsExposed, decomposed: true })),
          ...report.skipped.map((s) => ({ id: s.node, form: s.form, opsExposed: 0, decomposed: false, reason: s.reason })),
        ],
      };
    },

    async partition(model, decomposed, _dec, inputs): Promise<PartitionStage> {
      const analysis = analyzeGraph(decomposed, model.device === 'cpu' ? {} : { memory: { alignBytes: 512 } });
      state.set(model, { analysis });
      const { fused, lowering } = await fuseDecomposed(model, decomposed, specsOf(inputs));
      // The fused estimate is of the graph as lowered (groups without a fused kernel here still
      // materialise their intermediates), so that it can be checked against the measurement.
      // On CPU the flash kernel keeps per-thread tiles; CUDA's caching allocator rounds to 512 B.
      // Both estimates follow the branches the shape run took (scripted models keep run-time
      // checks as prim::If; counted whole, an If would hold both of its paths at once).
      const unfusedEstimate = estimatePeak(decomposed, model.device, 'unfused');
      const fusedEstimate = estimatePeak(fused, model.device, 'fused');
      state.set(model, { analysis, unfusedPeak: unfusedEstimate.peakBytes, fusedPeak: fusedEstimate.peakBytes });
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
    },

    async run(model, graphs, inputs): Promise<RunStage> {
      const cmp = await compareGraphs(model, { unfused: graphs.decomposed, fused: graphs.fused }, inputs, { warmup: 1, repetitions: 5 });
      const r = cmp.runs;
      const checks = [];
      const st = state.get(model);
      if (st?.unfusedPeak !== undefined && st.fusedPeak !== undefined && r.unfused.peakBytes > 0 && r.fused.peakBytes > 0) {
        checks.push(estimateVsMeasuredCheck({ unfused: st.unfusedPeak, fused: st.fusedPeak }, { unfused: r.unfused.peakBytes, fused: r.fused.peakBytes }));
      }
      return {
        original: { peakBytes: r.original.peakBytes, medianMs: r.original.medianMs },
        unfused: { peakBytes: r.unfused.peakBytes, medianMs: r.unfused.medianMs, maxAbsDiff: r.unfused.maxAbsDiff },
        fused: { peakBytes: r.fused.peakBytes, medianMs: r.fused.medianMs, maxAbsDiff: r.fused.maxAbsDiff },
        checks,
      };
    },

    environment() {
      const info = runtimeInfo();
      return { torchVersion: info.torchVersion };
    },
  };
}
