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
import { moduleSelf, type Graph, type Node, type Value } from '../core/ir';
import type { TensorHandleLike } from '../core/ir/serialized';
import { isActKind, sameShape } from '../core/ops/classes';
import type { AttentionCore, CoreReading } from './attention-core';
import { Emitter } from '../transforms/emit';
import { contiguousStrides, layoutIsSafe } from '../core/strides';
import { tensorInfo } from '../core/value-info';
import { constantOf, constNumber } from '../core/constants';
import { moduleCone } from './weights-on-module';

export interface LoweringOutcome {
  id: string;
  lowered: boolean;
  reason?: string;
  /** Bytes of weights concatenated for this group and held by the fused graph (not in any run's peak). */
  heldBytes?: number;
  /** The activation the fused op applies as its post-op, when it took one over (e.g. "gelu tanh"). */
  postOp?: string;
  /** The op it runs as, where the lowering picks one by machine (packed linears: oneDNN's or ours). */
  op?: string;
}

/** The id of an outcome for one op outside any group: its kind, output and module, e.g. "aten::linear -> %x (encoder.fc1)". */
export function outcomeId(n: Node): string {
  return `${n.kind} -> %${n.output.debugName}${n.modulePath ? ` (${n.modulePath})` : ''}`;
}

/** What the fused lowering did with each group, by kind (the report's lowering section). */
export interface LoweringReport {
  attentionCores: LoweringOutcome[];
  projections: LoweringOutcome[];
  linearActs: LoweringOutcome[];
  /** conv_bn_act groups: the batch norm folded into the convolution's weights (fusion/fold-batch-norm.ts). */
  foldedBatchNorms?: LoweringOutcome[];
  /** conv_bn_act groups on oneDNN's pointwise kernels over prepacked weights (fusion/conv-pointwise.ts). */
  convolutions?: LoweringOutcome[];
  /** Linear layers on MKL-packed weights (fusion/linear-packed.ts). */
  packedLinears?: LoweringOutcome[];
  /** Residual adds and the layer norm / RMSNorm after them as one op of ours (fusion/add-norm.ts). */
  addNorms?: LoweringOutcome[];
  /** A bias add and the GELU after it as one op of ours (fusion/bias-gelu.ts). */
  biasGelus?: LoweringOutcome[];
  /** Max pools over channels-last activations as our op without indices (fusion/max-pool.ts). */
  maxPools?: LoweringOutcome[];
  /** Activations and residual adds rewritten to run in place (fusion/in-place.ts). */
  inPlaceOps?: number;
  /** Activations and RMSNorm written out as arithmetic, now one ATen op each, by form (transforms/written-out-ops.ts). */
  writtenOutActivations?: Record<string, number>;
  /** Group kinds with no fused kernel here, and why they stay as they are. */
  notLowered: { kind: string; groups: number; reason: string }[];
  /** Bytes of concatenated projection weights and folded convolution weights the fused graph holds (extra weight memory). */
  heldWeightBytes: number;
}

/** Separate weights (and biases) of a group, concatenated along the output rows in the linears' order. */
export interface PackedWeights {
  weight: TensorHandleLike;
  bias: TensorHandleLike | null;
  /** Output rows of each linear, in the order given. */
  rows: number[];
  bytes: number;
}

/** The single user of a value, or undefined when there are several (or none). */
function soleUser(v: Value): Node | undefined {
  const users = v.users();
  return users.length === 1 ? users[0] : undefined;
}

/**
 * A mask applied to scores viewed as `space` (leading dims regrouped), as a mask of the scores'
 * own shape: leading dims of `space` are grouped into the scores' dims; a group where the mask
 * broadcasts (all 1) stays 1, others are expanded and merged (copied only where needed).
 */
function maskInScoresSpace(em: Emitter, mask: Value, space: readonly number[], scores: readonly number[]): Value {
  const shape = tensorInfo(mask)?.shape;
  if (!shape) throw new NotLowered('a mask applied to a view of the scores has no recorded shape');
  const aligned = [...Array(Math.max(0, space.length - shape.length)).fill(1), ...shape];
  // Group space dims (left to right) into scores dims by their products.
  const groups: number[][] = [];
  let i = 0;
  for (const target of scores) {
    const g: number[] = [];
    let prod = 1;
    do {
      if (i >= space.length) throw new NotLowered('a view of the scores does not regroup their dims');
      prod *= space[i];
      g.push(i++);
    } while (prod < target);
    if (prod !== target) throw new NotLowered(`a view of the scores [${space}] does not regroup into [${scores}]`);
    groups.push(g);
  }
  if (i !== space.length) throw new NotLowered(`a view of the scores [${space}] does not regroup into [${scores}]`);
  const full = groups.map((g) => g.some((d) => aligned[d] !== 1));
  const expanded = aligned.map((d, k) => (full[groups.findIndex((g) => g.includes(k))] ? space[k] : d));
  let m = aligned.length !== shape.length ? em.reshape(mask, aligned) : mask;
  if (expanded.some((d, k) => d !== aligned[k])) m = em.expand(m, expanded);
  return em.reshape(m, scores.map((d, j) => (full[j] ? d : 1)));
}

class NotLowered extends Error {}

/** One attention core, as the partitioner read it (attention-core.ts), becomes scaled_dot_product_attention. */
export function lowerAttentionCore(g: Graph, reading: CoreReading | undefined, id: string): LoweringOutcome {
  if (!reading) return { id, lowered: false, reason: 'the group is not an explicit attention core' };
  if (!reading.ok) return { id, lowered: false, reason: reading.reason };
  const c = reading.core;
  // Scaled up (or by a factor known only at run time), a huge fill could overflow to -inf.
  if (c.masks.some((m) => m.form === 'fill' && (m.factor > 1 || m.runtime.length))) {
    return { id, lowered: false, reason: 'a scale after a huge-negative fill' };
  }
  const em = new Emitter(g, c.context, { id, scope: c.context.scope });
  em.role = 'fused_attention';
  try {
    // triu(ones(L, S), 1) over the scores' last two dims is SDPA's is_causal (top-left aligned);
    // a view that regrouped the leading dims (`space`) keeps those two.
    const only = c.masks.length === 1 ? c.masks[0] : undefined;
    const causalOnly = only?.causal === true && (!only.space || sameShape(only.space.slice(-2), c.scoresShape.slice(-2)));
    let mask = causalOnly ? null : combinedMask(em, c);
    // A mask that is one of the module's parameters (a learned position bias read as it is)
    // requires grad, and CPU SDPA then takes its math kernel (the scores materialised); the
    // fused graph is for inference (it runs without autograd), so the mask is read detached.
    const self = moduleSelf(g);
    if (mask && c.masks.length === 1 && c.masks[0].form === 'additive' && mask === c.masks[0].value && moduleCone([mask], self)) {
      mask = em.op('aten::detach', mask);
    }
    // A mask of lower rank than the scores (Swin V2's (H, L, S) bias) broadcasts, but CPU SDPA's
    // flash kernel takes 4-D masks only (else it falls back to the math kernel and materialises
    // the scores): leading dims of size 1 are views.
    const rankOf = (v: Value) => tensorInfo(v)?.shape.length ?? c.scoresShape.length;
    // A mask scaled after it was applied also takes the rank of a per-head factor.
    const maskRank = Math.max(0, ...c.masks.map((m) => (m.space && !sameShape(m.space, c.scoresShape) ? c.scoresShape.length
      : Math.max(rankOf(m.value), ...m.runtime.filter((r) => r.perHead).map((r) => rankOf(r.value))))));
    for (let r = maskRank; mask && r < c.scoresShape.length; r++) mask = em.unsqueeze(mask, 0);
    // SDPA takes its scale as a float: run-time factors are read (aten::Float) and multiplied in.
    let scale = em.constant(c.scale);
    const batched0 = c.scoresShape.length === 3 && tensorInfo(c.q)?.shape.length === 3;
    // 3-D q gets its leading batch of 1 (below) before a factor makes a value with no recorded shape.
    let q = batched0 ? em.unsqueeze(c.q, 0) : c.q;
    for (const r of c.runtimeScales) {
      // A factor per head: (q * t) @ k^T is t * (q @ k^T) for t constant over each head's matrix.
      if (r.perHead) { q = em.op(r.divide ? 'aten::div' : 'aten::mul', q, r.value); continue; }
      const f = r.value.type.kind === 'Float' ? r.value : em.floatOp('aten::Float', r.value);
      scale = em.floatOp(r.divide ? 'aten::div' : 'aten::mul', scale, f);
    }
    // PyTorch's own slow path works on (batch*heads, L, hd); SDPA's fused CPU kernels take 4-D
    // inputs only and fall back to the math kernel (scores materialised) on 3-D ones, so 3-D
    // operands get a leading batch of 1, and the output loses it again.
    const batched = c.scoresShape.length === 3;
    const in4d = (t: Value) => (batched && t !== q && tensorInfo(t)?.shape.length === 3 ? em.unsqueeze(t, 0) : t);
    const k = c.k ?? em.transpose(c.kT!, -2, -1);
    // The mask has the scores' rank by now, recorded or not (a combined mask has no recorded shape).
    let sdpa = em.op('aten::scaled_dot_product_attention', in4d(q), in4d(k), in4d(c.v),
      mask ? (batched ? em.unsqueeze(mask, 0) : mask) : em.none(),
      em.constant(c.dropout), em.constant(causalOnly), scale, em.constant(false));
    if (batched) sdpa = em.squeeze(sdpa, 0);
    c.context.output.replaceAllUsesWith(sdpa);
  } catch (e) {
    if (!(e instanceof NotLowered)) throw e;
    for (const n of [...em.emitted].reverse()) if (!n.hasUses()) n.destroy();
    return { id, lowered: false, reason: e.message };
  }
  for (const n of em.emitted) n.meta.fused = { kind: 'attention_core', id };
  return { id, lowered: true };
}

/**
 * The core's masks as one SDPA mask: bool (true = attend) when every mask is boolean, else one
 * additive float mask (bool masks become -inf where masked: adding -inf is masked_fill's -inf).
 */
function combinedMask(em: Emitter, c: AttentionCore): Value | null {
  if (!c.masks.length) return null;
  const toScores = (v: Value, space?: number[]) => (space && !sameShape(space, c.scoresShape)
    ? maskInScoresSpace(em, v, space, c.scoresShape)
    : v);
  const masked = (m: AttentionCore['masks'][number]) => toScores(m.negate ? em.logicalNot(m.value) : m.value, m.space);
  if (c.masks.every((m) => m.form === 'bool')) {
    const any = c.masks.map(masked).reduce((a, b) => em.op('aten::logical_or', a, b));
    return em.logicalNot(any); // SDPA's bool masks mark the positions that take part
  }
  return c.masks.map((m) => {
    if (m.form === 'bool') return em.op('aten::where', masked(m), em.constant(-Infinity), em.constant(0));
    let additive = m.form === 'fill' ? em.op('aten::where', masked(m), em.constant(m.fill!), em.constant(0)) : toScores(m.value, m.space);
    if (m.subtracted) additive = em.op('aten::neg', additive);
    if (m.factor !== 1) additive = em.op('aten::mul', additive, em.constant(m.factor));
    for (const r of m.runtime) additive = em.op(r.divide ? 'aten::div' : 'aten::mul', additive, r.value);
    return additive;
  }).reduce((a, b) => em.add(a, b));
}

interface SliceOf { base: Value; start: number; end: number }

/** A slice of rows at offsets the graph fixes (prim::Constants, not what the example inputs made them). */
function rowSlice(v: Value | undefined): SliceOf | undefined {
  const n = v?.node;
  const fixed = (name: string) => constNumber(n?.arg(name), { recorded: false });
  if (!n || n.kind !== 'aten::slice' || fixed('dim') !== 0 || fixed('step') !== 1) return undefined;
  const start = fixed('start');
  const end = fixed('end');
  if (start === undefined || end === undefined) return undefined;
  return { base: n.arg('self')!, start, end };
}

export function linearHasBias(l: Node): boolean {
  const b = l.arg('bias');
  return !!b && (constantOf(b) !== null || b.type.kind === 'Tensor');
}

/** Whether the linears' weights are row slices of one packed tensor (one linear over a view fits). */
export function isPackedRowSlices(linears: Node[]): boolean {
  const ws = linears.map((l) => rowSlice(l.arg('weight')));
  return ws.every((w) => w && w.base === ws[0]!.base);
}

/**
 * Linears sharing one input -> one linear and column slices of its output. The weights are
 * row slices of one packed tensor (used as a view), or `packed`: separate weights concatenated
 * ahead of time (a string there is why they could not be).
 */
export function lowerParallelProjections(g: Graph, linears: Node[], id: string, packed?: PackedWeights | string): LoweringOutcome {
  if (linears.length < 2 || linears.some((l) => l.kind !== 'aten::linear')) {
    return { id, lowered: false, reason: 'needs two or more aten::linear' };
  }
  const x = linears[0].arg('input')!;
  if (linears.some((l) => l.arg('input') !== x)) return { id, lowered: false, reason: 'the projections read different inputs' };
  if (!isPackedRowSlices(linears)) {
    if (packed === undefined) {
      return { id, lowered: false, reason: 'weights are not row slices of one packed tensor (a concatenated copy would be needed)' };
    }
    if (typeof packed === 'string') return { id, lowered: false, reason: packed };
    return lowerOverConcatenated(g, linears, id, packed);
  }
  const ws = linears.map((l) => rowSlice(l.arg('weight')));
  const hasBias = linears.map(linearHasBias);
  const bs = linears.map((l) => rowSlice(l.arg('bias')));
  if (hasBias.some((h) => h !== hasBias[0])) return { id, lowered: false, reason: 'some projections have a bias and some do not' };
  if (hasBias[0] && (bs.some((b) => !b) || bs.some((b) => b!.base !== bs[0]!.base))) {
    return { id, lowered: false, reason: 'biases are not slices of one packed tensor' };
  }
  const order = linears.map((_, i) => i).sort((a, b) => ws[a]!.start - ws[b]!.start);
  for (let j = 1; j < order.length; j++) {
    if (ws[order[j]]!.start !== ws[order[j - 1]]!.end) return { id, lowered: false, reason: 'weight slices are not consecutive' };
    if (hasBias[0] && (bs[order[j]]!.start !== ws[order[j]]!.start || bs[order[j]]!.end !== ws[order[j]]!.end)) {
      return { id, lowered: false, reason: 'bias slices do not match weight slices' };
    }
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
  const y = em.linear(linears[0].arg('input')!, em.tensorConstant(packed.weight), packed.bias ? em.tensorConstant(packed.bias) : null);
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
export function lowerLinearAct(
  g: Graph, groupNodes: Node[], id: string, rankOf: (v: Value) => number | undefined, device = 'cpu',
): LoweringOutcome {
  const linear = groupNodes.find((n) => n.kind === 'aten::linear');
  if (!linear) return { id, lowered: false, reason: 'no aten::linear in the group' };
  if (!groupNodes.some((n) => isActKind(n.kind))) {
    return { id, lowered: false, reason: 'no activation after the linear (dropout or a residual add only)' };
  }
  const act = soleUser(linear.output);
  if (!act || !groupNodes.includes(act) || (act.kind !== 'aten::gelu' && act.kind !== 'aten::relu') || act.arg('self') !== linear.output) {
    return { id, lowered: false, reason: 'the linear is not followed directly by GELU or ReLU' };
  }
  if (act.kind === 'aten::gelu' && constantOf(act.arg('approximate')) !== 'none') {
    return { id, lowered: false, reason: 'tanh-approximated GELU has no fused CPU kernel' };
  }
  // cuBLASLt's GELU epilogue is the tanh approximation: not equal to nn.GELU() there.
  if (act.kind === 'aten::gelu' && !device.startsWith('cpu')) {
    return { id, lowered: false, reason: `the fused GELU on ${device} is the tanh approximation` };
  }
  const [x, w, b] = linear.inputs;
  if (b.type.kind !== 'Tensor' && constantOf(b) === null) return { id, lowered: false, reason: 'no bias (the fused kernel adds one)' };
  const rank = rankOf(x);
  if (rank === undefined || rank < 2) return { id, lowered: false, reason: 'input rank unknown or below 2' };
  const em = new Emitter(g, act, { id, scope: act.scope, attention: false });
  em.role = 'fused_linear_act';
  const x2d = rank === 2 ? x : em.reshape(x, [-1, em.size(x, -1)]);
  const y2d = em.op('aten::_addmm_activation', b, x2d, em.op('aten::t', w), em.int(1), em.int(1), em.constant(act.kind === 'aten::gelu'));
  const batch = Array.from({ length: rank - 1 }, (_, i) => em.size(x, i));
  const y = rank === 2 ? y2d : em.view(y2d, [...batch, em.size(w, 0)]);
  act.output.replaceAllUsesWith(y);
  for (const n of em.emitted) n.meta.fused = { kind: 'linear_act', id };
  return { id, lowered: true };
}
