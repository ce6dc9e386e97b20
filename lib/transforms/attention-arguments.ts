// The arguments of an attention op or module call as the decomposition needs them: constants
// read as numbers and bools (anything else skips the attention, with why), masks and ranks from
// the shapes propagation recorded (decompose-attention.ts).
import { dataInput, type Value } from '../core/ir';
import { shortClassName } from '../core/ir/types';
import { tensorInfo } from '../core/value-info';
import { constantOf, isNoneValue } from '../core/constants';
import type { MaskInput } from './attention-math';

/** An attention the decomposition leaves as it is, with the reason (reported, never silent). */
export class Skip extends Error {}

export function constInt(v: Value, what: string): number {
  const c = constantOf(v);
  if (typeof c !== 'bigint') throw new Skip(`${what} is not a constant int`);
  return Number(c);
}

export function constBool(v: Value, what: string): boolean {
  const c = constantOf(v);
  if (typeof c !== 'boolean') throw new Skip(`${what} is not a constant bool`);
  return c;
}

/** A constant bool, or the value itself when it is a bool known only at run time. */
export function boolArg(v: Value, what: string): boolean | Value {
  const c = constantOf(v);
  if (typeof c === 'boolean') return c;
  if (v.type.kind === 'Bool' && !v.node?.isConstant) return v;
  throw new Skip(`${what} is neither a bool constant nor a bool value`);
}

export function constFloat(v: Value, what: string): number {
  const c = constantOf(v);
  if (typeof c !== 'number') throw new Skip(`${what} is not a constant float`);
  return c;
}

/** Ops whose output has the shape and dtype of their first tensor input. */
const SAME_SHAPE_OPS = new Set(['aten::layer_norm', 'aten::dropout', 'aten::relu', 'aten::gelu', 'aten::contiguous', 'aten::clone',
  'prim::unchecked_cast']);
const SAME_SHAPE_MODULES = new Set(['LayerNorm', 'Dropout', 'Identity', 'ReLU', 'GELU']);

/**
 * What shape propagation knows about a tensor; for values it could not reach (inside prim::If
 * branches of scripted models), the info of the input a shape-preserving op or module passed on.
 */
export function knownTensor(v: Value, depth = 0): ReturnType<typeof tensorInfo> {
  const info = tensorInfo(v);
  if (info || depth > 8) return info;
  const n = v.node;
  if (!n) return undefined;
  if (SAME_SHAPE_OPS.has(n.kind)) return knownTensor(dataInput(n), depth + 1);
  if (n.kind === 'prim::CallMethod' && n.inputs[0].type.kind === 'Class' && SAME_SHAPE_MODULES.has(shortClassName(n.inputs[0].type.name))) {
    return knownTensor(n.inputs[1], depth + 1);
  }
  return undefined;
}

/** A mask argument: absent, or a tensor whose dtype shape propagation knows. */
export function maskOf(v: Value | undefined, what: string): MaskInput | undefined {
  if (!v || isNoneValue(v)) return undefined;
  const info = knownTensor(v);
  if (!info) throw new Skip(`${what} dtype is unknown (run shape propagation before decomposing)`);
  const dtype = info.dtype === 'bool' ? 'bool' : info.dtype.startsWith('float') || info.dtype === 'bfloat16' ? 'float' : undefined;
  if (!dtype) throw new Skip(`${what} has dtype ${info.dtype}; only bool and floating masks are supported`);
  return { value: v, dtype, rank: info.shape.length };
}

export function rankOf(v: Value, what: string): number {
  const info = knownTensor(v);
  if (!info) throw new Skip(`${what} shape is unknown (run shape propagation before decomposing)`);
  return info.shape.length;
}
