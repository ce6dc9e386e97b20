// Seeded random data for inputs: reproducible across runs and machines.
import { Tensor } from './tensor';
import type { DType } from '../core/ir/serialized';
import type { TypedArray } from './binding';
import { TorchGraphError } from '../core/errors';

/** mulberry32: a small, well-distributed 32-bit generator; enough for test inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How a generated input is filled instead of the default (normal floats, integers 0..9, random
 * bools): all ones, all zeros, or uniform draws from [low, high) (integers for integer dtypes). */
export type Fill = { kind: 'ones' } | { kind: 'zeros' } | { kind: 'range'; low: number; high: number };

/** Normal floats, small uniform integers (0..9), or random bools, from `seed`; or as `fill` says.
 * scripts/export_model.py draws the same values (the same generator, vectorised in torch). */
export function randomTensor(shape: readonly number[], dtype: DType = 'float32', seed = 0, fill?: Fill): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (fill) return filledTensor(shape, n, dtype, seed, fill);
  const next = rng(seed);
  const normal = () => {
    // Box-Muller; 1 - u keeps log() finite.
    const u = 1 - next();
    const v = next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  let data: TypedArray;
  switch (dtype) {
    case 'float32': data = Float32Array.from({ length: n }, normal); break;
    case 'float64': data = Float64Array.from({ length: n }, normal); break;
    case 'int64': data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 10))); break;
    case 'int32': data = Int32Array.from({ length: n }, () => Math.floor(next() * 10)); break;
    case 'uint8': data = Uint8Array.from({ length: n }, () => Math.floor(next() * 10)); break;
    case 'bool': data = Uint8Array.from({ length: n }, () => (next() < 0.5 ? 1 : 0)); break;
    default: throw new TorchGraphError('ERR_INVALID_ARG', `cannot make random data of dtype ${dtype}`);
  }
  return Tensor.from(data, shape, dtype);
}

function filledTensor(shape: readonly number[], n: number, dtype: DType, seed: number, fill: Fill): Tensor {
  let value: () => number;
  if (fill.kind === 'range') {
    const next = rng(seed);
    const { low, high } = fill;
    const span = high - low;
    // Integers: low + floor(u * span), u in [0, 1) with 32 bits; floats: low + u * span (in
    // float64, then rounded to the dtype).
    value = dtype.startsWith('float') ? () => low + next() * span : () => low + Math.floor(next() * span);
  } else {
    const c = fill.kind === 'ones' ? 1 : 0;
    value = () => c;
  }
  let data: TypedArray;
  switch (dtype) {
    case 'float32': data = Float32Array.from({ length: n }, value); break;
    case 'float64': data = Float64Array.from({ length: n }, value); break;
    case 'int64': data = BigInt64Array.from({ length: n }, () => BigInt(value())); break;
    case 'int32': data = Int32Array.from({ length: n }, value); break;
    case 'uint8': data = Uint8Array.from({ length: n }, value); break;
    case 'bool': data = Uint8Array.from({ length: n }, () => (value() ? 1 : 0)); break;
    default: throw new TorchGraphError('ERR_INVALID_ARG', `cannot make data of dtype ${dtype}`);
  }
  return Tensor.from(data, shape, dtype);
}
