// The public API. No native handle is reachable from here except through objects that
// have dispose().
export { Tensor, flattenTensors, disposeValue } from './tensor';
export type { Value } from './tensor';
export { Module, load } from './module';
export type { LoadOptions, RunResult, ParameterInfo } from './module';
export { TorchGraphError } from './errors';
export type { ErrorCode } from './errors';
export type { ModuleTreeData, TensorInfoData, TypedArray } from './binding';
export type { DType } from './ir/serialized';
export { runtimeInfo } from './runtime-info';
