// torch.einsum over two operands, read as the one batched matmul it is (or not): what
// canonicalize.ts rewrites it to, and what the memory estimate counts of its operand copies.
import type { Node, Value } from '../core/ir';
import { constOf } from '../core/constants';

/**
 * An einsum over two operands that is one batched matmul, with its operands and result permuted:
 * each letter is a batch dim (in both operands and the output), the contracted dim (in both, not
 * in the output), or one free dim of each operand. 'bhid,bhjd->bhij' is q @ k^T;
 * 'bind,bjnd->bnij' (Funnel, XLNet) the same with permutes.
 */
export interface EinsumMatmul { a: Value; b: Value; permA: number[]; permB: number[]; permOut: number[] }

export function einsumAsMatmul(n: Node): EinsumMatmul | undefined {
  const eq = constOf(n.arg('equation')!);
  const list = n.arg('tensors')?.node;
  if (typeof eq !== 'string' || list?.kind !== 'prim::ListConstruct' || list.inputs.length !== 2) return undefined;
  // Spaces may stand anywhere (torchvision's MaxViT writes "B G H I D, B G H J D -> B G H I J").
  const m = /^([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]*)$/.exec(eq.replace(/\s+/g, ''));
  if (!m) return undefined;
  const [, x, y, out] = m;
  if ([x, y, out].some((t) => new Set(t).size !== t.length)) return undefined;
  const batch = [...out].filter((c) => x.includes(c) && y.includes(c));
  const contracted = [...x].filter((c) => y.includes(c) && !out.includes(c));
  const freeA = [...x].filter((c) => !y.includes(c));
  const freeB = [...y].filter((c) => !x.includes(c));
  if (contracted.length !== 1 || freeA.length !== 1 || freeB.length !== 1) return undefined;
  if (![...freeA, ...freeB].every((c) => out.includes(c)) || out.length !== batch.length + 2) return undefined;
  const [i, k, j] = [freeA[0], contracted[0], freeB[0]];
  const resultOrder = [...batch, i, j];
  return {
    a: list.inputs[0], b: list.inputs[1],
    permA: [...batch, i, k].map((c) => x.indexOf(c)),
    permB: [...batch, k, j].map((c) => y.indexOf(c)),
    permOut: [...out].map((c) => resultOrder.indexOf(c)),
  };
}

