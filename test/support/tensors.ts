// Helpers for tests: fixture tensors in, max abs diff out.
import { readNpy, type TensorFile } from '../../lib/app/models';
import { Tensor, type TypedArray } from '../../lib';

export function tensorFromFile(tf: TensorFile): Tensor {
  const a = readNpy(tf.file);
  return Tensor.from(a.data as TypedArray, a.shape, a.dtype);
}

/** Max abs difference between two float tensors of the same shape (NaN if shapes differ). */
export function maxAbsDiff(a: Tensor, b: Tensor | TensorFile): number {
  const expected = b instanceof Tensor ? { shape: b.shape, data: b.data() } : readNpy(b.file);
  if (a.shape.join('x') !== expected.shape.join('x')) return NaN;
  const x = a.data() as Float32Array;
  const y = expected.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > m) m = d;
  }
  return m;
}
