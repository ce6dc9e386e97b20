// The public API. No native handle is reachable from here except through objects that
// have dispose().
export { Tensor, flattenTensors, disposeValue } from './tensor';
export type { Value } from './tensor';
export { Module, load } from './module';
export type { LoadOptions, RunResult, ParameterInfo } from './module';
export type { ArgumentInfo, DefaultValue } from './arguments';
export { TorchGraphError } from './errors';
export type { ErrorCode } from './errors';
export type { ModuleTreeData, TensorInfoData, TypedArray } from './binding';
export type { DType } from './ir/serialized';
export { runtimeInfo } from './runtime-info';
// Graphs, passes and analyses.
export { Graph, Node, Block, GraphVerifyError, Value as GraphValue } from './ir';
export type { GraphData, NodeData, TypeData } from './ir';
export { exportView } from './views';
export type { ViewName, ModelView, ViewReport } from './views';
export { propagateShapes } from './passes/propagate-shapes';
export type { InputSpec, ShapeReport } from './passes/propagate-shapes';
export { tensorInfo, valueInfo } from './passes/value-info';
export { decomposeModelGraph } from './decompose';
export { decomposeAttention, remainingAttentionOps } from './passes/decompose-attention';
export type { DecomposeReport, AttentionRecord } from './passes/decompose-attention';
export { analyzeGraph, partitionGraph, countFlops, estimateMemory } from './analysis';
export { lowerFusionGroups } from './fuse';
export { prepareGraphs } from './prepare';
export type { FuseOptions, PreparedGraphs } from './prepare';
export { compareGraphs } from './runtime/compare';
export { runBench } from './runtime/bench';
export { randomTensor } from './random';
