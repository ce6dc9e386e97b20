// FLOPs per node. One multiply-add is 2 FLOPs. Formulas (N = output elements unless said):
//   linear x(..., in) . W(out, in)^T      2 * prod(...) * in * out  (+ prod(...) * out for the bias)
//   matmul/bmm/mm (batch broadcast)       2 * numel(out) * K         (baddbmm/addmm: + numel(out))
//   conv                                  2 * numel(out) * (Cin/groups) * prod(kernel) (+ numel(out) bias);
//                                         transposed: 2 * numel(in) * (Cout/groups) * prod(kernel)
//   layer/group/instance norm             6 * numel (statistics 4, normalise 2) + numel per affine tensor
//   batch norm                            eval 2 * numel (+ affine), training as layer norm
//   rms norm                              3 * numel (+ numel for the weight)
//   softmax                               5 * numel (max, subtract, exp, sum, divide)
//   elementwise                           cost * N (ACT_COST / ELEMENTWISE_COST; dropout in eval: 0)
//   scaled_dot_product_attention          2*B*L*S*E + 2*B*L*S*Ev + B*L*S (scale) + 5*B*L*S (softmax)
//                                         (+ B*L*S per mask, causal or dropout)   B = batch*heads
//   _native_multi_head_attention          q/k/v and output projections as linear, plus the core as SDPA
//   _transformer_encoder_layer_fwd        the same, plus two layer norms, the FFN, its activation, two residual adds
//   views, copies, casts, creation        0
import { CONV2D_KIND } from '../core/ops/own-schemas';
import { isInPlaceKind, type Graph, type Node } from '../core/ir';
import { buildFacts, type GraphFacts } from '../core/facts';
import { constNumber, constOf } from '../core/constants';
import { ACT_COST, ELEMENTWISE_COST, baseName, numel, type OpClass } from '../core/ops/classes';

export type FlopCategory = 'matmul' | 'conv' | 'attention' | 'norm' | 'softmax' | 'elementwise' | 'reduction' | 'other';

export const FLOP_CATEGORIES: readonly FlopCategory[] = [
  'matmul', 'conv', 'attention', 'norm', 'softmax', 'elementwise', 'reduction', 'other',
];

export interface FlopsReport {
  total: number;
  byCategory: Record<FlopCategory, number>;
  /** FLOPs of each node, indexed like graph.allNodes(). */
  perNode: Float64Array;
  /** Compute ops counted as 0 because no formula covers them: kind -> count. */
  noFormula: Record<string, number>;
  /** Compute ops counted as 0 because shapes are missing: kind -> count. */
  missingShapes: Record<string, number>;
}

export interface SdpaDims {
  /** Batch times heads. */
  batch: number;
  L: number;
  S: number;
  /** Head dim of q/k and of v. */
  E: number;
  Ev: number;
  /** Number of masks applied to the scores (attn_mask, causal, padding). */
  masks?: number;
  dropout?: boolean;
}

/** The attention core: Q.K^T, scale, masks, softmax, dropout, P.V. */
export function sdpaFlops(d: SdpaDims): number {
  const scores = d.batch * d.L * d.S;
  return 2 * scores * d.E + 2 * scores * d.Ev + scores /* scale */ + 5 * scores /* softmax */
    + (d.masks ?? 0) * scores + (d.dropout ? 2 * scores : 0);
}

/** Linear: x(..., in) times W(out, in)^T, plus the bias. */
export function linearFlops(xShape: readonly number[], wShape: readonly number[], bias: boolean): number {
  const inF = wShape[wShape.length - 1];
  const outF = wShape.length >= 2 ? wShape[0] : 1;
  const rows = numel(xShape) / inF;
  return 2 * rows * inF * outF + (bias ? rows * outF : 0);
}

export function categoryOf(f: GraphFacts, p: number): FlopCategory {
  const c = f.classes[p];
  if (c.includes('linear') || c.includes('matmul')) return 'matmul';
  if (c.includes('conv')) return 'conv';
  if (c.includes('attention')) return 'attention';
  if (c.includes('norm') || c.includes('batchnorm')) return 'norm';
  if (c.includes('softmax')) return 'softmax';
  if (c.includes('elementwise')) return 'elementwise';
  if (c.includes('reduction') || c.includes('pool')) return 'reduction';
  return 'other';
}

const MISSING = -1;
const NO_FORMULA = -2;

/** What a formula reads of one compute node. */
interface NodeAt {
  f: GraphFacts;
  n: Node;
  kind: string;
  base: string;
  /** Shape of input k, when recorded. */
  shp(k: number): number[] | undefined;
  /** Shape of output k, when recorded. */
  out(k?: number): number[] | undefined;
  /** Input k is a tensor (not None): a bias or an affine weight that is there. */
  isTensorArg(k: number): boolean;
}

/** FLOPs of the node at position p; negative codes for "shapes missing" / "no formula". */
function flopsAt(f: GraphFacts, p: number): number {
  // An op in place aliases its input (role 'view' for memory) but computes all the same (relu_,
  // oneDNN's convolution writing its residual sum into the skip connection).
  if (f.role[p] !== 'compute' && !(f.role[p] === 'view' && isInPlaceKind(f.nodes[p].kind))) return 0;
  const cls = f.classes[p];
  const formula = FORMULAS.find(([classes]) => classes.some((c) => cls.includes(c)));
  if (!formula) return NO_FORMULA;
  const n = f.nodes[p];
  const at: NodeAt = {
    f, n, kind: n.kind, base: baseName(n.kind),
    shp: (k) => { const i = f.vindex.get(n.inputs[k]); return i === undefined ? undefined : f.info[i]?.shape; },
    out: (k = 0) => {
      const v = n.outputs[k];
      const i = v ? f.vindex.get(v) : undefined;
      return i === undefined ? undefined : f.info[i]?.shape;
    },
    isTensorArg: (k) => { const v = n.inputs[k]; return !!v && v.type.kind === 'Tensor' && constOf(v) !== null; },
  };
  return formula[1](at);
}

/** Formulas by op class, in the order they are tried: a node's first class here decides. */
const FORMULAS: readonly (readonly [readonly OpClass[], (a: NodeAt) => number])[] = [
  [['attention'], ({ f, n }) => attentionFlops(f, n)],
  [['linear', 'matmul'], matmulFlops],
  [['conv'], convFlops],
  [['batchnorm', 'norm'], normFlops],
  [['softmax'], ({ shp }) => { const x = shp(0); return x ? 5 * numel(x) : MISSING; }],
  [['dropout'], ({ n, kind, out }) => {
    const train = kind === 'aten::native_dropout' ? constOf(n.arg('train')) !== false : constOf(n.arg('train')) === true;
    if (!train) return 0;
    const o = out();
    return o ? 2 * numel(o) : MISSING;
  }],
  [['act'], ({ n, base, out }) => {
    const o = out();
    if (!o) return MISSING;
    let cost = ACT_COST[base] ?? 1;
    if (base === 'gelu' && constOf(n.arg('approximate')) === 'tanh') cost = 9;
    if (base === 'bias_gelu') cost = 1 + (constOf(n.arg('approximate')) === 'tanh' ? 9 : ACT_COST.gelu);
    return cost * numel(o);
  }],
  [['cast'], () => 0],
  [['elementwise'], ({ base, out }) => { const o = out(); return o ? (ELEMENTWISE_COST[base] ?? 1) * numel(o) : MISSING; }],
  [['reduction'], reductionFlops],
  [['pool'], ({ n, base, shp, out }) => {
    const x = shp(0), o = out();
    if (!x || !o) return MISSING;
    if (base.startsWith('adaptive')) return numel(x);
    const k = constOf(n.arg('kernel_size'));
    const kernel = Array.isArray(k) ? numel(k) : 1;
    return numel(o) * kernel;
  }],
  [['layout', 'copy', 'create'], () => 0],
];

function matmulFlops({ n, kind, shp, out, isTensorArg }: NodeAt): number {
  if (kind === 'aten::linear' || kind === 'aten::_linear') {
    const x = shp(0), w = shp(1);
    if (!x || !w) return MISSING;
    return linearFlops(x, w, isTensorArg(2));
  }
  if (kind === 'mkl::_mkl_linear') {
    // X, the packed weight (opaque), the original weight (its shape), the bias.
    const x = shp(n.argPosition('X')), w = shp(n.argPosition('ORI_W'));
    if (!x || !w) return MISSING;
    return linearFlops(x, w, isTensorArg(n.argPosition('B')));
  }
  if (kind === 'torchgraph::linear') {
    // x, the packed weight ((panels, K, 16): out_features says N), the bias.
    const x = shp(n.argPosition('input')), N = constNumber(n.arg('out_features'));
    if (!x || N === undefined) return MISSING;
    return linearFlops(x, [N, x[x.length - 1]], isTensorArg(n.argPosition('bias')));
  }
  if (kind === 'mkldnn::_linear_pointwise') {
    // X, the reordered weight (its shape is the plain weight's), the bias.
    const x = shp(n.argPosition('X')), w = shp(n.argPosition('W'));
    if (!x || !w) return MISSING;
    return linearFlops(x, w, isTensorArg(n.argPosition('B')));
  }
  const o = out();
  if (!o) return MISSING;
  const addmm = kind === 'aten::addmm' || kind === 'aten::_addmm_activation';
  const a = addmm || kind === 'aten::baddbmm' || kind === 'aten::addbmm' ? shp(1) : shp(0);
  if (!a) return MISSING;
  const K = a[a.length - 1];
  let total = 2 * numel(o) * K;
  if (kind === 'aten::addbmm') total = 2 * (a[0] ?? 1) * numel(o) * K;
  if (addmm || kind === 'aten::baddbmm' || kind === 'aten::addbmm') total += numel(o);
  // The fused activation: GELU or ReLU on every output element.
  if (kind === 'aten::_addmm_activation') {
    total += numel(o) * (constOf(n.arg('use_gelu')) === true ? ACT_COST['gelu'] ?? 1 : ACT_COST['relu'] ?? 1);
  }
  return total;
}

function convFlops({ n, kind, shp, out, isTensorArg }: NodeAt): number {
  // By argument name: oneDNN's pointwise ops call them X, W, B, and .binary puts `other` second.
  const at = (...names: string[]) => names.map((a) => n.argPosition(a)).find((i) => i >= 0) ?? -1;
  const [xi, wi, bi] = [at('input', 'self', 'X'), at('weight', 'W', 'packed_weight'), at('bias', 'B')];
  const o = out(), x = xi >= 0 ? shp(xi) : undefined, w = wi >= 0 ? shp(wi) : undefined;
  if (!o || !x || !w) return MISSING;
  const t = n.arg('transposed');
  const transposed = /conv_transpose/.test(kind) || (!!t && constOf(t) === true);
  // torchgraph::conv2d's packed weight is (panels, kh * kw * C, 16): its rows are one output's inputs.
  const perOut = kind === CONV2D_KIND ? w[1] : numel(w.slice(1));
  const bias = bi >= 0 && isTensorArg(bi) ? numel(o) : 0;
  return (transposed ? 2 * numel(x) * perOut : 2 * numel(o) * perOut) + bias;
}

function normFlops({ n, base, shp, isTensorArg }: NodeAt): number {
  const x = shp(0);
  if (!x) return MISSING;
  const N = numel(x);
  const affine = (k: number) => (isTensorArg(k) ? N : 0);
  switch (base) {
    case 'layer_norm': case 'native_layer_norm': return 6 * N + affine(2) + affine(3);
    case 'group_norm': case 'native_group_norm': return 6 * N + affine(2) + affine(3);
    case 'instance_norm': return 6 * N + affine(1) + affine(2);
    case 'rms_norm': case '_fused_rms_norm': return 3 * N + affine(2);
    // torchgraph's residual add + norm (native/fused_ops.cc): the add, then the norm.
    case 'add_layer_norm': return 7 * N + affine(n.argPosition('weight')) + affine(n.argPosition('bias'));
    case 'add_rms_norm': return 4 * N + affine(n.argPosition('weight'));
    default: { // batch norms: (input, weight, bias, running_mean, running_var, training, ...)
      const training = constOf(n.arg('training')) === true; // _native_batch_norm_legit_no_training has none: eval
      return (training ? 6 * N : 2 * N) + affine(1) + affine(2);
    }
  }
}

function reductionFlops({ base, shp, out }: NodeAt): number {
  const x = shp(0);
  if (!x) return MISSING;
  const N = numel(x);
  const o = out();
  if (base === 'mean') return N + (o ? numel(o) : 0);
  if (base === 'var' || base === 'std' || base === 'var_mean' || base === 'std_mean' || base === 'logsumexp') return 3 * N;
  if (base === 'norm' || base === 'linalg_vector_norm') return 2 * N;
  return N;
}

function attentionFlops(f: GraphFacts, n: Node): number {
  const shapeOf = (k: number) => { const i = f.vindex.get(n.inputs[k]); return i === undefined ? undefined : f.info[i]?.shape; };
  const hasTensor = (i: number) => n.inputs[i]?.type.kind === 'Tensor' && constOf(n.inputs[i]) !== null;
  if (n.kind === 'aten::_transformer_encoder_layer_fwd') {
    // (src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu, norm_first, eps,
    //  norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask, mask_type)
    const x = shapeOf(0), w1 = shapeOf(14);
    const E = constNumber(n.arg('embed_dim'));
    const H = constNumber(n.arg('num_heads'));
    if (!x || !w1 || !E || !H) return MISSING;
    const L = x[x.length - 2];
    const B = numel(x) / (L * E);
    const rows = B * L, N = rows * E, Fd = w1[0];
    const proj = (outF: number, bias: boolean) => 2 * rows * E * outF + (bias ? rows * outF : 0);
    const core = sdpaFlops({ batch: B * H, L, S: L, E: E / H, Ev: E / H, masks: hasTensor(18) ? 1 : 0 });
    const norms = 2 * 6 * N + N * [10, 11, 12, 13].filter(hasTensor).length;
    const ffn = 2 * rows * E * Fd + (hasTensor(15) ? rows * Fd : 0) + 2 * rows * Fd * E + (hasTensor(17) ? N : 0);
    const act = (constOf(n.arg('use_gelu')) === true ? ACT_COST.gelu : ACT_COST.relu) * rows * Fd;
    return proj(3 * E, hasTensor(4)) + core + proj(E, hasTensor(6)) + norms + ffn + act + 2 * N /* residual adds */;
  }
  if (n.kind === 'aten::_native_multi_head_attention') {
    // (query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight, proj_bias, mask, need_weights, average, mask_type)
    const q = shapeOf(0), k = shapeOf(1);
    const E = constNumber(n.arg('embed_dim'));
    const H = constNumber(n.arg('num_head'));
    if (!q || !k || !E || !H) return MISSING;
    const B = q.length === 3 ? q[0] : 1;
    const L = q[q.length - 2];
    const S = k[k.length - 2];
    const proj = (rows: number, bias: boolean) => 2 * rows * E * E + (bias ? rows * E : 0);
    const core = sdpaFlops({ batch: B * H, L, S, E: E / H, Ev: E / H, masks: hasTensor(9) ? 1 : 0 });
    const needWeights = constOf(n.arg('need_weights')) === true;
    return proj(B * L, hasTensor(6)) + 2 * proj(B * S, hasTensor(6)) + core + proj(B * L, hasTensor(8)) + (needWeights ? B * H * L * S : 0);
  }
  // SDPA family: (query, key, value, attn_mask?, dropout_p, is_causal, scale, ...)
  const q = shapeOf(0), k = shapeOf(1), v = shapeOf(2);
  if (!q || !k || !v) return MISSING;
  const L = q[q.length - 2], E = q[q.length - 1], S = k[k.length - 2], Ev = v[v.length - 1];
  const oi = f.vindex.get(n.outputs[0]);
  const o = oi === undefined ? undefined : f.info[oi]?.shape;
  const batch = o ? numel(o) / (L * Ev) : numel(q) / (L * E);
  const isSdpa = n.kind === 'aten::scaled_dot_product_attention' || n.kind === 'aten::_scaled_dot_product_attention_math';
  const maskArg = isSdpa ? n.arg('attn_mask') : undefined;
  const masks = (maskArg && maskArg.type.kind === 'Tensor' && constOf(maskArg) !== null ? 1 : 0)
    + (isSdpa && constOf(n.arg('is_causal')) === true ? 1 : 0);
  const dropout = isSdpa ? (constNumber(n.arg('dropout_p')) ?? 0) > 0 : false;
  return sdpaFlops({ batch, L, S, E, Ev, masks, dropout });
}

/** FLOPs of every node; writes node.meta.flops for compute nodes. */
export function countFlops(graphOrFacts: Graph | GraphFacts, opts: { writeMeta?: boolean } = {}): FlopsReport {
  const f = 'nodes' in graphOrFacts && 'role' in graphOrFacts ? graphOrFacts : buildFacts(graphOrFacts as Graph);
  const perNode = new Float64Array(f.nodes.length);
  const byCategory = Object.fromEntries(FLOP_CATEGORIES.map((c) => [c, 0])) as Record<FlopCategory, number>;
  const noFormula: Record<string, number> = {};
  const missingShapes: Record<string, number> = {};
  let total = 0;
  for (let p = 0; p < f.nodes.length; p++) {
    const x = flopsAt(f, p);
    const kind = f.nodes[p].kind;
    if (x === MISSING) missingShapes[kind] = (missingShapes[kind] ?? 0) + 1;
    else if (x === NO_FORMULA) noFormula[kind] = (noFormula[kind] ?? 0) + 1;
    const fl = x > 0 ? x : 0;
    perNode[p] = fl;
    if (fl) { total += fl; byCategory[categoryOf(f, p)] += fl; }
    if (opts.writeMeta !== false && f.role[p] === 'compute') f.nodes[p].meta.flops = fl;
  }
  return { total, byCategory, perNode, noFormula, missingShapes };
}

/** FLOPs of one node (builds facts for its graph: use countFlops for many nodes). */
export function nodeFlops(n: Node): number {
  const f = buildFacts(n.graph);
  const p = f.pos.get(n);
  if (p === undefined) throw new Error(`${n.describe()} is not in its graph`);
  return Math.max(0, flopsAt(f, p));
}
