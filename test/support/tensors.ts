// Helpers for tests: fixture tensors in, max abs diff out.
import type { TensorFile } from '../../lib/app/models';
import { readNpy } from '../../lib/torchscript/npy';
import { Tensor, type TypedArray } from '../../lib';
import { maxAbsDiff as compareMaxAbsDiff } from '../../lib/pipeline/compare';

export function tensorFromFile(tf: TensorFile): Tensor {
  const a = readNpy(tf.file);
  return Tensor.from(a.data as TypedArray, a.shape, a.dtype);
}

/** The library's max abs diff (lib/pipeline/compare.ts) of one tensor against a tensor or a
 * fixture file; NaN where it says the two are not comparable (shapes differ, NaN). */
export function maxAbsDiff(a: Tensor, b: Tensor | TensorFile): number {
  const expected = b instanceof Tensor ? b : tensorFromFile(b);
  try {
    return compareMaxAbsDiff([a], [expected]) ?? NaN;
  } finally {
    if (expected !== b) expected.dispose();
  }
}
