// Helpers over TypeData: equality, subtyping, printing and tensor accessors.
import type { DType, TypeData } from './serialized';

type TensorTypeData = Extract<TypeData, { kind: 'Tensor' }>;

export const TensorType: TypeData = { kind: 'Tensor' };
export const IntType: TypeData = { kind: 'Int' };
export const FloatType: TypeData = { kind: 'Float' };
export const BoolType: TypeData = { kind: 'Bool' };
export const StringType: TypeData = { kind: 'String' };
export const NoneType: TypeData = { kind: 'None' };
export const OptionalType = (elem: TypeData): TypeData => ({ kind: 'Optional', elem });
export const ListType = (elem: TypeData): TypeData => ({ kind: 'List', elem });
export const TupleType = (elems: TypeData[]): TypeData => ({ kind: 'Tuple', elems });
export const ClassType = (name: string): TypeData => ({ kind: 'Class', name });

/** Shape of a tensor type (null dims are symbolic); undefined when not a tensor or rank unknown. */
export function tensorShape(t: TypeData): (number | null)[] | undefined {
  return t.kind === 'Tensor' ? t.shape : undefined;
}

export function tensorDtype(t: TypeData): DType | undefined {
  return t.kind === 'Tensor' ? t.dtype : undefined;
}

export function tensorRank(t: TypeData): number | undefined {
  return tensorShape(t)?.length;
}

/** The type with every tensor refinement (dtype, shape, device, ...) dropped, recursively. */
export function unshapedType(t: TypeData): TypeData {
  switch (t.kind) {
    case 'Tensor': return { kind: 'Tensor' };
    case 'Optional': case 'List': return { kind: t.kind, elem: unshapedType(t.elem) };
    case 'Tuple': return { kind: 'Tuple', elems: t.elems.map(unshapedType) };
    case 'Dict': return { kind: 'Dict', key: unshapedType(t.key), value: unshapedType(t.value) };
    default: return t;
  }
}

const sameOptionalArray = <T>(a: T[] | undefined, b: T[] | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]));

/** Structural equality, tensor refinements included. */
export function typeEquals(a: TypeData, b: TypeData): boolean {
  switch (a.kind) {
    case 'Tensor':
      return b.kind === 'Tensor' && a.dtype === b.dtype && a.device === b.device && a.requiresGrad === b.requiresGrad
        && sameOptionalArray(a.shape, b.shape) && sameOptionalArray(a.strides, b.strides);
    case 'Optional': case 'List':
      return b.kind === a.kind && typeEquals(a.elem, b.elem);
    case 'Tuple':
      return b.kind === 'Tuple' && a.elems.length === b.elems.length && a.elems.every((e, i) => typeEquals(e, b.elems[i]));
    case 'Dict':
      return b.kind === 'Dict' && typeEquals(a.key, b.key) && typeEquals(a.value, b.value);
    case 'Class':
      return b.kind === 'Class' && a.name === b.name;
    case 'Other':
      return b.kind === 'Other' && a.repr === b.repr;
    default:
      return a.kind === b.kind;
  }
}

export interface SubtypeOptions {
  /**
   * Answer "could this be valid?" instead of "is this provably valid?": tensor refinements are
   * ignored, and Class or Other types (interfaces, Union, Any, ...) match anything, since their
   * relations are not recorded in TypeData. Used by verify() to avoid false positives.
   */
  loose?: boolean;
}

/** Whether a value of type `a` may be used where `b` is expected (TorchScript's isSubtypeOf). */
export function isSubtypeOf(a: TypeData, b: TypeData, opts: SubtypeOptions = {}): boolean {
  const loose = opts.loose === true;
  if (loose && (a.kind === 'Other' || b.kind === 'Other' || a.kind === 'Class' || b.kind === 'Class')) return true;
  if (b.kind === 'Other' && (b.repr === 'Any' || (a.kind === 'Other' && a.repr === b.repr))) return true;
  switch (b.kind) {
    case 'Optional':
      if (a.kind === 'None') return true;
      return isSubtypeOf(a.kind === 'Optional' ? a.elem : a, b.elem, opts);
    case 'Number':
      return a.kind === 'Number' || a.kind === 'Int' || a.kind === 'Float' || a.kind === 'Complex';
    case 'Tensor':
      return a.kind === 'Tensor' && (loose || tensorRefines(a, b));
    // Lists and dicts are invariant in TorchScript, but exported element types may carry tensor
    // refinements on one side only, so elements are compared covariantly.
    case 'List':
      return a.kind === 'List' && isSubtypeOf(a.elem, b.elem, opts);
    case 'Dict':
      return a.kind === 'Dict' && isSubtypeOf(a.key, b.key, opts) && isSubtypeOf(a.value, b.value, opts);
    case 'Tuple':
      return a.kind === 'Tuple' && a.elems.length === b.elems.length && a.elems.every((e, i) => isSubtypeOf(e, b.elems[i], opts));
    default:
      return typeEquals(a, b);
  }
}

/** `a` carries at least the information `b` has, and agrees with it (null dims in `b` match any). */
function tensorRefines(a: TensorTypeData, b: TensorTypeData): boolean {
  const agree = <T>(x: T | undefined, y: T | undefined) => y === undefined || x === y;
  const dims = (x: (number | null)[] | undefined, y: (number | null)[] | undefined) =>
    y === undefined || (x !== undefined && x.length === y.length && y.every((d, i) => d === null || d === x[i]));
  return agree(a.dtype, b.dtype) && agree(a.device, b.device) && agree(a.requiresGrad, b.requiresGrad)
    && dims(a.shape, b.shape) && dims(a.strides, b.strides);
}

/** "__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear" -> "Linear". */
export function shortClassName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

export interface TypeToStringOptions {
  /** Print tensor refinements, e.g. "Tensor(float32, [2, ?], cuda:0)". Default false. */
  tensorDetails?: boolean;
  /** Keep qualified class names. Default false (last component only). */
  fullClassNames?: boolean;
}

/** TorchScript annotation style: Tensor, int, Optional[Tensor], Tuple[int, str], ... */
export function typeToString(t: TypeData, opts: TypeToStringOptions = {}): string {
  const rec = (x: TypeData) => typeToString(x, opts);
  switch (t.kind) {
    case 'Tensor': {
      if (!opts.tensorDetails) return 'Tensor';
      const parts: string[] = [];
      if (t.dtype) parts.push(t.dtype);
      if (t.shape) parts.push(`[${t.shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`);
      if (t.device) parts.push(t.device);
      if (t.requiresGrad) parts.push('requires_grad');
      return parts.length ? `Tensor(${parts.join(', ')})` : 'Tensor';
    }
    case 'Int': return 'int';
    case 'Float': return 'float';
    case 'Bool': return 'bool';
    case 'String': return 'str';
    case 'None': return 'NoneType';
    case 'Device': return 'Device';
    case 'Number': return 'Scalar';
    case 'Complex': return 'complex';
    case 'Optional': return `Optional[${rec(t.elem)}]`;
    case 'List': return `List[${rec(t.elem)}]`;
    case 'Tuple': return t.elems.length ? `Tuple[${t.elems.map(rec).join(', ')}]` : 'Tuple[()]';
    case 'Dict': return `Dict[${rec(t.key)}, ${rec(t.value)}]`;
    case 'Class': return opts.fullClassNames ? t.name : shortClassName(t.name);
    case 'Other': return t.repr;
  }
}
