// Reading constants, one reader per fact: a prim::Constant's value as the IR holds it
// (constantOf), the JS value a pass can compute with (constOf, constNumber: ints as numbers), which
// also takes what a shape run recorded for values computed at run time (sizes, flags) unless told
// not to, a number however the model wrote it (scalarConstant), and a tensor constant.
import type { ConstantValue, TensorHandleLike, Value } from './ir';
import { valueInfo } from './value-info';

/** A constant that is not a list or a tensor, as the IR holds it (ints as bigints, None as null). */
export type ScalarConstantValue = bigint | number | boolean | string | null;

/** What constOf and constNumber read. `recorded: false`: prim::Constants only, not what a shape run
 * saw a value computed at run time be (that holds for the example inputs only). Default true. */
export interface ConstReadOptions { recorded?: boolean }

/** The value of a prim::Constant producing `v` (ints as bigints), or undefined when `v` is not one;
 * with `{ scalarOnly: true }`, also undefined when it is a list or a tensor. */
export function constantOf(v: Value | undefined): ConstantValue | undefined;
export function constantOf(v: Value | undefined, o: { scalarOnly: true }): ScalarConstantValue | undefined;
export function constantOf(v: Value | undefined, o?: { scalarOnly: true }): ConstantValue | undefined {
  const n = v?.node;
  if (!n || !n.isConstant) return undefined;
  const c = n.constantValue();
  return o?.scalarOnly && c !== null && typeof c === 'object' ? undefined : c;
}

/** The tensor a prim::Constant holds (a traced literal, or a weight a lowering concatenated, folded or
 * prepacked), or undefined. Reads the attribute, so a constant holding a type is no error here. */
export function tensorConstantOf(v: Value | undefined): TensorHandleLike | undefined {
  const a = v?.node?.isConstant ? v.node.attr('value') : undefined;
  return typeof a === 'object' && a !== null && !Array.isArray(a) && 'shape' in a && 'dtype' in a && !('kind' in a)
    ? a as TensorHandleLike : undefined;
}

/** A constant's JS value (ints as numbers), or what shape propagation recorded (see ConstReadOptions). */
export function constOf(v: Value | undefined, o: ConstReadOptions = {}): number | boolean | string | null | number[] | undefined {
  if (!v) return undefined;
  if (v.node?.isConstant) {
    const c = constantOf(v);
    if (typeof c === 'bigint') return Number(c);
    if (typeof c === 'number' || typeof c === 'boolean' || typeof c === 'string' || c === null) return c;
    if (Array.isArray(c) && c.every((x) => typeof x === 'bigint' || typeof x === 'number')) return c.map(Number);
    return undefined;
  }
  if (v.type.kind === 'None') return null;
  if (o.recorded === false) return undefined;
  const i = valueInfo(v);
  if (!i) return undefined;
  switch (i.kind) {
    case 'Int': case 'Float': case 'Bool': case 'IntList': return i.value;
    case 'None': return null;
    default: return undefined;
  }
}

/** constOf as a number (a bool as 0 or 1), or undefined. */
export function constNumber(v: Value | undefined, o: ConstReadOptions = {}): number | undefined {
  if (!v) return undefined;
  const c = constOf(v, o);
  return typeof c === 'number' ? c : typeof c === 'boolean' ? Number(c) : undefined;
}

/**
 * A number: a constant int or float (or one the shape run recorded), or a one-element tensor
 * constant (how a trace records `x / math.sqrt(d)` and `0.5 * x`).
 */
export function scalarConstant(v: Value | undefined): number | undefined {
  const c = constOf(v);
  if (typeof c === 'number') return c;
  const t = tensorConstantOf(v) as (TensorHandleLike & { toTypedArray?: () => ArrayLike<number | bigint> }) | undefined;
  if (!t || typeof t.toTypedArray !== 'function' || t.shape.reduce((a, b) => a * b, 1) !== 1) return undefined;
  return Number(t.toTypedArray()[0]);
}

/** None by type, as a constant, or as the shape run saw it (an Optional value that was None at run time). */
export function isNoneValue(v: Value | undefined): boolean {
  if (!v) return true;
  return v.type.kind === 'None' || (v.node?.isConstant === true && constantOf(v) === null) || valueInfo(v)?.kind === 'None';
}
