// A tiny graph builder for unit tests (no libtorch): aten ops with their shape info, as
// propagate-shapes would record it (shape, strides, dtype, bytes; views share their base's
// storage), constants, module attributes (prim::GetAttr on `self`) and prim::If blocks.
import { ClassType, Graph, TensorType, type Block, type Node, type Value } from '../../lib/core/ir';
import type { DType } from '../../lib/core/ir/serialized';
import { setValueInfo, tensorInfo } from '../../lib/core/value-info';
import { canView } from '../../lib/core/ops/classes';

const DSIZE: Record<string, number> = { float32: 4, float16: 2, bool: 1, int64: 8 };
export const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
/** Contiguous strides of a shape. */
export const contiguous = (s: readonly number[]) => s.map((_, k) => numel(s.slice(k + 1)));

export class GB {
  readonly g = new Graph();
  readonly self = this.g.addInput(ClassType('__torch__.M'), 'self');
  private storage = new Map<Value, number>();

  private info(v: Value, shape: number[], opts: { strides?: number[]; dtype?: DType; base?: Value } = {}): Value {
    const dtype = opts.dtype ?? (opts.base ? tensorInfo(opts.base)!.dtype : 'float32');
    const bytes = numel(shape) * DSIZE[dtype];
    const storageBytes = opts.base ? this.storage.get(opts.base)! : bytes;
    this.storage.set(v, storageBytes);
    setValueInfo(v, { kind: 'Tensor', shape, strides: opts.strides ?? contiguous(shape), dtype, bytes, storageBytes });
    return v;
  }
  shape(v: Value): number[] { return tensorInfo(v)!.shape; }
  strides(v: Value): number[] { return tensorInfo(v)!.strides; }

  input(name: string, shape: number[], dtype: DType = 'float32'): Value {
    return this.info(this.g.addInput(TensorType, name), shape, { dtype });
  }
  weight(name: string, shape: number[], dtype: DType = 'float32'): Value {
    const n = this.g.createNode('prim::GetAttr', [this.self], [TensorType], { name: { kind: 's', value: name } });
    return this.info(n.output, shape, { dtype });
  }
  int(x: number): Value { return this.g.insertConstant(BigInt(x)); }
  ints(xs: number[]): Value { return this.g.insertConstant(xs.map(BigInt)); }
  float(x: number): Value { return this.g.insertConstant(x); }
  bool(x: boolean): Value { return this.g.insertConstant(x); }
  none(): Value { return this.g.insertConstant(null); }
  node(kind: string, inputs: Value[]): Node { return this.g.createNode(kind, inputs, [TensorType]); }
  fresh(kind: string, inputs: Value[], shape: number[], dtype?: DType): Value { return this.info(this.node(kind, inputs).output, shape, { dtype }); }
  view(kind: string, inputs: Value[], shape: number[], strides: number[]): Value {
    return this.info(this.node(kind, inputs).output, shape, { strides, base: inputs[0] });
  }

  linear(x: Value, w: Value, b?: Value | null): Value {
    return this.fresh('aten::linear', [x, w, b ?? this.none()], [...this.shape(x).slice(0, -1), this.shape(w)[0]]);
  }
  matmul(a: Value, b: Value, kind = 'aten::matmul'): Value {
    const sa = this.shape(a), sb = this.shape(b);
    const ba = sa.slice(0, -2), bb = sb.slice(0, -2);
    const n = Math.max(ba.length, bb.length);
    const batch = Array.from({ length: n }, (_, i) => { const x = ba[ba.length - n + i] ?? 1, y = bb[bb.length - n + i] ?? 1; return x === 1 ? y : x; });
    return this.fresh(kind, [a, b], [...batch, sa[sa.length - 2], sb[sb.length - 1]]);
  }
  transpose(x: Value, d0: number, d1: number): Value {
    const s = [...this.shape(x)], st = [...this.strides(x)];
    const r = s.length;
    const a = (d0 + r) % r, b = (d1 + r) % r;
    [s[a], s[b]] = [s[b], s[a]];
    [st[a], st[b]] = [st[b], st[a]];
    return this.view('aten::transpose', [x, this.int(d0), this.int(d1)], s, st);
  }
  permute(x: Value, dims: number[]): Value {
    return this.view('aten::permute', [x, this.ints(dims)], dims.map((d) => this.shape(x)[d]), dims.map((d) => this.strides(x)[d]));
  }
  /** view/reshape: a view when x is contiguous, else (reshape only) a copy. */
  reshape(x: Value, shape: number[], kind = 'aten::reshape'): Value {
    const t = tensorInfo(x)!;
    const viewable = canView(t.shape, t.strides, shape);
    if (!viewable && kind === 'aten::view') throw new Error('test graph: view of a non-viewable tensor');
    const isC = t.strides.every((st, k) => t.shape[k] === 1 || st === contiguous(t.shape)[k]);
    if (viewable && !isC) throw new Error('test graph: the builder only views contiguous tensors');
    const n = this.node(kind, [x, this.ints(shape)]);
    return viewable ? this.info(n.output, shape, { base: x }) : this.info(n.output, shape);
  }
  contiguous(x: Value): Value {
    const t = tensorInfo(x)!;
    const n = this.node('aten::contiguous', [x, this.int(0)]);
    const isC = t.strides.every((s, k) => t.shape[k] === 1 || s === contiguous(t.shape)[k]);
    return isC ? this.info(n.output, t.shape, { base: x, strides: t.strides }) : this.info(n.output, t.shape);
  }
  unary(kind: string, x: Value, ...extra: Value[]): Value { return this.fresh(kind, [x, ...extra], this.shape(x)); }
  binary(kind: string, a: Value, b: Value, ...extra: Value[]): Value {
    const sa = this.shape(a), sb = this.shape(b);
    const n = Math.max(sa.length, sb.length);
    const out = Array.from({ length: n }, (_, i) => Math.max(sa[sa.length - n + i] ?? 1, sb[sb.length - n + i] ?? 1));
    return this.fresh(kind, [a, b, ...extra], out);
  }
  add(a: Value, b: Value): Value { return this.binary('aten::add', a, b, this.int(1)); }
  mulScalar(x: Value, s: number): Value { return this.unary('aten::mul', x, this.float(s)); }
  divScalar(x: Value, s: number): Value { return this.unary('aten::div', x, this.float(s)); }
  softmax(x: Value, dim = -1): Value { return this.unary('aten::softmax', x, this.int(dim), this.none()); }
  dropout(x: Value, p: number, train: boolean): Value {
    const n = this.node('aten::dropout', [x, this.float(p), this.bool(train)]);
    return train ? this.info(n.output, this.shape(x)) : this.info(n.output, this.shape(x), { base: x, strides: this.strides(x) });
  }
  relu(x: Value): Value { return this.unary('aten::relu', x); }
  gelu(x: Value): Value { return this.unary('aten::gelu', x, this.g.insertConstant('none')); }
  layerNorm(x: Value, w: Value | null, b: Value | null): Value {
    const s = this.shape(x);
    return this.fresh('aten::layer_norm', [x, this.ints([s[s.length - 1]]), w ?? this.none(), b ?? this.none(), this.float(1e-5), this.bool(true)], s);
  }
  conv2d(x: Value, w: Value, b: Value | null, stride: number, pad: number, groups = 1): Value {
    const [N, , H, W] = this.shape(x);
    const [Co, , kh, kw] = this.shape(w);
    const out = [N, Co, Math.floor((H + 2 * pad - kh) / stride) + 1, Math.floor((W + 2 * pad - kw) / stride) + 1];
    return this.fresh('aten::conv2d', [x, w, b ?? this.none(), this.ints([stride, stride]), this.ints([pad, pad]), this.ints([1, 1]), this.int(groups)], out);
  }
  batchNorm(x: Value, c: number): Value {
    const w = this.weight(`bn${c}.weight`, [c]), bb = this.weight(`bn${c}.bias`, [c]);
    const rm = this.weight(`bn${c}.rm`, [c]), rv = this.weight(`bn${c}.rv`, [c]);
    return this.fresh('aten::batch_norm', [x, w, bb, rm, rv, this.bool(false), this.float(0.1), this.float(1e-5), this.bool(true)], this.shape(x));
  }
  sdpa(q: Value, k: Value, v: Value, mask: Value | null = null, causal = false): Value {
    const sq = this.shape(q);
    return this.fresh('aten::scaled_dot_product_attention', [q, k, v, mask ?? this.none(), this.float(0), this.bool(causal), this.none(), this.bool(false)],
      [...sq.slice(0, -1), this.shape(v)[this.shape(v).length - 1]]);
  }
  str(s: string): Value { return this.g.insertConstant(s); }
  text(): string { return this.g.toString(); }

  // ---- attention pieces: masks, a causal buffer, a batched matmul by name -------------------------

  maskedFill(x: Value, mask: Value, fill: number): Value { return this.fresh('aten::masked_fill', [x, mask, this.float(fill)], this.shape(x)); }
  /** where(keep, x, fill): x where `keep` holds, `fill` elsewhere. */
  where(keep: Value, x: Value, fill: number): Value { return this.fresh('aten::where', [keep, x, this.float(fill)], this.shape(x)); }
  sub(a: Value, b: Value): Value { return this.binary('aten::sub', a, b, this.int(1)); }
  /** triu(ones(L, S, dtype=bool), 1): true above the diagonal (the positions a causal mask hides). */
  causalMask(L: number, S = L): Value {
    const ones = this.fresh('aten::ones', [this.ints([L, S]), this.int(11), this.none(), this.none(), this.none()], [L, S], 'bool');
    return this.fresh('aten::triu', [ones, this.int(1)], [L, S], 'bool');
  }

  // ---- control flow -------------------------------------------------------------------------------

  /** prim::If(cond) with a then and an else block, each returning what its builder function makes (shape info from the then branch). */
  ifElse(cond: Value, then: () => Value, otherwise: () => Value): { node: Node; then: Block; otherwise: Block; output: Value } {
    const node = this.g.createNode('prim::If', [cond], [TensorType]);
    const [tb, eb] = [node.addBlock(), node.addBlock()];
    const t = this.g.withInsertPoint(tb, then);
    tb.registerOutput(t);
    eb.registerOutput(this.g.withInsertPoint(eb, otherwise));
    setValueInfo(node.output, tensorInfo(t)!);
    return { node, then: tb, otherwise: eb, output: node.output };
  }
  out(...vs: Value[]): this { vs.forEach((v) => this.g.registerOutput(v)); return this; }
}
