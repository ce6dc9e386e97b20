// Shape/dtype propagation by libtorch itself on meta tensors: nothing is computed and
// dynamic sizes (aten::size feeding view) come out right because the real ops run their
// shape logic. Parameters become meta tensors of the same shape. Ops without a meta kernel
// run on zero-filled stand-ins and are listed; graphs with control flow or module calls
// that fail on meta fall back to one real run on seeded random inputs, and say so.
import type { Graph } from '../ir';
import type { Module } from '../module';
import { Tensor, nativeOf } from '../tensor';
import { randomTensor } from '../random';
import { fromNative, TorchGraphError } from '../errors';
import type { DType } from '../ir/serialized';
import { setValueInfo, type ValueInfo } from './value-info';

export interface InputSpec { shape: number[]; dtype: DType }

export interface ShapeReport {
  /** meta-nodes: node by node on meta; meta: whole graph on meta; real: a real run. */
  mode: 'meta-nodes' | 'meta' | 'real';
  /** Why the meta run failed, when it fell back to a real run. */
  fallbackReason?: string;
  /** Ops computed on zero-filled stand-ins for lack of a meta kernel. */
  opsWithoutMeta: Record<string, number>;
  /** Values that received info. */
  values: number;
  ms: number;
}

export function dtypeSize(dtype: DType): number {
  switch (dtype) {
    case 'float64': case 'int64': case 'complex64': return 8;
    case 'complex128': return 16;
    case 'float32': case 'int32': return 4;
    case 'float16': case 'bfloat16': case 'int16': return 2;
    default: return 1;
  }
}

export async function propagateShapes(g: Graph, module: Module, inputs: readonly InputSpec[], seed = 0): Promise<ShapeReport> {
  const t0 = performance.now();
  const data = g.toData();
  const userInputs = g.inputs.filter((v) => v.type.kind !== 'Class');
  if (userInputs.length !== inputs.length) {
    throw new TorchGraphError('ERR_INVALID_ARG', `graph takes ${userInputs.length} inputs, ${inputs.length} input specs given`);
  }
  userInputs.forEach((v, i) => {
    const { shape, dtype } = inputs[i];
    const n = shape.reduce((a, b) => a * b, 1);
    const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
    setValueInfo(v, { kind: 'Tensor', shape: [...shape], strides, dtype, bytes: n * dtypeSize(dtype), storageBytes: n * dtypeSize(dtype) });
  });
  const run = async (meta: boolean) => {
    const tensors = inputs.map((s, i) => (meta ? Tensor.empty(s.shape, s.dtype, 'meta') : randomTensor(s.shape, s.dtype, seed + i)));
    try {
      return await module._native.inferValues(data, tensors.map(nativeOf), { meta });
    } finally {
      tensors.forEach((t) => t.dispose());
    }
  };
  let fallbackReason: string | undefined;
  let result;
  try {
    result = await run(true);
  } catch (e) {
    fallbackReason = (e as Error).message.split('\n')[0];
    try {
      result = await run(false);
    } catch (e2) {
      throw fromNative(e2);
    }
  }
  const byId = new Map(g.allValues().map((v) => [v.id, v]));
  for (const [id, info] of result.values) {
    const v = byId.get(id);
    if (v) setValueInfo(v, info as ValueInfo);
  }
  return { mode: result.mode, fallbackReason, opsWithoutMeta: result.fallbacks, values: result.values.length, ms: performance.now() - t0 };
}
