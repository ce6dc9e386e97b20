// A small builder for emitting aten ops into a graph at an insertion point. Every op is
// created with its full argument list (TorchScript nodes carry all schema arguments), and
// every emitted node is tagged with where it came from.
import type { Graph, Node, Value, TypeData, ScopeFrame } from '../core/ir';
import type { TensorHandleLike } from '../core/ir/serialized';
import { tensorInfo } from '../core/value-info';

const TENSOR: TypeData = { kind: 'Tensor' };
const INT: TypeData = { kind: 'Int' };

/** ScalarType codes as TorchScript stores them in int constants. */
export const SCALAR_TYPE = { bool: 11n, float32: 6n, float64: 7n } as const;

export interface EmitTag {
  /** Attention id (module path or node description) for node.meta.attention. */
  id: string;
  scope?: ScopeFrame[];
  /** False for ops that are not part of an attention (node.meta.attention is left unset). */
  attention?: boolean;
}

export class Emitter {
  /** Nodes emitted so far, in order. */
  readonly emitted: Node[] = [];
  role = '';

  constructor(readonly graph: Graph, readonly before: Node, readonly tag: EmitTag) {}

  private node(kind: string, inputs: Value[], outputs: TypeData[] = [TENSOR]): Node {
    const n = this.graph.withInsertPoint(this.before, () =>
      this.graph.createNode(kind, inputs, outputs, {}, { scope: this.tag.scope }));
    this.track(n);
    return n;
  }

  private track(n: Node): void {
    if (this.tag.attention !== false) n.meta.attention = { id: this.tag.id, role: this.role };
    this.emitted.push(n);
  }

  op(kind: string, ...inputs: Value[]): Value { return this.node(kind, inputs).output; }

  /** An op with a float result (scalar arithmetic: aten::mul/div on floats, aten::Float). */
  floatOp(kind: string, ...inputs: Value[]): Value { return this.node(kind, inputs, [{ kind: 'Float' }]).output; }

  constant(v: bigint | number | boolean | null | bigint[]): Value {
    const c = this.graph.withInsertPoint(this.before, () => this.graph.insertConstant(v));
    this.track(c.node!);
    return c;
  }

  /** A tensor held by the graph (a prim::Constant over a native tensor handle). */
  tensorConstant(t: TensorHandleLike): Value {
    const n = this.graph.withInsertPoint(this.before, () =>
      this.graph.createNode('prim::Constant', [], [TENSOR], { value: { kind: 't', value: t } }, { scope: this.tag.scope }));
    this.track(n);
    return n.output;
  }

  int(v: number | bigint): Value { return this.constant(BigInt(v)); }
  str(v: string): Value {
    const c = this.graph.withInsertPoint(this.before, () => this.graph.insertConstant(v));
    this.track(c.node!);
    return c;
  }
  none(): Value { return this.constant(null); }

  /** int[] from ints and int Values (dynamic sizes). */
  intList(items: (Value | number)[]): Value {
    const vals = items.map((x) => (typeof x === 'number' ? this.int(x) : x));
    return this.node('prim::ListConstruct', vals, [{ kind: 'List', elem: INT }]).output;
  }

  /** A list of `elem` (e.g. Optional[Number] for a Scalar?[] argument). */
  list(items: Value[], elem: TypeData): Value {
    return this.node('prim::ListConstruct', items, [{ kind: 'List', elem }]).output;
  }

  tensorList(items: Value[]): Value {
    return this.node('prim::ListConstruct', items, [{ kind: 'List', elem: TENSOR }]).output;
  }

  size(t: Value, dim: number): Value { return this.node('aten::size', [t, this.int(dim)], [INT]).output; }
  linear(x: Value, w: Value, b: Value | null): Value { return this.op('aten::linear', x, w, b ?? this.none()); }
  slice(t: Value, dim: number, start: number, end: number): Value {
    return this.op('aten::slice', t, this.int(dim), this.int(start), this.int(end), this.int(1));
  }
  view(t: Value, sizes: (Value | number)[]): Value { return this.op('aten::view', t, this.intList(sizes)); }
  reshape(t: Value, sizes: (Value | number)[]): Value { return this.op('aten::reshape', t, this.intList(sizes)); }
  transpose(t: Value, a: number, b: number): Value { return this.op('aten::transpose', t, this.int(a), this.int(b)); }
  contiguous(t: Value): Value { return this.op('aten::contiguous', t, this.int(0)); }
  matmul(a: Value, b: Value): Value { return this.op('aten::matmul', a, b); }
  mulScalar(t: Value, s: number): Value { return this.op('aten::mul', t, this.constant(s)); }
  add(a: Value, b: Value): Value { return this.op('aten::add', a, b, this.int(1)); }
  maskedFill(t: Value, mask: Value, value: number): Value { return this.op('aten::masked_fill', t, mask, this.constant(value)); }
  softmax(t: Value, dim: number): Value { return this.op('aten::softmax', t, this.int(dim), this.none()); }
  dropout(t: Value, p: number, train: boolean): Value { return this.op('aten::dropout', t, this.constant(p), this.constant(train)); }
  unsqueeze(t: Value, dim: number): Value { return this.op('aten::unsqueeze', t, this.int(dim)); }
  squeeze(t: Value, dim: number): Value { return this.op('aten::squeeze', t, this.int(dim)); }
  expand(t: Value, sizes: (Value | number)[]): Value { return this.op('aten::expand', t, this.intList(sizes), this.constant(false)); }
  cat(ts: Value[], dim: number): Value { return this.op('aten::cat', this.tensorList(ts), this.int(dim)); }
  padLast(t: Value, after: number): Value { return this.op('aten::constant_pad_nd', t, this.intList([0, after]), this.constant(0)); }
  mean(t: Value, dim: number): Value {
    return this.op('aten::mean', t, this.intList([dim]), this.constant(false), this.none());
  }
  /** not t; not (not b) of a bool b is b itself (no tensor made: a lowered SDPA mask reads the model's own). */
  logicalNot(t: Value): Value {
    const inner = t.node?.kind === 'aten::logical_not' ? t.node.arg('self') : undefined;
    if (inner && tensorInfo(inner)?.dtype === 'bool') return inner;
    return this.op('aten::logical_not', t);
  }
  /** new_zeros / new_ones with the dtype and device of `like`. */
  newFull(kind: 'aten::new_zeros' | 'aten::new_ones', like: Value, sizes: (Value | number)[], dtype: bigint | null = null): Value {
    return this.op(kind, like, this.intList(sizes), dtype === null ? this.none() : this.constant(dtype),
      this.none(), this.none(), this.none());
  }
  triu(t: Value, diagonal: number): Value { return this.op('aten::triu', t, this.int(diagonal)); }
  layerNorm(x: Value, e: number | Value, w: Value, b: Value, eps: Value): Value {
    return this.op('aten::layer_norm', x, this.intList([e]), w, b, eps, this.constant(true));
  }
  gelu(x: Value): Value {
    return this.op('aten::gelu', x, this.str('none'));
  }
  relu(x: Value): Value { return this.op('aten::relu', x); }
  getAttr(obj: Value, name: string, type: TypeData = TENSOR): Value {
    const n = this.graph.withInsertPoint(this.before, () =>
      this.graph.createNode('prim::GetAttr', [obj], [type], { name: { kind: 's', value: name } }, { scope: this.tag.scope }));
    this.track(n);
    return n.output;
  }
  tuple(items: Value[], type: TypeData): Value { return this.node('prim::TupleConstruct', items, [type]).output; }
}
