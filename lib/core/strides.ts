// Whether a tensor can take a different memory layout than the one the graph was written for.
// A lowering that replaces a contiguous tensor by a strided view (a column slice of a wider
// GEMM output) is safe only if every aten::view downstream of it, through ops that keep the
// layout (transpose, permute, unsqueeze, ...), can still be a view: aten::view refuses sizes
// that do not fit the strides, where the original contiguous tensor was fine.
import type { Value } from './ir';
import { constOf } from './constants';
import { tensorInfo } from './value-info';

/**
 * The strides of `shape` viewed as `newShape`, or null when it cannot be a view (the same rule
 * as ATen's view: each group of merged dimensions must be contiguous within itself).
 */
export function viewStrides(shape: readonly number[], strides: readonly number[], newShape: readonly number[]): number[] | null {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel !== newShape.reduce((a, b) => a * b, 1)) return null;
  if (numel === 0 || shape.length === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length).fill(0);
  let viewD = newShape.length - 1;
  let chunkStride = strides[strides.length - 1];
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorNumel *= shape[d];
    // A chunk ends where the next-outer dimension is not laid out right after this one.
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorNumel * chunkStride)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
        out[viewD] = viewNumel * chunkStride;
        viewNumel *= newShape[viewD];
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkStride = strides[d - 1];
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  return viewD === -1 ? out : null;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) { out[d] = s; s *= Math.max(shape[d], 1); }
  return out;
}

// Ops whose result is a fresh tensor (or that accept any layout): the layout question ends there.
const FRESH_RESULT = /^aten::(linear|matmul|bmm|mm|addmm|baddbmm|_addmm_activation|add|sub|mul|div|neg|exp|tanh|sigmoid|silu|gelu|relu|softmax|log_softmax|dropout|layer_norm|contiguous|clone|cat|stack|scaled_dot_product_attention|masked_fill|where|pow|sqrt|rsqrt)_?$/;

const norm = (d: number, rank: number) => (d < 0 ? d + rank : d);

/**
 * Whether `v`, laid out with `strides` instead of the layout it had, still works for every
 * user downstream. Unknown ops count as unsafe, so callers copy to contiguous rather than guess.
 */
export function layoutIsSafe(v: Value, strides: readonly number[]): boolean {
  const shape = tensorInfo(v)?.shape;
  if (!shape) return false;
  for (const use of v.uses) {
    const n = use.node;
    if (FRESH_RESULT.test(n.kind) || n.kind === 'aten::size' || n.kind === 'aten::dim') continue;
    const out = n.outputs[0];
    const outShape = out ? tensorInfo(out)?.shape : undefined;
    if (!out || !outShape || use.index !== 0) return false;
    let next: number[] | null | undefined;
    switch (n.kind) {
      case 'aten::view':
      case 'aten::reshape':
        next = viewStrides(shape, strides, outShape);
        if (!next && n.kind === 'aten::reshape') continue; // reshape copies: a fresh tensor
        break;
      case 'aten::transpose': {
        const c0 = constOf(n.inputs[1]);
        const c1 = constOf(n.inputs[2]);
        if (typeof c0 !== 'number' || typeof c1 !== 'number') return false;
        const [a, b] = [norm(c0, shape.length), norm(c1, shape.length)];
        next = [...strides];
        [next[a], next[b]] = [next[b], next[a]];
        break;
      }
      case 'aten::permute': {
        const dims = constOf(n.inputs[1]);
        if (!Array.isArray(dims)) return false;
        next = dims.map((d) => strides[norm(d, shape.length)]);
        break;
      }
      case 'aten::unsqueeze': {
        const c = constOf(n.inputs[1]);
        if (typeof c !== 'number') return false;
        const d = norm(c, shape.length + 1);
        next = [...strides];
        next.splice(d, 0, d < strides.length ? strides[d] * shape[d] : 1);
        break;
      }
      default:
        return false;
    }
    if (!next || !layoutIsSafe(out, next)) return false;
  }
  return true;
}
