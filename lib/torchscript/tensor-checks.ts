// Checks of what callers pass to tensors and methods, before anything reaches the addon: the
// addon copies bytes as they are, so a Float64Array given as int64 would be reinterpreted bit
// for bit, and a NaN dimension would surface as a SymInt error deep inside libtorch.
import { TorchGraphError } from '../core/errors';
import type { DType } from '../core/ir/serialized';
import type { TypedArray } from './binding';

const invalid = (msg: string) => new TorchGraphError('ERR_INVALID_ARG', msg);

/** The TypedArray each dtype is given as (half types and complex types as their raw parts). */
type ArrayConstructor = new (length: number) => TypedArray;
const ARRAY_OF: Record<DType, ArrayConstructor> = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array,
  int64: BigInt64Array, int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
  complex64: Float32Array, complex128: Float64Array,
};

/** Most dimensions a tensor may have (libtorch's own limit is 64 for many kernels). */
export const MAX_RANK = 64;

export function checkDtype(dtype: unknown, what: string): DType {
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(ARRAY_OF, dtype)) {
    throw invalid(`${what}: dtype must be one of ${Object.keys(ARRAY_OF).join(', ')}, got ${describe(dtype)}`);
  }
  return dtype as DType;
}

export function checkShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape)) throw invalid(`${what}: shape must be an array of non-negative integers, got ${describe(shape)}`);
  if (shape.length > MAX_RANK) throw invalid(`${what}: shape has ${shape.length} dimensions, more than ${MAX_RANK}`);
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw invalid(`${what}: dimension ${i} of the shape is ${describe(d)}; dimensions must be non-negative integers`);
    }
  });
  return [...(shape as number[])];
}

/** `data` must be the TypedArray of `dtype` (bool: a Uint8Array of 0 and 1). */
export function checkData(data: unknown, dtype: DType, what: string): TypedArray {
  const want = ARRAY_OF[dtype];
  if (!ArrayBuffer.isView(data) || data instanceof DataView) throw invalid(`${what}: data must be a TypedArray, got ${describe(data)}`);
  if (!(data instanceof want)) {
    throw invalid(`${what}: dtype ${dtype} takes a ${want.name}, got a ${data.constructor.name} (its bytes would be reinterpreted)`);
  }
  if (dtype === 'bool') {
    const i = (data as Uint8Array).findIndex((v) => v !== 0 && v !== 1);
    if (i >= 0) throw invalid(`${what}: bool data must hold only 0 and 1; element ${i} is ${(data as Uint8Array)[i]}`);
  }
  return data as TypedArray;
}

/** A tensor's device: 'cpu', 'cuda' or 'cuda:N' ('meta' too where `meta` says so: shapes only). */
export function checkDevice(device: unknown, what: string, meta = false): string {
  if (typeof device !== 'string' || !(/^(cpu|cuda(:\d{1,4})?)$/.test(device) || (meta && device === 'meta'))) {
    throw invalid(`${what}: device must be 'cpu', 'cuda' or 'cuda:N'${meta ? " (or 'meta')" : ''}, got ${describe(device)}`);
  }
  return device;
}

/** Deepest nesting of lists and tuples taken as an input (TorchScript values are shallow). */
export const MAX_INPUT_DEPTH = 32;

/** Refuse cyclic and absurdly deep inputs with a clear error rather than a RangeError. */
export function checkNesting(v: unknown, depth: number, path: unknown[]): void {
  if (!Array.isArray(v)) return;
  if (path.includes(v)) throw invalid('inputs: an array contains itself (a cycle); pass tensors, numbers, booleans, arrays');
  if (depth >= MAX_INPUT_DEPTH) throw invalid(`inputs: arrays nested deeper than ${MAX_INPUT_DEPTH} levels`);
  path.push(v);
  for (const x of v) checkNesting(x, depth + 1, path);
  path.pop();
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? `a ${(v as object).constructor?.name ?? 'object'}` : `a ${typeof v}`;
}
