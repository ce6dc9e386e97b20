// The public API. No native handle is reachable from here except through objects that
// have dispose().
export { Tensor, flattenTensors, disposeValue } from './torchscript/tensor';
export type { Value } from './torchscript/tensor';
export { Module, load } from './torchscript/module';
export type { LoadOptions, RunResult, ParameterInfo, NamedInputs } from './torchscript/module';
// torch.export programs (.pt2) load as Modules too; loadModel takes either kind of file.
export { loadProgram, loadModel, readProgram, programInfoOf } from './program';
export type { ProgramInfo } from './program';
export type { ArgumentInfo, DefaultValue } from './torchscript/arguments';
export { TorchGraphError } from './core/errors';
export type { ErrorCode } from './core/errors';
export type { ModuleTreeData, TensorInfoData, TypedArray } from './torchscript/binding';
export type { DType } from './core/ir/serialized';
export { runtimeInfo } from './torchscript/runtime-info';
// Graphs, passes and analyses.
export { Graph, Node, Block, GraphVerifyError, Value as GraphValue } from './core/ir';
export type { GraphData, NodeData, TypeData } from './core/ir';
export { exportView } from './transforms/module-views';
export type { ViewName, ModelView, ViewReport } from './transforms/module-views';
export { propagateShapes } from './torchscript/propagate-shapes';
export type { InputSpec, ShapeReport } from './torchscript/propagate-shapes';
export { tensorInfo, valueInfo } from './core/value-info';
export { decomposeModelGraph } from './transforms/decompose-model';
export { decomposeAttention, remainingAttentionOps } from './transforms/decompose-attention';
export type { DecomposeReport, AttentionRecord } from './transforms/decompose-attention';
export { analyzeGraph, withMeasuredPeaks, partitionGraph, countFlops, estimateMemory } from './analysis';
export { lowerFusionGroups } from './fusion/lower-groups';
export { prepareGraphs } from './pipeline/prepare';
export type { FuseOptions, PreparedGraphs } from './pipeline/prepare';
export { compareGraphs } from './pipeline/compare';
// The fused model as the user's own: run it, save it (TorchScript, or .pt2 through the Python torch).
export { optimize, OptimizedModel } from './pipeline/optimize';
export type { OptimizeOptions, OptimizeReport, PackedWeight, OptimizedMetadata } from './pipeline/optimize';
export type { OwnedWeight } from './fusion/own-weights';
import { installProgramWriter } from './app/program-writer';
installProgramWriter();
export { runBench } from './app/bench';
export { randomTensor } from './torchscript/random';
// The types the functions above take and return, so callers (and the API docs) can name them.
export type { GraphAnalysis, AnalyzeOptions, PeakComparison } from './analysis/analyze';
export type { FlopsReport } from './analysis/flops';
export type { MemoryEstimate, MemoryOptions } from './analysis/memory';
export type { Partition, PartitionOptions } from './fusion/partition';
export type { Comparison, CompareOptions } from './pipeline/compare';
export type { BenchReport } from './pipeline/bench';
export type { RunBenchOptions } from './app/bench';
export type { DecompositionResult } from './transforms/decompose-model';
export type { DecomposeOptions, AttentionForm } from './transforms/decompose-attention';
export type { LoweringReport, LoweringOutcome } from './fusion/lower-fused';
export type { ValueInfo } from './core/value-info';
