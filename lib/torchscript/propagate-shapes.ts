// Shape/dtype propagation by libtorch itself on meta tensors: nothing is computed and
// dynamic sizes (aten::size feeding view) come out right because the real ops run their
// shape logic. Parameters become meta tensors of the same shape. Ops without a meta kernel
// run on zero-filled stand-ins and are listed; graphs with control flow or module calls
// that fail on meta fall back to one real run on seeded random inputs, and say so.
import type { Graph } from '../core/ir';
import type { Module } from './module';
import { Tensor, nativeOf } from './tensor';
import { randomTensor, type Fill } from './random';
import { fromNative, TorchGraphError } from '../core/errors';
import type { DType } from '../core/ir/serialized';
import { setValueInfo, type ValueInfo } from '../core/value-info';
import { defaultToNative, missingArguments, type ArgumentInfo, type DefaultValue } from './arguments';
import { planShapeRun } from './shape-run';
import { contiguousStrides } from '../core/strides';

export interface InputSpec { shape: number[]; dtype: DType; fill?: Fill }

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

/** The arguments of forward after the `given` specs (they take their defaults), for a graph of
 * `arity` inputs besides the module. A graph whose inputs are not forward's must get them all. */
function defaultedInputs(module: Module, arity: number, given: number): ArgumentInfo[] {
  if (given === arity) return [];
  const signature = module._signature('forward');
  if (signature.length !== arity) {
    throw new TorchGraphError('ERR_INVALID_ARG', `graph takes ${arity} inputs, ${given} input specs given`);
  }
  return missingArguments(signature, given);
}

/** What shape propagation knows of an input that took its default. */
function defaultInfo(arg: ArgumentInfo): ValueInfo | undefined {
  const v = arg.default as DefaultValue;
  if (v === null) return { kind: 'None' };
  if (typeof v === 'boolean') return { kind: 'Bool', value: v };
  if (typeof v === 'bigint') return { kind: 'Int', value: Number(v) };
  if (typeof v === 'number') return { kind: 'Float', value: v };
  if (Array.isArray(v) && /^List\[int\]$/.test(arg.type) && v.every((x) => typeof x === 'bigint')) return { kind: 'IntList', value: v.map(Number) };
  return undefined;
}

/** Shapes and dtypes of every value of `g` (a graph of `module`'s forward) for tensors of the
 * `inputs` specs given to forward's first arguments; the arguments after them take their
 * defaults (None, bools, numbers: lib/torchscript/arguments.ts), as they do in the graph runs. */
export async function propagateShapes(g: Graph, module: Module, inputs: readonly InputSpec[], seed = 0): Promise<ShapeReport> {
  const t0 = performance.now();
  const userInputs = g.inputs.filter((v) => v.type.kind !== 'Class');
  // Inputs not given take the defaults of forward's arguments (None stays None).
  const defaulted = defaultedInputs(module, userInputs.length, inputs.length);
  userInputs.forEach((v, i) => {
    if (i >= inputs.length) {
      const info = defaultInfo(defaulted[i - inputs.length]);
      if (info) setValueInfo(v, info);
      return;
    }
    const { shape, dtype } = inputs[i];
    const n = shape.reduce((a, b) => a * b, 1);
    const strides = contiguousStrides(shape);
    setValueInfo(v, { kind: 'Tensor', shape: [...shape], strides, dtype, bytes: n * dtypeSize(dtype), storageBytes: n * dtypeSize(dtype) });
  });
  const defaults = defaulted.map(defaultToNative);
  const run = async (meta: boolean) => {
    const plan = planShapeRun(g, { onMeta: meta });
    const tensors = inputs.map((s, i) => (meta
      ? Tensor.empty(s.shape, s.dtype, 'meta')
      : randomTensor(s.shape, s.dtype, seed + i, s.fill)));
    try {
      const r = await module._native.inferValues(plan.graph.toData(), [...tensors.map(nativeOf), ...defaults],
        { nodeByNode: plan.executor === 'nodes', metaParameters: plan.metaParameters });
      const mode: ShapeReport['mode'] = !meta ? 'real' : plan.executor === 'nodes' ? 'meta-nodes' : 'meta';
      return { ...r, ids: plan.reportedIds, mode };
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
  result.values.forEach((info, i) => {
    const v = byId.get(result.ids[i]);
    const t = info as ValueInfo;
    if (v && t.kind === 'Tensor' && !t.strides) t.strides = contiguousStrides(t.shape);
    if (v) setValueInfo(v, t);
  });
  return { mode: result.mode, fallbackReason, opsWithoutMeta: result.fallbacks, values: result.values.length, ms: performance.now() - t0 };
}
