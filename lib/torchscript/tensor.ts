import { binding, NativeTensor, NativeValue, TypedArray } from './binding';
import { nativeSync, TorchGraphError } from '../core/errors';
import type { DType } from '../core/ir/serialized';
import { checkData, checkDevice, checkDtype, checkNesting, checkShape, describe } from './tensor-checks';

const handles = new WeakMap<Tensor, NativeTensor>();

function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  throw new TorchGraphError('ERR_INVALID_ARG', 'unsupported TypedArray; pass a dtype');
}

/**
 * A tensor owned by libtorch. Data crosses by one copy each way. Call dispose() to free it
 * at once; the GC frees it eventually otherwise (its bytes are reported to V8).
 */
export class Tensor {
  private constructor(handle: NativeTensor) {
    handles.set(this, handle);
  }

  /** A CPU tensor holding a copy of `data`. Bool tensors take a Uint8Array of 0/1 with dtype 'bool'. */
  static from(data: TypedArray, shape: readonly number[], dtype?: DType): Tensor {
    if (!ArrayBuffer.isView(data)) {
      throw new TorchGraphError('ERR_INVALID_ARG', `Tensor.from: data must be a TypedArray, got ${describe(data)}`);
    }
    const dt = dtype === undefined ? dtypeOf(data) : checkDtype(dtype, 'Tensor.from');
    const dims = checkShape(shape, 'Tensor.from');
    checkData(data, dt, 'Tensor.from');
    return new Tensor(nativeSync(() => binding().Tensor.fromTypedArray(data, dims, dt)));
  }

  /** An uninitialised tensor (for measuring allocation, or as an output buffer). */
  static empty(shape: readonly number[], dtype: DType = 'float32', device = 'cpu'): Tensor {
    const dims = checkShape(shape, 'Tensor.empty');
    const dt = checkDtype(dtype, 'Tensor.empty');
    const dev = checkDevice(device, 'Tensor.empty', true);
    return new Tensor(nativeSync(() => binding().Tensor.empty(dims, dt, dev)));
  }

  /** @internal */
  static wrap(handle: NativeTensor): Tensor {
    return new Tensor(handle);
  }

  private get handle(): NativeTensor {
    return handles.get(this)!;
  }

  get shape(): number[] { return nativeSync(() => this.handle.shape); }
  get dtype(): DType { return nativeSync(() => this.handle.dtype); }
  get device(): string { return nativeSync(() => this.handle.device); }
  get nbytes(): number { return nativeSync(() => this.handle.nbytes); }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  get disposed(): boolean { return this.handle.disposed; }

  /** A copy of the data in a TypedArray of the dtype (int64 -> BigInt64Array, bool -> Uint8Array). */
  data(): TypedArray { return nativeSync(() => this.handle.toTypedArray()); }

  /** A copy of the data as plain numbers (int64 converted with Number()). */
  toNumbers(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }

  /** A copy on another device. */
  to(device: string): Tensor {
    const dev = checkDevice(device, 'Tensor.to');
    return new Tensor(nativeSync(() => this.handle.to(dev)));
  }

  dispose(): void { this.handle.dispose(); }

  toString(): string { return `Tensor(${this.dtype}[${this.shape.join(', ')}] on ${this.device})`; }
}

/** @internal The native handle of a public tensor (not exported from the package). */
export function nativeOf(t: Tensor): NativeTensor {
  const h = handles.get(t);
  if (!h) throw new TorchGraphError('ERR_INVALID_ARG', 'not a torchgraph Tensor');
  return h;
}

/** What methods take and return: tuples and lists are arrays. */
export type Value = Tensor | number | bigint | boolean | string | null | Value[] | { [key: string]: Value };

export function toNativeValue(v: Value): NativeValue {
  checkNesting(v, 0, []);
  return toNative(v);
}

function toNative(v: Value): NativeValue {
  if (v instanceof Tensor) return nativeOf(v);
  if (Array.isArray(v)) return v.map(toNative);
  if (v !== null && typeof v === 'object') {
    throw new TorchGraphError('ERR_INVALID_ARG', 'objects are not accepted as inputs; pass tensors, numbers, booleans, arrays');
  }
  if (v !== null && !['number', 'bigint', 'boolean', 'string'].includes(typeof v)) {
    throw new TorchGraphError('ERR_INVALID_ARG',
      `inputs: ${describe(v)} is not a value a method takes; pass tensors, numbers, booleans, strings, null, arrays`);
  }
  return v;
}

export function fromNativeValue(v: NativeValue): Value {
  if (v !== null && typeof v === 'object') {
    if (Array.isArray(v)) return v.map(fromNativeValue);
    if (v instanceof (binding().Tensor as unknown as new () => NativeTensor)) return Tensor.wrap(v as NativeTensor);
    const out: { [key: string]: Value } = {};
    for (const [k, x] of Object.entries(v)) out[k] = fromNativeValue(x as NativeValue);
    return out;
  }
  return v;
}

/** Every tensor in a (nested) value, depth first: the order reference outputs are flattened in. */
export function flattenTensors(v: Value): Tensor[] {
  if (v instanceof Tensor) return [v];
  if (Array.isArray(v)) return v.flatMap(flattenTensors);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(flattenTensors);
  return [];
}

/** Dispose every tensor in a (nested) value. */
export function disposeValue(v: Value): void {
  for (const t of flattenTensors(v)) t.dispose();
}

