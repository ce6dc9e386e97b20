// What an attention core computes, read from the partitioner's match (the group's nodes and the
// roles its rule gave them: scale, scores, mask, softmax, dropout, context, through). This is
// the one place that interprets an attention core; the fused lowering consumes the reading and
// never matches again.
//
// The reading is semantic: softmax(scale * (q @ k^T) + masks) @ v, with
//   - scales on q, on k or on the scores, constant or known only at run time, multiplied out;
//   - masks of every spelling real code writes: masked_fill/where with -inf (bool masks), with
//     a huge negative fill (exact additive masks in float32), additive float masks (padding,
//     causal buffers, relative position biases), a baddbmm's input;
//   - views of the scores that regroup leading dims around a mask (windowed attention adds a
//     per-window mask to scores viewed as (B, nW, H, N, N)): the mask is mapped back to the
//     scores' shape;
//   - k^T from any transpose or permute (k is recovered as a view).
// Run canonicalize (lib/transforms/canonicalize.ts) first: same-dtype casts and eval dropout are gone.
import { dataInput, outOfPlaceKind, type Node, type Value } from '../core/ir';
import { tensorInfo } from '../core/value-info';
import { constOf, scalarConstant } from '../core/constants';
import { METADATA_INPUT0, numel, sameShape } from '../core/ops/classes';

/**
 * A scale known only at run time: a 0-dim tensor or a number value (traced `d ** -0.5`), or
 * (`perHead`) a tensor of one factor per head, 1 in the last two dims (a learned temperature of
 * shape (H, 1, 1), Swin V2's exp(logit_scale)): SDPA has one scale, so that one is folded into q.
 */
export interface RuntimeScale { value: Value; divide: boolean; perHead?: boolean }

export interface CoreMask {
  /** The mask tensor as the model wrote it. */
  value: Value;
  /**
   * bool: true marks masked positions (`negate`: the tensor marks kept ones);
   * additive: added to the scores; fill: a bool tensor whose marked positions were set to
   * `fill` (huge negative), equal in float32 to adding where(mask, fill, 0).
   */
  form: 'bool' | 'additive' | 'fill';
  negate?: boolean;
  /** additive: subtracted from the scores (Funnel's `scores - 1e6 * (1 - mask)`). */
  subtracted?: boolean;
  /** A causal mask triu(ones(L, S), 1): SDPA's is_causal when it is the only mask. */
  causal?: boolean;
  fill?: number;
  /** Scales applied after the mask (SDPA adds its mask after scaling, so it is scaled to match). */
  factor: number;
  runtime: RuntimeScale[];
  /** Shape of the scores where the mask was applied, when a view regrouped their leading dims. */
  space?: number[];
}

export interface AttentionCore {
  q: Value;
  /** k, when k^T is an explicit transpose (or permute) of its last two dims; else `kT`. */
  k?: Value;
  /** k^T as the model computed it, when it is not a transpose of a value (k is then its transpose). */
  kT?: Value;
  v: Value;
  scale: number;
  runtimeScales: RuntimeScale[];
  masks: CoreMask[];
  dropout: number;
  /** Shape of q @ k^T. */
  scoresShape: number[];
  softmax: Node;
  /** The context matmul (attention weights @ v): its output is what the core produces. */
  context: Node;
}

export type CoreReading = { ok: true; core: AttentionCore } | { ok: false; reason: string; node?: Node };

// ---- values ------------------------------------------------------------------------------------

/** A scalar known at run time: an int or float value, or a 0-dim tensor (not a constant). */
function isRuntimeScalar(v: Value): boolean {
  if (v.node?.isConstant) return false;
  if (v.type.kind === 'Float' || v.type.kind === 'Int') return true;
  return v.type.kind === 'Tensor' && tensorInfo(v)?.shape.length === 0;
}

/** The value a where/masked_fill writes: a number, a 0-dim constant, or aten::full([], c) (GPT-2). */
function fillOf(v: Value): number | undefined {
  const s = scalarConstant(v);
  if (s !== undefined) return s;
  const n = v.node;
  if (n?.kind !== 'aten::full') return undefined;
  const size = n.arg('size');
  const empty = size && (size.node?.kind === 'prim::ListConstruct'
    ? size.node.inputs.length === 0
    : Array.isArray(constOf(size)) && (constOf(size) as number[]).length === 0);
  return empty ? scalarConstant(n.arg('fill_value')) : undefined;
}

// Filling with at most -1e30 is the same as adding it, in float32: s + c rounds to c for any
// |s| below half an ulp of c (about 4e22 at -1e30), so kept positions are unchanged, filled ones
// equal c, and a row filled entirely stays uniform after softmax. -inf is a bool mask instead.
const isHugeNegative = (c: number | undefined): c is number => c !== undefined && Number.isFinite(c) && c <= -1e30;
const isFloat32 = (v: Value): boolean => tensorInfo(v)?.dtype === 'float32';

function isCausalMask(m: Value): boolean {
  const triu = m.node;
  if (triu?.kind !== 'aten::triu' || constOf(triu.arg('diagonal')!) !== 1) return false;
  const ones = triu.arg('self')?.node;
  return ones?.kind === 'aten::new_ones' || ones?.kind === 'aten::ones';
}

/** A scale node's factor: [constant, runtime] for mul/div by a scalar on either side of a mul. */
function scaleOf(n: Node): { x: Value; factor?: number; runtime?: RuntimeScale } | undefined {
  // a div with a rounding mode is not a scale
  if ((n.kind !== 'aten::mul' && n.kind !== 'aten::div') || n.inputs.length !== 2) return undefined;
  const divide = n.kind === 'aten::div';
  const [a, b] = n.inputs;
  for (const [x, s] of divide ? [[a, b]] : [[a, b], [b, a]]) {
    const c = scalarConstant(s);
    if (c !== undefined) return { x, factor: divide ? 1 / c : c };
    if (isRuntimeScalar(s) && !isRuntimeScalar(x)) return { x, runtime: { value: s, divide } };
    if (isPerHeadFactor(s, x)) return { x, runtime: { value: s, divide, perHead: true } };
  }
  return undefined;
}

/** `s` scales each (head's) matrix of `x` by one number: its last two dims are 1 and the rest broadcast over x's leading dims. */
function isPerHeadFactor(s: Value, x: Value): boolean {
  const si = tensorInfo(s)?.shape, xi = tensorInfo(x)?.shape;
  if (!si || !xi || si.length < 2 || si.length > xi.length || numel(si) <= 1) return false;
  if (si[si.length - 1] !== 1 || si[si.length - 2] !== 1) return false;
  // Folded into q: a factor of another dtype would promote q (SDPA needs q, k, v alike).
  if (tensorInfo(s)?.dtype !== tensorInfo(x)?.dtype) return false;
  const lead = xi.length - si.length;
  return si.every((d, i) => d === 1 || d === xi[lead + i]);
}

/** A view of the scores that keeps the last two dims and regroups the leading ones. */
function regroupsLeadingDims(from: readonly number[], to: readonly number[]): boolean {
  return from.length >= 2 && to.length >= 2 && sameShape(from.slice(-2), to.slice(-2)) && numel(from) === numel(to);
}

/** Last-two-dims transpose (negative dims normalised), as a transpose or a permute. */
function swapsLastTwo(n: Node): boolean {
  const rank = tensorInfo(n.output)?.shape.length;
  if (rank === undefined) return false;
  const norm = (d: unknown) => (typeof d === 'number' ? (d < 0 ? d + rank : d) : NaN);
  if (n.kind === 'aten::transpose') {
    const dims = [norm(constOf(n.arg('dim0')!)), norm(constOf(n.arg('dim1')!))].sort();
    return dims[0] === rank - 2 && dims[1] === rank - 1;
  }
  if (n.kind === 'aten::permute') {
    const p = constOf(n.arg('dims')!);
    return Array.isArray(p) && p.length === rank
      && p.every((d, i) => norm(d) === (i === rank - 2 ? rank - 1 : i === rank - 1 ? rank - 2 : i));
  }
  return false;
}

// ---- the reading -------------------------------------------------------------------------------

class Refuse extends Error { constructor(message: string, readonly node?: Node) { super(message); } }

const label = (n: Node) => `${n.kind} -> ${n.outputs.map((o) => '%' + o.debugName).join(', ')}`;

/** Read an attention core from the partitioner's group (members and their roles). */
export function readAttentionCore(nodes: readonly Node[], roles: readonly string[]): CoreReading {
  const roleOf = new Map<Node, string>();
  nodes.forEach((n, i) => roleOf.set(n, roles[i]));
  try {
    return { ok: true, core: read(roleOf) };
  } catch (e) {
    if (e instanceof Refuse) return { ok: false, reason: e.node ? `${label(e.node)}: ${e.message}` : e.message, node: e.node };
    throw e;
  }
}

/**
 * The reading's running state, from softmax backwards: `scale` is the product of the scales seen
 * so far (what the model applies to everything above this point, masks included), and the masks.
 */
class Scaling {
  scale = 1;
  readonly runtimeScales: RuntimeScale[] = [];
  readonly masks: CoreMask[] = [];

  /** A mask met here, scaled by what was seen below it; `at` is the scores value it was applied to. */
  readonly pushMask = (m: Omit<CoreMask, 'factor' | 'runtime' | 'space'>, at: Value): void => {
    const space = tensorInfo(at)?.shape;
    this.masks.push({ ...m, factor: this.scale, runtime: [...this.runtimeScales], ...(space ? { space } : {}) });
  };

  /** Multiply a scale node's factor in; returns what it scaled. */
  fold(n: Node, s: NonNullable<ReturnType<typeof scaleOf>>): Value {
    if (s.factor === undefined) this.runtimeScales.push(s.runtime!);
    else if (!(s.factor > 0)) throw new Refuse('the scale is not positive', n);
    else this.scale *= s.factor;
    return s.x;
  }
}

function read(roleOf: Map<Node, string>): AttentionCore {
  const member = (v: Value | undefined) => (v?.node && roleOf.has(v.node) ? v.node : undefined);
  const softmax = [...roleOf].find(([, r]) => r === 'softmax')?.[0];
  if (!softmax) throw new Refuse('no softmax in the group');
  const sIn = softmax.arg('self') ?? dataInput(softmax);
  const dtype = softmax.arg('dtype');
  if (dtype && constOf(dtype) !== null) {
    throw new Refuse('softmax casts its input to another dtype (SDPA computes in the input dtype)', softmax);
  }
  const scoresShapeAtSoftmax = tensorInfo(sIn)?.shape;
  if (!scoresShapeAtSoftmax) throw new Refuse('the scores have no recorded shape (propagate shapes first)', softmax);

  const sc = new Scaling();
  const scores = scoresMatmul(roleOf, member, softmax, sIn, sc);
  let { q, kT } = scoresOperands(scores, sc);
  const scoresShape = tensorInfo(scores.output)?.shape ?? scoresShapeAtSoftmax;
  // Scales on q or k (k's may sit before or after its transpose).
  const unscale = (v: Value): Value => {
    const n = member(v);
    if (!n || roleOf.get(n) !== 'scale') return v;
    const s = scaleOf(n);
    return s ? sc.fold(n, s) : v;
  };
  q = unscale(q);
  kT = unscale(kT);
  // k itself when k^T is an explicit transpose of it (its scale may sit before the transpose).
  let k: Value | undefined;
  const t = kT.node;
  if (t && swapsLastTwo(t)) k = unscale(t.arg('self')!);

  const { dropout, context, v } = contextMatmul(roleOf, softmax, q);
  if (scoresShape.length < 3) throw new Refuse(`rank-${scoresShape.length} scores (SDPA needs a batch dim)`, scores);
  return {
    q, ...(k ? { k } : { kT }), v, scale: sc.scale, runtimeScales: sc.runtimeScales, masks: sc.masks,
    dropout, scoresShape, softmax, context,
  };
}

/** Backwards from softmax's input to the scores matmul, through scales, masks and regrouping views. */
function scoresMatmul(
  roleOf: Map<Node, string>, member: (v: Value | undefined) => Node | undefined, softmax: Node, sIn: Value, sc: Scaling,
): Node {
  let x = sIn;
  for (;;) {
    const n = member(x);
    if (!n) throw new Refuse(`the scores (%${x.debugName}) do not come from a matmul in the group`, softmax);
    const role = roleOf.get(n)!;
    if (role === 'scores') return n;
    if (role === 'scale') {
      const s = scaleOf(n);
      if (!s) throw new Refuse('not a scale by a scalar', n);
      x = sc.fold(n, s);
    } else if (role === 'mask') {
      x = readMask(n, (v) => member(v) !== undefined, sc.pushMask);
    } else if (role === 'through') {
      const from = tensorInfo(dataInput(n)), to = tensorInfo(n.output);
      if (!from || !to || !regroupsLeadingDims(from.shape, to.shape) || from.dtype !== to.dtype) {
        throw new Refuse('a layout op between the scores and softmax that does not only regroup their leading dims', n);
      }
      x = dataInput(n);
    } else {
      throw new Refuse(`unexpected ${role} between the scores and softmax`, n);
    }
  }
}

/** q @ k^T, or baddbmm(mask, q, k^T, beta, alpha) (PyTorch's own need_weights path). */
function scoresOperands(scores: Node, sc: Scaling): { q: Value; kT: Value } {
  if (scores.kind === 'aten::matmul' || scores.kind === 'aten::bmm') {
    return { q: scores.arg('self')!, kT: scores.arg('other') ?? scores.arg('mat2')! };
  }
  if (scores.kind === 'aten::baddbmm') {
    const beta = scalarConstant(scores.arg('beta')), alpha = scalarConstant(scores.arg('alpha'));
    if (beta === undefined || alpha === undefined || !(alpha > 0)) {
      throw new Refuse('baddbmm with non-constant or non-positive alpha/beta', scores);
    }
    if (beta !== 0) {
      sc.masks.push({ value: scores.arg('self')!, form: 'additive', factor: sc.scale * beta, runtime: [...sc.runtimeScales] });
    }
    sc.scale *= alpha;
    return { q: scores.arg('batch1')!, kT: scores.arg('batch2')! };
  }
  throw new Refuse(`scores computed by ${scores.kind}; SDPA needs a batched matmul`, scores);
}

/**
 * Forwards from softmax: [dropout], views that regroup the leading dims (softmax on (B, H, L, S),
 * @V on (B*H, L, S)), then @ v. SDPA computes in the scores' leading dims, so v must have them.
 */
function contextMatmul(roleOf: Map<Node, string>, softmax: Node, q: Value): { dropout: number; context: Node; v: Value } {
  let attn = softmax.output;
  let dropout = 0;
  let next = soleDataUser(attn);
  const regroups = (n: Node) => roleOf.get(n) === 'through' && n.outputs.length === 1
    && regroupsLeadingDims(tensorInfo(dataInput(n))?.shape ?? [], tensorInfo(n.output)?.shape ?? []);
  let regrouped = false;
  const advance = () => { attn = next!.output; next = soleDataUser(attn); };
  while (next && regroups(next)) { advance(); regrouped = true; }
  if (next && roleOf.get(next) === 'dropout') {
    const p = scalarConstant(next.arg('p')), train = next.arg('train') ? constOf(next.arg('train')!) : undefined;
    if (p === undefined || typeof train !== 'boolean') throw new Refuse('dropout arguments are not constants', next);
    dropout = train ? p : 0;
    advance();
    while (next && regroups(next)) { advance(); regrouped = true; }
  }
  if (!next) throw new Refuse('the attention weights are read outside the core (returned weights)', softmax);
  if (roleOf.get(next) !== 'context') {
    throw new Refuse(roleOf.has(next) ? `${label(next)} between the softmax and @V is not a view that regroups the leading dims`
      : 'the attention weights are read outside the core (returned weights)', softmax);
  }
  if (next.kind !== 'aten::matmul' && next.kind !== 'aten::bmm') throw new Refuse(`the context is computed by ${next.kind}`, next);
  if (next.arg('self') !== attn) throw new Refuse('the attention weights are the right operand of the context matmul', next);
  const v = next.arg('other') ?? next.arg('mat2')!;
  const qLead = tensorInfo(q)?.shape.slice(0, -2), vLead = tensorInfo(v)?.shape.slice(0, -2);
  if (regrouped && (!qLead || !vLead || !sameShape(qLead, vLead))) {
    throw new Refuse(`v's leading dims [${vLead?.join(', ') ?? '?'}] are not q's [${qLead?.join(', ') ?? '?'}]`
      + ' (the weights were regrouped between the softmax and @V)', next);
  }
  return { dropout, context: next, v };
}

function soleDataUser(v: Value): Node | undefined {
  const users = v.users().filter((u) => !METADATA_INPUT0.has(u.kind));
  return users.length === 1 ? users[0] : undefined;
}

/** One mask node; returns the scores value before it. */
function readMask(
  n: Node, inGroup: (v: Value) => boolean, push: (m: Omit<CoreMask, 'factor' | 'runtime' | 'space'>, at: Value) => void,
): Value {
  const kind = outOfPlaceKind(n.kind); // in place (`scores += bias`) is the same value
  if (kind === 'aten::masked_fill') {
    const self = n.arg('self')!, mask = n.arg('mask')!;
    const fill = fillOf(n.arg('value')!);
    if (fill === -Infinity) {
      const causal = isCausalMask(mask) && sameShape(tensorInfo(mask)?.shape ?? [], tensorInfo(self)?.shape.slice(-2) ?? [-1]);
      push({ value: mask, form: 'bool', ...(causal ? { causal } : {}) }, n.output);
      return self;
    }
    if (isHugeNegative(fill) && isFloat32(n.output)) { push({ value: mask, form: 'fill', fill }, n.output); return self; }
    throw new Refuse(`masked_fill with ${fill ?? 'a non-constant value'} (neither -inf nor a huge negative float32)`, n);
  }
  if (kind === 'aten::where') {
    const cond = n.arg('condition')!, self = n.arg('self')!, other = n.arg('other')!;
    // where(keep, scores, fill): positions where `keep` is false are filled.
    const fill = fillOf(other);
    if (!inGroup(self)) throw new Refuse('where does not keep the scores where the condition holds', n);
    if (fill === -Infinity) { push({ value: cond, form: 'bool', negate: true }, n.output); return self; }
    if (isHugeNegative(fill) && isFloat32(n.output)) { push({ value: cond, form: 'fill', fill, negate: true }, n.output); return self; }
    throw new Refuse(`where with ${fill ?? 'a non-constant value'} (neither -inf nor a huge negative float32)`, n);
  }
  if (kind === 'aten::add' && n.arg('other')?.type.kind === 'Tensor' && scalarConstant(n.arg('alpha')) === 1) {
    // One operand is the scores (produced in the group), the other the mask.
    const [a, b] = [n.arg('self')!, n.arg('other')!];
    const [scores, mask] = inGroup(a) ? [a, b] : [b, a];
    if (scalarConstant(mask) !== undefined) throw new Refuse('a constant added to the scores is a shift, not a mask', n);
    push({ value: mask, form: 'additive' }, n.output);
    return scores;
  }
  if (kind === 'aten::sub' && n.arg('other')?.type.kind === 'Tensor' && scalarConstant(n.arg('alpha')) === 1 && inGroup(n.arg('self')!)) {
    const mask = n.arg('other')!;
    if (scalarConstant(mask) !== undefined) throw new Refuse('a constant subtracted from the scores is a shift, not a mask', n);
    push({ value: mask, form: 'additive', subtracted: true }, n.output);
    return n.arg('self')!;
  }
  throw new Refuse('not a mask SDPA can take (masked_fill/where with -inf or a huge negative, or an added or subtracted tensor)', n);
}
