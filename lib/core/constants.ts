// Reading constants: a prim::Constant's value as the IR holds it, and the JS value a pass can
// compute with (ints as numbers), which also takes what a shape run recorded for values
// computed at run time (sizes, flags).
import type { ConstantValue, Value } from './ir';
import { valueInfo } from './value-info';

/** The value of a prim::Constant producing `v` (ints as bigints), or undefined when `v` is not one. */
export function constantOf(v: Value | undefined): ConstantValue | undefined {
  const n = v?.node;
  if (!n || !n.isConstant) return undefined;
  return n.constantValue();
}

/** A constant's JS value (ints as numbers), or what shape propagation recorded. */
export function constOf(v: Value | undefined): number | boolean | string | null | number[] | undefined {
  if (!v) return undefined;
  if (v.node?.isConstant) {
    const c = constantOf(v);
    if (typeof c === 'bigint') return Number(c);
    if (typeof c === 'number' || typeof c === 'boolean' || typeof c === 'string' || c === null) return c;
    if (Array.isArray(c) && c.every((x) => typeof x === 'bigint' || typeof x === 'number')) return c.map(Number);
    return undefined;
  }
  if (v.type.kind === 'None') return null;
  const i = valueInfo(v);
  if (!i) return undefined;
  switch (i.kind) {
    case 'Int': case 'Float': case 'Bool': case 'IntList': return i.value;
    case 'None': return null;
    default: return undefined;
  }
}

export function constNumber(v: Value | undefined): number | undefined {
  if (!v) return undefined;
  const c = constOf(v);
  return typeof c === 'number' ? c : typeof c === 'boolean' ? Number(c) : undefined;
}

/**
 * A number: a constant int or float (or one the shape run recorded), or a one-element tensor
 * constant (how a trace records `x / math.sqrt(d)` and `0.5 * x`).
 */
export function scalarConstant(v: Value | undefined): number | undefined {
  const c = constOf(v);
  if (typeof c === 'number') return c;
  type TensorConstant = { shape?: number[]; toTypedArray?: () => ArrayLike<number | bigint> } | null;
  const t = v?.node?.isConstant ? v.node.constantValue() as TensorConstant : undefined;
  if (!t || typeof t !== 'object' || typeof t.toTypedArray !== 'function' || !Array.isArray(t.shape)) return undefined;
  if (t.shape.reduce((a, b) => a * b, 1) !== 1) return undefined;
  return Number(t.toTypedArray()[0]);
}

/** None by type, as a constant, or as the shape run saw it (an Optional value that was None at run time). */
export function isNoneValue(v: Value | undefined): boolean {
  if (!v) return true;
  return v.type.kind === 'None' || (v.node?.isConstant === true && constantOf(v) === null) || valueInfo(v)?.kind === 'None';
}
