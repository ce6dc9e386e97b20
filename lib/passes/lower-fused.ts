// Fused lowering: fusion groups become ops libtorch runs as one kernel, in place.
//   attention core  matmul -> [scale] -> [masks] -> softmax -> [dropout] -> matmul
//                   => aten::scaled_dot_product_attention (flash/efficient kernels: the
//                      (L, S) score matrix is never materialised)
//   parallel projections (linears reading one input) => one linear and column slices of its
//                   output. Weights that are consecutive row slices of one packed tensor are
//                   used as a view (nothing copied); separate weights are concatenated once
//                   ahead of the runs (concat-weights.ts) and held by the graph.
//   linear -> GELU/ReLU => aten::_addmm_activation (activation in place on the GEMM output).
// What does not fit is left unfused, with the reason.
import type { Graph, Node, Value } from '../ir';
import type { TensorHandleLike } from '../ir/serialized';
import { isActKind } from '../analysis/ops';
import { Emitter } from './emit';
import { contiguousStrides, layoutIsSafe } from './strides';
import { tensorInfo } from './value-info';

export interface LoweringOutcome {
  id: string;
  lowered: boolean;
  reason?: string;
  /** Bytes of weights concatenated for this group and held by the fused graph (not in any run's peak). */
  heldBytes?: number;
}

/** Separate weights (and biases) of a group, concatenated along the output rows in the linears' order. */
export interface PackedWeights {
  weight: TensorHandleLike;
  bias: TensorHandleLike | null;
  /** Output rows of each linear, in the order given. */
  rows: number[];
  bytes: number;
}

function constant(v: Value | undefined): unknown {
  const n = v?.node;
  if (!n || !n.isConstant) return undefined;
  return n.constantValue();
}

function num(v: Value | undefined): number | undefined {
  const c = constant(v);
  if (typeof c === 'number') return c;
  if (typeof c === 'bigint') return Number(c);
  return undefined;
}

/** A 0-dim tensor constant (the IR holds tensor constants as native handles). */
function scalarTensorConstant(v: Value | undefined): (TensorHandleLike & { toTypedArray?: () => ArrayLike<number | bigint> }) | undefined {
  const c = constant(v) as (TensorHandleLike & { toTypedArray?: () => ArrayLike<number | bigint> }) | undefined;
  return c && typeof c === 'object' && Array.isArray(c.shape) && c.shape.length === 0 ? c : undefined;
}

/** A number, or a 0-dim tensor constant's value (traces record `x / math.sqrt(d)` so). */
function scalarOf(v: Value | undefined): number | undefined {
  const n = num(v);
  if (n !== undefined) return n;
  const c = scalarTensorConstant(v);
  return typeof c?.toTypedArray === 'function' ? Number(c.toTypedArray()[0]) : undefined;
}

const SCALE_OPS = new Set(['aten::mul', 'aten::div']);
// Users that read a tensor's metadata, not its data (scripted `x.to(x.dtype)`).
const METADATA_READS = new Set(['prim::dtype', 'prim::device', 'aten::size', 'aten::dim', 'prim::layout']);
/** mul/div of two operands (a div with a rounding mode is not a scale). */
const isScaleOp = (n: Node): boolean => SCALE_OPS.has(n.kind) && n.inputs.length === 2;

/** The single user of a value, or undefined when there are several (or none). */
function soleUser(v: Value): Node | undefined {
  const users = v.users();
  return users.length === 1 ? users[0] : undefined;
}

class NotFused extends Error {}

/** A scale known only at run time: a 0-dim tensor or a number value (traced `d ** -0.5`). */
interface RuntimeScale { value: Value; divide: boolean }

interface CoreMatch {
  q: Value;
  k: Value;
  v: Value;
  /** The scale: a constant times run-time factors. */
  scale: number;
  runtimeScales: RuntimeScale[];
  boolMasks: Value[];
  /**
   * Additive masks, each with the scale applied after it (SDPA adds its mask after scaling).
   * `fillWhere`: the mask is a bool tensor whose positions were filled with a huge negative
   * value (where / masked_fill); it becomes the additive mask where(mask, 0, value) or
   * where(mask, value, 0).
   */
  floatMasks: { mask: Value; factor: number; runtime: RuntimeScale[]; fillWhere?: { value: number; keepWhere: boolean } }[];
  causal: boolean;
  dropout: number;
  out: Node;
}

function isCausalMask(m: Value): boolean {
  const triu = m.node;
  if (triu?.kind !== 'aten::triu' || num(triu.inputs[1]) !== 1) return false;
  const ones = triu.inputs[0].node;
  return ones?.kind === 'aten::new_ones' || ones?.kind === 'aten::ones';
}

/** A scalar known at run time: an int or float value, or a 0-dim tensor (not a constant). */
function isRuntimeScalar(v: Value): boolean {
  if (v.node?.isConstant) return false;
  if (v.type.kind === 'Float' || v.type.kind === 'Int') return true;
  return v.type.kind === 'Tensor' && tensorInfo(v)?.shape.length === 0;
}

/**
 * The value a where/masked_fill writes: a number, a 0-dim tensor constant, or an aten::full of
 * size [] with a constant fill (GPT-2's `torch.full([], finfo.min)`).
 */
function fillOf(v: Value): number | undefined {
  const s = scalarOf(v);
  if (s !== undefined) return s;
  const n = v.node;
  const size = n?.kind === 'aten::full' ? n.inputs[0] : undefined;
  const empty = size && (size.node?.kind === 'prim::ListConstruct' ? size.node.inputs.length === 0 : Array.isArray(constant(size)) && (constant(size) as unknown[]).length === 0);
  if (empty) return num(n!.inputs[1]);
  return undefined;
}

// Filling with at most -1e30 is the same as adding it, in float32: s + c rounds to c for any
// |s| below half an ulp of c (about 4e22 at -1e30), so kept positions are unchanged, filled ones
// equal c, and a row filled entirely stays uniform after softmax. -inf is a bool mask instead.
const isHugeNegative = (c: number | undefined): boolean => c !== undefined && Number.isFinite(c) && c <= -1e30;
const isFloat32 = (v: Value): boolean => tensorInfo(v)?.dtype === 'float32';

/** Read an attention core from its softmax node, following the data flow. */
function matchCore(softmax: Node, inGroup: (n: Node) => boolean): CoreMatch {
  if (num(softmax.inputs[1]) !== -1 && num(softmax.inputs[1]) !== 3) throw new NotFused('softmax is not over the last dim');
  // Walking back from softmax, `scale` is the product of the scales seen so far: what the
  // original applies to everything below that point, masks included.
  let scale = 1;
  const runtimeScales: RuntimeScale[] = [];
  const boolMasks: Value[] = [];
  const floatMasks: CoreMatch['floatMasks'] = [];
  let x = softmax.inputs[0];
  let causal = false;
  // Backwards from softmax to the scores matmul through masks and a scale.
  for (;;) {
    const n = x.node;
    if (!n || !inGroup(n)) throw new NotFused('the scores do not come from a matmul in the group');
    if (n.kind === 'aten::matmul' || n.kind === 'aten::bmm') break;
    if (n.kind === 'aten::masked_fill' && num(n.inputs[2]) === -Infinity) {
      if (isCausalMask(n.inputs[1])) causal = true;
      else boolMasks.push(n.inputs[1]);
      x = n.inputs[0];
    } else if (n.kind === 'aten::masked_fill' && isHugeNegative(fillOf(n.inputs[2])) && isFloat32(n.output)) {
      // masked_fill(m, finfo.min) == scores + where(m, finfo.min, 0) exactly in float32 (see below).
      floatMasks.push({ mask: n.inputs[1], factor: scale, runtime: [...runtimeScales], fillWhere: { value: fillOf(n.inputs[2])!, keepWhere: false } });
      x = n.inputs[0];
    } else if (n.kind === 'aten::where' && n.inputs.length === 3 && isHugeNegative(fillOf(n.inputs[2])) && isFloat32(n.output)) {
      // GPT-2: where(causal, scores, finfo.min) == scores + where(causal, 0, finfo.min).
      floatMasks.push({ mask: n.inputs[0], factor: scale, runtime: [...runtimeScales], fillWhere: { value: fillOf(n.inputs[2])!, keepWhere: true } });
      x = n.inputs[1];
    } else if (n.kind === 'aten::to' && tensorInfo(n.inputs[0])?.dtype === tensorInfo(n.output)?.dtype && tensorInfo(n.output) !== undefined) {
      x = n.inputs[0]; // a cast to the dtype it already has
    } else if (n.kind === 'aten::add' && n.inputs[1].type.kind === 'Tensor' && num(n.inputs[2]) === 1 && !scalarTensorConstant(n.inputs[1])) {
      // (a 0-dim constant added to the scores is a shift, not a mask: SDPA cannot take it)
      floatMasks.push({ mask: n.inputs[1], factor: scale, runtime: [...runtimeScales] });
      x = n.inputs[0];
    } else if (isScaleOp(n) && scalarOf(n.inputs[1]) !== undefined) {
      const s = scalarOf(n.inputs[1])!;
      if (!(s > 0)) throw new NotFused('the scale is not a positive constant');
      scale *= n.kind === 'aten::mul' ? s : 1 / s;
      x = n.inputs[0];
    } else if (isScaleOp(n) && isRuntimeScalar(n.inputs[1])) {
      runtimeScales.push({ value: n.inputs[1], divide: n.kind === 'aten::div' });
      x = n.inputs[0];
    } else {
      throw new NotFused(`unexpected ${n.kind} between the scores and softmax`);
    }
    if (x.users().filter((u) => !METADATA_READS.has(u.kind)).length !== 1) throw new NotFused('an intermediate of the scores is used outside the core');
  }
  const scores = x.node!;
  let q = scores.inputs[0];
  const qn = q.node;
  if (qn && inGroup(qn) && isScaleOp(qn) && scalarOf(qn.inputs[1]) !== undefined) {
    const s = scalarOf(qn.inputs[1])!;
    scale *= qn.kind === 'aten::mul' ? s : 1 / s;
    q = qn.inputs[0];
  } else if (qn && inGroup(qn) && isScaleOp(qn) && isRuntimeScalar(qn.inputs[1])) {
    runtimeScales.push({ value: qn.inputs[1], divide: qn.kind === 'aten::div' });
    q = qn.inputs[0];
  }
  const kT = scores.inputs[1].node;
  if (!kT || kT.kind !== 'aten::transpose') throw new NotFused('K^T is not an explicit transpose');
  const dims = [num(kT.inputs[1]), num(kT.inputs[2])].map((d) => (d !== undefined && d < 0 ? d + 4 : d)).sort();
  if (!(dims[0] === 2 && dims[1] === 3) && !(dims[0] === 1 && dims[1] === 2)) throw new NotFused('K^T does not swap the last two dims');
  const k = kT.inputs[0];

  let attn = softmax.output;
  let dropout = 0;
  let next = soleUser(attn);
  if (!next) throw new NotFused('the attention weights are used outside the core (returned weights)');
  if (next.kind === 'aten::dropout') {
    const p = num(next.inputs[1]) ?? NaN;
    const train = constant(next.inputs[2]);
    if (typeof train !== 'boolean' || Number.isNaN(p)) throw new NotFused('dropout arguments are not constants');
    dropout = train ? p : 0;
    attn = next.output;
    next = soleUser(attn);
    if (!next) throw new NotFused('the attention weights are used outside the core (returned weights)');
  }
  if ((next.kind !== 'aten::matmul' && next.kind !== 'aten::bmm') || next.inputs[0] !== attn) throw new NotFused('softmax is not followed by @ V');
  return { q, k, v: next.inputs[1], scale, runtimeScales, boolMasks, floatMasks, causal, dropout, out: next };
}

/** Replace one attention core (given by any of its nodes' group) with scaled_dot_product_attention. */
export function lowerAttentionCore(g: Graph, groupNodes: Node[], id: string): LoweringOutcome {
  const members = new Set(groupNodes);
  const softmax = groupNodes.find((n) => n.kind === 'aten::softmax');
  if (!softmax) return { id, lowered: false, reason: 'no softmax in the group' };
  let m: CoreMatch;
  try {
    m = matchCore(softmax, (n) => members.has(n) || n.kind === 'aten::transpose');
  } catch (e) {
    if (e instanceof NotFused) return { id, lowered: false, reason: e.message };
    throw e;
  }
  if (m.boolMasks.length && m.floatMasks.length) return { id, lowered: false, reason: 'bool and float masks together (SDPA takes one mask)' };
  // Scaled up (or by a factor known only at run time), a huge fill could overflow to -inf.
  if (m.floatMasks.some((f) => f.fillWhere && (f.factor > 1 || f.runtime.length))) return { id, lowered: false, reason: 'a scale after a huge-negative fill' };
  const em = new Emitter(g, m.out, { id, scope: m.out.scope });
  em.role = 'fused_attention';
  let mask: Value | null = null;
  if (m.boolMasks.length) {
    // Ours mark masked positions; SDPA's bool masks mark the positions that take part.
    const any = m.boolMasks.reduce((a, b) => em.op('aten::logical_or', a, b));
    mask = em.logicalNot(any);
  } else if (m.floatMasks.length) {
    mask = m.floatMasks.map((f) => {
      const additive = f.fillWhere
        ? em.op('aten::where', f.mask, em.constant(f.fillWhere.keepWhere ? 0 : f.fillWhere.value), em.constant(f.fillWhere.keepWhere ? f.fillWhere.value : 0))
        : f.mask;
      let scaled = f.factor === 1 ? additive : em.op('aten::mul', additive, em.constant(f.factor));
      for (const r of f.runtime) scaled = em.op(r.divide ? 'aten::div' : 'aten::mul', scaled, r.value);
      return scaled;
    }).reduce((a, b) => em.add(a, b));
  }
  // SDPA takes its scale as a float: run-time factors are read (aten::Float) and multiplied in.
  let scale = em.constant(m.scale);
  for (const r of m.runtimeScales) {
    const f = r.value.type.kind === 'Float' ? r.value : em.floatOp('aten::Float', r.value);
    scale = em.floatOp(r.divide ? 'aten::div' : 'aten::mul', scale, f);
  }
  // PyTorch's own slow path works on (batch*heads, L, hd); SDPA's fused CPU kernels take 4-D
  // inputs only and fall back to the math kernel (scores materialised) on 3-D ones, so 3-D
  // operands get a leading batch of 1, and the output loses it again.
  const batched = tensorInfo(m.q)?.shape.length === 3;
  const in4d = (t: Value) => (batched && tensorInfo(t)?.shape.length === 3 ? em.unsqueeze(t, 0) : t);
  let sdpa = em.op('aten::scaled_dot_product_attention', in4d(m.q), in4d(m.k), in4d(m.v), mask ? in4d(mask) : em.none(),
    em.constant(m.dropout), em.constant(m.causal), scale, em.constant(false));
  if (batched) sdpa = em.squeeze(sdpa, 0);
  m.out.output.replaceAllUsesWith(sdpa);
  for (const n of em.emitted) n.meta.fused = { kind: 'attention_core', id };
  return { id, lowered: true };
}

interface SliceOf { base: Value; start: number; end: number }

function rowSlice(v: Value | undefined): SliceOf | undefined {
  const n = v?.node;
  if (!n || n.kind !== 'aten::slice' || num(n.inputs[1]) !== 0 || num(n.inputs[4]) !== 1) return undefined;
  const start = num(n.inputs[2]);
  const end = num(n.inputs[3]);
  if (start === undefined || end === undefined) return undefined;
  return { base: n.inputs[0], start, end };
}

export function linearHasBias(l: Node): boolean {
  return constant(l.inputs[2]) !== null || l.inputs[2].type.kind === 'Tensor';
}

/** Whether the linears' weights are row slices of one packed tensor (one linear over a view fits). */
export function isPackedRowSlices(linears: Node[]): boolean {
  const ws = linears.map((l) => rowSlice(l.inputs[1]));
  return ws.every((w) => w && w.base === ws[0]!.base);
}

/**
 * Linears sharing one input -> one linear and column slices of its output. The weights are
 * row slices of one packed tensor (used as a view), or `packed`: separate weights concatenated
 * ahead of time (a string there is why they could not be).
 */
export function lowerParallelProjections(g: Graph, linears: Node[], id: string, packed?: PackedWeights | string): LoweringOutcome {
  if (linears.length < 2 || linears.some((l) => l.kind !== 'aten::linear')) return { id, lowered: false, reason: 'needs two or more aten::linear' };
  const x = linears[0].inputs[0];
  if (linears.some((l) => l.inputs[0] !== x)) return { id, lowered: false, reason: 'the projections read different inputs' };
  if (!isPackedRowSlices(linears)) {
    if (packed === undefined) return { id, lowered: false, reason: 'weights are not row slices of one packed tensor (a concatenated copy would be needed)' };
    if (typeof packed === 'string') return { id, lowered: false, reason: packed };
    return lowerOverConcatenated(g, linears, id, packed);
  }
  const ws = linears.map((l) => rowSlice(l.inputs[1]));
  const hasBias = linears.map(linearHasBias);
  const bs = linears.map((l) => rowSlice(l.inputs[2]));
  if (hasBias.some((h) => h !== hasBias[0])) return { id, lowered: false, reason: 'some projections have a bias and some do not' };
  if (hasBias[0] && (bs.some((b) => !b) || bs.some((b) => b!.base !== bs[0]!.base))) return { id, lowered: false, reason: 'biases are not slices of one packed tensor' };
  const order = linears.map((_, i) => i).sort((a, b) => ws[a]!.start - ws[b]!.start);
  for (let j = 1; j < order.length; j++) {
    if (ws[order[j]]!.start !== ws[order[j - 1]]!.end) return { id, lowered: false, reason: 'weight slices are not consecutive' };
    if (hasBias[0] && (bs[order[j]]!.start !== ws[order[j]]!.start || bs[order[j]]!.end !== ws[order[j]]!.end)) return { id, lowered: false, reason: 'bias slices do not match weight slices' };
  }
  const first = ws[order[0]]!.start;
  const last = ws[order[order.length - 1]]!.end;
  const em = projectionEmitter(g, linears, id);
  const w = em.slice(ws[0]!.base, 0, first, last);
  const b = hasBias[0] ? em.slice(bs[0]!.base, 0, first, last) : null;
  splitColumns(em, linears, em.linear(x, w, b), order.map((i) => ({ i, start: ws[i]!.start - first, end: ws[i]!.end - first })));
  return { id, lowered: true };
}

function lowerOverConcatenated(g: Graph, linears: Node[], id: string, packed: PackedWeights): LoweringOutcome {
  if (packed.rows.length !== linears.length) return { id, lowered: false, reason: 'concatenated weights do not match the group' };
  const em = projectionEmitter(g, linears, id);
  const y = em.linear(linears[0].inputs[0], em.tensorConstant(packed.weight), packed.bias ? em.tensorConstant(packed.bias) : null);
  let start = 0;
  splitColumns(em, linears, y, packed.rows.map((n, i) => ({ i, start, end: (start += n) })));
  return { id, lowered: true, heldBytes: packed.bytes };
}

/** Emits before the earliest linear (its input and weights are defined before it). */
function projectionEmitter(g: Graph, linears: Node[], id: string): Emitter {
  const earliest = linears.reduce((a, b) => (a.isBefore(b) ? a : b));
  const em = new Emitter(g, earliest, { id, scope: earliest.scope });
  em.role = 'fused_projection';
  return em;
}

/**
 * Each linear's output becomes a column slice of `y`. A slice is strided where the linear's
 * output was contiguous; where a view downstream would refuse that layout, the slice is copied
 * to contiguous (as PyTorch's own packed in-projection does).
 */
function splitColumns(em: Emitter, linears: Node[], y: Value, parts: { i: number; start: number; end: number }[]): void {
  const width = parts.reduce((w, p) => Math.max(w, p.end), 0);
  for (const p of parts) {
    const old = linears[p.i].output;
    const shape = tensorInfo(old)?.shape;
    const sliceStrides = shape ? contiguousStrides([...shape.slice(0, -1), width]) : undefined;
    let part = em.slice(y, -1, p.start, p.end);
    if (!sliceStrides || !layoutIsSafe(old, sliceStrides)) part = em.contiguous(part);
    old.replaceAllUsesWith(part);
  }
  for (const n of em.emitted) n.meta.fused = { kind: 'parallel_projection', id: em.tag.id };
}

/**
 * linear -> GELU (exact) or ReLU => aten::_addmm_activation on the input flattened to 2-D:
 * one GEMM with the bias and the activation applied in place on its output, so the
 * pre-activation tensor is never a separate buffer.
 */
export function lowerLinearActivation(g: Graph, groupNodes: Node[], id: string, rankOf: (v: Value) => number | undefined, device = 'cpu'): LoweringOutcome {
  const linear = groupNodes.find((n) => n.kind === 'aten::linear');
  if (!linear) return { id, lowered: false, reason: 'no aten::linear in the group' };
  if (!groupNodes.some((n) => isActKind(n.kind))) return { id, lowered: false, reason: 'no activation after the linear (dropout or a residual add only)' };
  const act = soleUser(linear.output);
  if (!act || !groupNodes.includes(act) || (act.kind !== 'aten::gelu' && act.kind !== 'aten::relu') || act.inputs[0] !== linear.output) {
    return { id, lowered: false, reason: 'the linear is not followed directly by GELU or ReLU' };
  }
  if (act.kind === 'aten::gelu' && constant(act.inputs[1]) !== 'none') return { id, lowered: false, reason: 'tanh-approximated GELU has no fused CPU kernel' };
  // cuBLASLt's GELU epilogue is the tanh approximation: not equal to nn.GELU() there.
  if (act.kind === 'aten::gelu' && !device.startsWith('cpu')) return { id, lowered: false, reason: `the fused GELU on ${device} is the tanh approximation` };
  const [x, w, b] = linear.inputs;
  if (b.type.kind !== 'Tensor' && constant(b) === null) return { id, lowered: false, reason: 'no bias (the fused kernel adds one)' };
  const rank = rankOf(x);
  if (rank === undefined || rank < 2) return { id, lowered: false, reason: 'input rank unknown or below 2' };
  const em = new Emitter(g, act, { id, scope: act.scope, attention: false });
  em.role = 'fused_linear_activation';
  const x2d = rank === 2 ? x : em.reshape(x, [-1, em.size(x, -1)]);
  const y2d = em.op('aten::_addmm_activation', b, x2d, em.op('aten::t', w), em.int(1), em.int(1), em.constant(act.kind === 'aten::gelu'));
  const batch = Array.from({ length: rank - 1 }, (_, i) => em.size(x, i));
  const y = rank === 2 ? y2d : em.view(y2d, [...batch, em.size(w, 0)]);
  act.output.replaceAllUsesWith(y);
  for (const n of em.emitted) n.meta.fused = { kind: 'linear_activation', id };
  return { id, lowered: true };
}
