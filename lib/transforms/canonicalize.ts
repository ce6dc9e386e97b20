// Canonicalisation before fusion: remove or normalise ops that do not change the value, so that
// one spelling of a pattern stands for all the ways real code writes it. In place; returns what
// it removed. Real code is full of these: Hugging Face's `softmax(x, dtype=torch.float32)
// .to(query.dtype)` on float32, eval-mode `dropout(p, training=False)`, `x.type_as(x)`.
//   aten::to / type_as to the dtype and device a tensor already has -> the tensor (ATen returns
//     `self` itself there unless copy=True, so aliasing is unchanged);
//   aten::dropout & co. with train=False or p=0 -> the input (ATen returns the input);
//   softmax's dtype argument equal to the input's dtype -> None;
//   an in-place update (add_, sub_, mul_, div_, masked_fill_) of a value that nothing else reads
//     and that views nothing (`scores /= sqrt(d)`) -> the out-of-place op (same value);
//   an add_/sub_ into a slice of a private value (`attn[:, :, 1:, 1:] += rel`) -> the value plus
//     the update zero-padded to its full size, read by every later reader; a copy_ into the
//     slices of the slices plus terms (MViTv2's `attn[..] = (attn[..].view(..) + rel).view(..)`)
//     is such an add_ first;
//   einsum over two operands that is one batched matmul ('bhid,bhjd->bhij', 'bind,bjnd->bnij')
//     -> matmul of its operands permuted (k^T as a transpose), the result permuted back;
//   a packed in-projection split as F.multi_head_attention_forward splits it (linear, then
//     unflatten/unsqueeze/transpose/squeeze/contiguous and select(0, i)) -> one linear per piece
//     over a row slice of the packed weight, as torchgraph decomposes the TorchScript fast path
//     (packed-projections.ts): a .pt2 and a .pt of one model then group and lower alike.
import { dataInput, type Graph, type Node, type Value } from '../core/ir';
import { constOf } from '../core/constants';
import { setValueInfo, tensorInfo, valueInfo } from '../core/value-info';
import { contiguousStrides } from '../core/strides';
import { einsumAsMatmul, type EinsumMatmul } from './einsum';
import { splitPackedProjections } from './packed-projections';

export interface CanonicalizeReport {
  /** Count per rewrite, e.g. {"aten::to (same dtype)": 12}. */
  rewritten: Record<string, number>;
}

const DROPOUTS = new Set(['aten::dropout', 'aten::feature_dropout', 'aten::alpha_dropout', 'aten::feature_alpha_dropout']);
const CASTS = new Set(['aten::to', 'aten::type_as']);
const SOFTMAXES = new Set(['aten::softmax', 'aten::log_softmax']);

/** Same dtype and device as its input, and not a forced copy: the op returns its input. */
function isNoOpCast(n: Node): boolean {
  const self = n.arg('self');
  if (!self || n.outputs.length !== 1) return false;
  const copy = n.arg('copy');
  if (copy && constOf(copy) !== false) return false;
  const format = n.arg('memory_format');
  if (format && constOf(format) !== null) return false;
  const a = tensorInfo(self), b = tensorInfo(n.output);
  return a !== undefined && b !== undefined && a.dtype === b.dtype && sameDevice(self, n.output);
}

function sameDevice(a: Value, b: Value): boolean {
  const da = a.type.kind === 'Tensor' ? a.type.device : undefined;
  const db = b.type.kind === 'Tensor' ? b.type.device : undefined;
  return da === undefined || db === undefined || da === db;
}

function isNoOpDropout(n: Node): boolean {
  const train = n.arg('train'), p = n.arg('p');
  return (train !== undefined && constOf(train) === false) || (p !== undefined && constOf(p) === 0);
}

/** In-place updates whose out-of-place op takes the same arguments. */
const OUT_OF_PLACE: Record<string, string> = {
  'aten::add_': 'aten::add', 'aten::sub_': 'aten::sub', 'aten::mul_': 'aten::mul', 'aten::div_': 'aten::div',
  'aten::masked_fill_': 'aten::masked_fill',
};

/**
 * Ops whose result is a new tensor, never an alias of an input or of the module's state (a
 * parameter read, a cast or contiguous that may return self, a chunk's piece, a call's result
 * may all alias): only these values are private enough to update out of place.
 */
const FRESH_PRODUCERS = new Set(['aten::matmul', 'aten::bmm', 'aten::baddbmm', 'aten::mm', 'aten::einsum', 'aten::mul', 'aten::div',
  'aten::add', 'aten::sub', 'aten::masked_fill', 'aten::where', 'aten::softmax', 'aten::clone', 'aten::linear', 'aten::addmm']);

/** Attention scores: a softmax reads `v` within a few ops (the rewrites here are for cores; a CNN's `out += identity` stays in place). */
function feedsSoftmax(v: Value, depth = 6): boolean {
  if (depth < 0) return false;
  return v.uses.some((u) => SOFTMAXES.has(u.node.kind)
    || u.node.outputs.some((o) => o.type.kind === 'Tensor' && feedsSoftmax(o, depth - 1)));
}

/** `other` keeps the dtype of the in-place op's `self` (out of place, a wider dtype would promote the result). */
function keepsDtype(self: Value, other: Value | undefined): boolean {
  if (!other || other.type.kind !== 'Tensor') return true;
  const a = tensorInfo(self), b = tensorInfo(other);
  // A 0-dim tensor (a traced `/ math.sqrt(d)`) does not promote a tensor of its kind.
  if (b && b.shape.length === 0 && a && a.dtype.startsWith('float') === b.dtype.startsWith('float')) return true;
  return a !== undefined && a.dtype === b?.dtype;
}

/** `n` updates in place a value no other node reads, made by an op that returns a new tensor, on the way to a softmax. */
function updatesPrivateValue(n: Node): boolean {
  const self = n.arg('self');
  const producer = self?.node;
  if (!self || !producer || !FRESH_PRODUCERS.has(producer.kind) || producer.outputs.length !== 1) return false;
  const other = n.kind === 'aten::masked_fill_' ? undefined : n.arg('other');
  return self.uses.length === 1 && n.outputs.length === 1 && keepsDtype(self, other) && feedsSoftmax(n.output);
}

/** Tensor ops, int lists and constants inserted before `n`, with its scope and source. */
function builderBefore(g: Graph, n: Node) {
  const opts = { scope: n.scope, source: n.source };
  const at = <T>(f: () => T) => g.withInsertPoint(n, f);
  return {
    op: (kind: string, inputs: Value[]) => at(() => g.createNode(kind, inputs, [{ kind: 'Tensor' }], {}, opts)).output,
    ints: (xs: number[]) => at(() => {
      const elems = xs.map((x) => g.insertConstant(BigInt(x)));
      return g.createNode('prim::ListConstruct', elems, [{ kind: 'List', elem: { kind: 'Int' } }], {}, opts);
    }).output,
    constant: (v: bigint | number | boolean) => at(() => g.insertConstant(v)),
  };
}

const isIdentity = (p: readonly number[]) => p.every((d, i) => d === i);
/** p swaps the last two dims and keeps the rest. */
const swapsLastTwoDims = (p: readonly number[]) =>
  p.length >= 2 && p.every((d, i) => (i < p.length - 2 ? d === i : d === (i === p.length - 2 ? p.length - 1 : p.length - 2)));

function einsumToMatmul(g: Graph, n: Node, e: EinsumMatmul): void {
  const { op: create, ints, constant } = builderBefore(g, n);
  // A permute as a view with the permuted sizes and strides (what the shape run would record).
  const permute = (v: Value, p: number[]): Value => {
    if (isIdentity(p)) return v;
    const t = swapsLastTwoDims(p)
      ? create('aten::transpose', [v, constant(-2n), constant(-1n)])
      : create('aten::permute', [v, ints(p)]);
    const info = tensorInfo(v);
    if (info) {
      const strides = info.strides ? { strides: p.map((d) => info.strides![d]) } : {};
      setValueInfo(t, { ...info, shape: p.map((d) => info.shape[d]), ...strides });
    }
    return t;
  };
  const a = permute(e.a, e.permA);
  const b = permute(e.b, e.permB);
  const mm = create('aten::matmul', [a, b]);
  const recorded = tensorInfo(n.output);
  if (recorded) {
    const shape = e.permOut.map((_, i) => recorded.shape[e.permOut.indexOf(i)]);
    setValueInfo(mm, { ...recorded, shape, strides: contiguousStrides(shape) });
  }
  let result = permute(mm, e.permOut);
  // einsum's own result was contiguous: later .view()s may rely on it.
  const got = tensorInfo(result);
  if (recorded?.strides && got?.strides && recorded.strides.some((s, i) => s !== got.strides![i])) {
    result = create('aten::contiguous', [result, constant(0n)]);
    setValueInfo(result, { ...recorded, strides: contiguousStrides(recorded.shape) });
  }
  n.output.replaceAllUsesWith(result);
}

interface SliceStep { dim: number; start: number; end: number }

/**
 * `n` (add_ or sub_) updates slices (step 1, constant bounds) of a value `base` that views
 * nothing and that only this chain of slices reads before `n`: the update as a full-size add.
 */
function sliceUpdate(
  n: Node, order: Map<Node, number>,
): { base: Value; steps: SliceStep[]; shape: number[]; writeBack?: Node } | undefined {
  if (n.kind !== 'aten::add_' && n.kind !== 'aten::sub_') return undefined;
  const self = n.arg('self'), other = n.arg('other');
  if (!self || other?.type.kind !== 'Tensor' || !keepsDtype(self, other)) return undefined;
  // A trace of `x[i] += y` writes the result back (copy_ into the same slices): a no-op, dropped with it.
  const writeBack = n.output.uses.length === 1 && n.output.uses[0].node.kind === 'aten::copy_' && n.output.uses[0].index === 1
    ? n.output.uses[0].node
    : undefined;
  if (n.output.hasUses() && !(writeBack && sameSlices(writeBack.arg('self')!, self))) return undefined;
  const steps: SliceStep[] = [];
  let v = self;
  while (v.node?.kind === 'aten::slice') {
    const sl = v.node;
    if (v.uses.length !== 1) return undefined;
    const dim = constOf(sl.arg('dim')!), start = constOf(sl.arg('start')!), end = constOf(sl.arg('end')!), step = constOf(sl.arg('step')!);
    const size = tensorInfo(sl.arg('self')!)?.shape;
    const isInt = (x: unknown): x is number | bigint => typeof x === 'number' || typeof x === 'bigint';
    if (!isInt(dim) || !isInt(step) || Number(step) !== 1 || !size) return undefined;
    const d = Number(dim) < 0 ? Number(dim) + size.length : Number(dim);
    const clamp = (x: unknown, dflt: number) => {
      if (x === null) return dflt;
      if (!isInt(x)) return NaN;
      const i = Number(x) < 0 ? Number(x) + size[d] : Number(x);
      return Math.min(Math.max(i, 0), size[d]);
    };
    const s0 = clamp(start, 0), e0 = clamp(end, size[d]);
    if (!Number.isFinite(s0) || !Number.isFinite(e0) || e0 <= s0) return undefined;
    // A slice of the whole dim changes nothing; two slices of one dim would compose offsets: refused.
    if (s0 !== 0 || e0 !== size[d]) {
      if (steps.some((x) => x.dim === d)) return undefined;
      steps.push({ dim: d, start: s0, end: e0 });
    }
    v = sl.arg('self')!;
  }
  const base = v, producer = base.node;
  const shape = tensorInfo(base)?.shape;
  if (!producer || !shape || !FRESH_PRODUCERS.has(producer.kind) || !feedsSoftmax(base)) return undefined;
  // One block: a conditional update (inside an If) is not an unconditional add.
  if (n.owningBlock !== producer.owningBlock) return undefined;
  // Before the update, only the slice chain reads the base (else they would see it unchanged).
  const at = order.get(n)!;
  const before = base.uses.filter((x) => (order.get(x.node) ?? Infinity) < at);
  if (before.length !== 1 || before[0].node.kind !== 'aten::slice' || before[0].node.output.uses.length !== 1) return undefined;
  return { base, steps, shape, ...(writeBack ? { writeBack } : {}) };
}

const RESHAPES = new Set(['aten::view', 'aten::reshape']);

/**
 * `copy_(S, reshape(reshape(S2) + t1 + ... + tk))` where S2 re-reads the slices S writes (timm's
 * MViTv2: `attn[:, :, i:, j:] = (attn[:, :, i:, j:].view(..) + rel_h + rel_w).view(..)`) is an
 * additive update of those slices: `add_(S, reshape(expand(t1 + ... + tk)))`, which sliceUpdate
 * then reads. Reshapes relabel elements in row-major order both ways, so the terms line up with
 * the elements they were added to. Into slices it returns the add_ for sliceUpdate; into the
 * whole value it rewrites to `value + update` itself and returns 'whole'. The copy_ and the chain
 * it read are gone either way.
 */
function additiveCopy(g: Graph, n: Node, order: Map<Node, number>): Node | 'whole' | undefined {
  if (n.kind !== 'aten::copy_') return undefined;
  const dst = n.arg('self'), src = n.arg('src');
  if (!dst || !src) return undefined;
  const shape = tensorInfo(dst)?.shape, srcShape = tensorInfo(src)?.shape;
  if (!shape || !srcShape || shape.join() !== srcShape.join()) return undefined;
  // Into slices (a trace) the copy_'s result goes unread; into the whole value (a program, where
  // the slices of whole dims are an alias) the softmax reads it.
  const whole = dst.node?.kind !== 'aten::slice';
  if (!whole && n.output.hasUses()) return undefined;
  const dead: Node[] = [];
  const isReread = (w: Value) => w !== dst && (w.node?.kind === 'aten::slice' || w.node?.kind === 'aten::alias') && sameSlices(w, dst);
  const unitAlpha = (a: Node) => constOf(a.arg('alpha')!) === 1;
  // The value leads, through single-use adds and reshapes, to the re-read slices.
  const leads = (w: Value, depth = 0): boolean => {
    if (isReread(w)) return true;
    if (depth > 12 || w.uses.length !== 1 || !w.node) return false;
    if (RESHAPES.has(w.node.kind)) return leads(dataInput(w.node), depth + 1);
    if (w.node.kind === 'aten::add' && unitAlpha(w.node)) {
      return leads(w.node.arg('self')!, depth + 1) || leads(w.node.arg('other')!, depth + 1);
    }
    return false;
  };
  let v = src;
  while (RESHAPES.has(v.node?.kind ?? '') && v.uses.length === 1) { dead.push(v.node!); v = dataInput(v.node!); }
  // Every add at one shape (no reshape between them), the shape of the reshaped slices.
  const sumShape = tensorInfo(v)?.shape;
  const terms: Value[] = [];
  while (v.node?.kind === 'aten::add' && v.uses.length === 1 && unitAlpha(v.node)) {
    if (tensorInfo(v)?.shape.join() !== sumShape?.join()) return undefined;
    const self = v.node.arg('self')!, other = v.node.arg('other')!;
    const [run, term] = leads(self) ? [self, other] : leads(other) ? [other, self] : [undefined, undefined];
    if (!run || !term || term.type.kind !== 'Tensor' || leads(term) || !keepsDtype(dst, term)) return undefined;
    dead.push(v.node);
    terms.push(term);
    v = run;
  }
  while (RESHAPES.has(v.node?.kind ?? '') && v.uses.length === 1) { dead.push(v.node!); v = dataInput(v.node!); }
  if (!terms.length || !sumShape || !isReread(v)) return undefined;
  if (whole) {
    // The value itself: private, on its way to a softmax, read before only by what is rewritten.
    const producer = dst.node;
    if (!producer || !FRESH_PRODUCERS.has(producer.kind) || producer.owningBlock !== n.owningBlock
      || !feedsSoftmax(n.output)) return undefined;
    const at = order.get(n)!;
    if (dst.uses.some((x) => x.node !== n && x.node !== v.node && (order.get(x.node) ?? Infinity) < at)) return undefined;
  }
  const { op: create, ints, constant } = builderBefore(g, n);
  let sum = terms[terms.length - 1];
  for (let i = terms.length - 2; i >= 0; i--) sum = create('aten::add', [sum, terms[i], constant(1n)]);
  const update = create('aten::reshape', [create('aten::expand', [sum, ints(sumShape), constant(false)]), ints(shape)]);
  setValueInfo(update, { ...tensorInfo(dst)!, strides: contiguousStrides(shape) });
  let result: Node | 'whole';
  if (whole) {
    const added = create('aten::add', [dst, update, constant(1n)]);
    const info = valueInfo(dst);
    if (info) setValueInfo(added, info);
    n.output.replaceAllUsesWith(added);
    const at = order.get(n)!;
    for (const use of [...dst.uses]) if ((order.get(use.node) ?? -1) > at) use.node.replaceInput(use.index, added);
    result = 'whole';
  } else {
    result = g.withInsertPoint(n, () => g.createNode('aten::add_', [dst, update, constant(1n)], [{ kind: 'Tensor' }], {},
      { scope: n.scope, source: n.source }));
    order.set(result, order.get(n)!);
  }
  n.destroy();
  for (const d of dead) d.destroy();
  for (let c: Node | null | undefined = v.node; (c?.kind === 'aten::slice' || c?.kind === 'aten::alias') && !c.output.hasUses();) {
    const next: Node | null | undefined = dataInput(c).node;
    c.destroy();
    c = next;
  }
  return result;
}

/** `a` and `b` are the same chain of slices (equal constant arguments) of one value; an alias is its input. */
function sameSlices(a: Value, b: Value): boolean {
  if (a.node?.kind === 'aten::alias') return sameSlices(dataInput(a.node), b);
  if (b.node?.kind === 'aten::alias') return sameSlices(a, dataInput(b.node));
  const x = a.node, y = b.node;
  if (x?.kind !== 'aten::slice' || y?.kind !== 'aten::slice') return a === b;
  const sameArgs = x.inputs.slice(1).every((v, i) => constOf(v) === constOf(y.inputs[i + 1]) && constOf(v) !== undefined);
  return sameArgs && sameSlices(x.arg('self')!, y.arg('self')!);
}

function sliceUpdateToAdd(g: Graph, n: Node, u: NonNullable<ReturnType<typeof sliceUpdate>>, order: Map<Node, number>): void {
  const { op: create, ints, constant } = builderBefore(g, n);
  // The update at the slice's shape, then zeros around it: constant_pad_nd's pads run from the last dim.
  const sliced = [...u.shape];
  for (const st of u.steps) sliced[st.dim] = st.end - st.start;
  const other = create('aten::expand', [n.arg('other')!, ints(sliced), constant(false)]);
  const pads: number[] = [];
  for (let d = u.shape.length - 1; d >= 0; d--) {
    const st = u.steps.find((x) => x.dim === d);
    pads.push(st ? st.start : 0, st ? u.shape[d] - st.end : 0);
  }
  // Slices of whole dims only (MViTv2 without a class token): the update covers the value.
  const full = u.steps.length ? create('aten::constant_pad_nd', [other, ints(pads), constant(0)]) : other;
  const updated = create(n.kind === 'aten::add_' ? 'aten::add' : 'aten::sub', [u.base, full, n.arg('alpha')!]);
  const info = valueInfo(u.base);
  if (info) setValueInfo(updated, info);
  const dropChain = (from: Node | null | undefined) => {
    for (let c = from; c?.kind === 'aten::slice' && !c.output.hasUses();) {
      const next = c.arg('self')!.node;
      c.destroy();
      c = next;
    }
  };
  if (u.writeBack) {
    const dst = u.writeBack.arg('self')!.node;
    if (u.writeBack.output.hasUses()) u.writeBack.output.replaceAllUsesWith(u.writeBack.arg('self')!);
    u.writeBack.destroy();
    dropChain(dst);
  }
  const when = order.get(n)!;
  // A block's return node is not in allNodes(): it comes right after its block's last node (the graph's after all).
  const subtreeEnd = (x: Node): number => Math.max(order.get(x) ?? -1, ...x.blocks.flatMap((b) => b.nodes().map(subtreeEnd)));
  const orderOf = (x: Node): number => {
    const known = order.get(x);
    if (known !== undefined) return known;
    const block = x.owningBlock;
    if (!block || block.returnNode !== x) return -1; // made by this rewrite, before `n`
    if (!block.owningNode) return Infinity;
    return Math.max(order.get(block.owningNode) ?? -1, ...block.nodes().map(subtreeEnd)) + 0.5;
  };
  for (const use of [...u.base.uses]) if (orderOf(use.node) > when) use.node.replaceInput(use.index, updated);
  const chain = n.arg('self')!.node;
  n.destroy();
  dropChain(chain);
}

export function canonicalize(g: Graph): CanonicalizeReport {
  const rewritten: Record<string, number> = {};
  const note = (what: string) => { rewritten[what] = (rewritten[what] ?? 0) + 1; };
  const all = g.allNodes();
  const order = new Map(all.map((n, i) => [n, i]));
  for (const n of all) {
    if (n.isDestroyed) continue;
    if (CASTS.has(n.kind) && isNoOpCast(n)) {
      n.output.replaceAllUsesWith(n.arg('self')!);
      note(`${n.kind} (same dtype)`);
      continue;
    }
    const additive = n.kind === 'aten::copy_' ? additiveCopy(g, n, order) : undefined;
    if (additive === 'whole') {
      note('aten::copy_ (an additive update of the whole value, as add)');
      continue;
    }
    const updater = additive ?? n;
    const update = dataInput(updater)?.node?.kind === 'aten::slice' ? sliceUpdate(updater, order) : undefined;
    if (update) {
      note(`${additive ? 'aten::copy_ (an additive update)' : n.kind} (into a slice, as a full-size add)`);
      sliceUpdateToAdd(g, updater, update, order);
    } else if (additive) {
      note('aten::copy_ (an additive update, as add_)');
    } else if (OUT_OF_PLACE[n.kind] && updatesPrivateValue(n)) {
      const m = builderBefore(g, n).op(OUT_OF_PLACE[n.kind], [...n.inputs]);
      const info = valueInfo(n.output);
      if (info) setValueInfo(m, info);
      n.output.replaceAllUsesWith(m);
      n.destroy();
      note(`${n.kind} (of a value nothing else reads)`);
    } else if (n.kind === 'aten::einsum') {
      const e = einsumAsMatmul(n);
      if (e) {
        einsumToMatmul(g, n, e);
        note('aten::einsum (a batched matmul)');
      }
    } else if (DROPOUTS.has(n.kind) && isNoOpDropout(n)) {
      n.output.replaceAllUsesWith(n.arg('input')!);
      note(`${n.kind} (eval or p=0)`);
    } else if (SOFTMAXES.has(n.kind)) {
      const dtype = n.arg('dtype');
      const x = n.arg('self');
      const a = x && tensorInfo(x), b = tensorInfo(n.output);
      if (dtype && constOf(dtype) !== null && a && b && a.dtype === b.dtype) {
        const none = g.withInsertPoint(n, () => g.insertConstant(null));
        n.replaceInputWith(dtype, none);
        note(`${n.kind} (dtype of its input)`);
      }
    }
  }
  const split = splitPackedProjections(g);
  if (split) rewritten['aten::linear (a packed in-projection split into pieces, one linear each)'] = split;
  g.eliminateDeadCode();
  return { rewritten };
}
