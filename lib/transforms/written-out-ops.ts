// Activations and norms that model code writes out as arithmetic become the one ATen op computing
// the same function, so the fused graph runs one kernel over the tensor instead of a chain of
// elementwise passes (libtorch's CPU builds have no fuser for them), and the lowerings that read
// that op (oneDNN post-ops, torchgraph::add_rms_norm) find it. Real code: transformers' NewGELU and
// FastGELU (GPT-2, GPT-J, CLIP, ...: the tanh approximation), GELUActivation's Python fallback
// (the erf form), hand-written SiLU, and RMSNorm as LlamaRMSNorm, MistralRMSNorm, Qwen2RMSNorm and
// T5LayerNorm write it. The patterns are data (EXPRESSIONS); one matcher reads them, with add and
// mul commutative and constants matched to 1e-6 relative.
import type { Graph, Node, Value } from '../core/ir';
import { constNumber, constOf, isNoneValue, scalarConstant } from '../core/constants';
import { setValueInfo, tensorInfo } from '../core/value-info';
import { Emitter } from './emit';

/**
 * An expression over one tensor X: an op of these kinds on sub-expressions (`where` checks its
 * other arguments), X, a scalar constant, or a capture: W (a tensor, the norm's weight) or EPS
 * (any scalar constant, the norm's epsilon).
 */
type Expr = { op: string; args: Expr[]; where?: (n: Node) => boolean } | 'X' | 'W' | 'EPS' | number;

/** What a match bound. */
interface Bound { x?: Value; w?: Value; eps?: number }

const op = (name: string) => (...args: Expr[]): Expr => ({ op: `aten::${name}`, args });
const [mul, add, div, tanh, pow, erf, sigmoid, rsqrt, sqrt] = ['mul', 'add', 'div', 'tanh', 'pow', 'erf', 'sigmoid', 'rsqrt', 'sqrt']
  .map(op);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** mean over the last dim, keeping it, in the input's dtype: `.mean(-1, keepdim=True)`. */
const meanLast = (e: Expr): Expr => ({
  op: 'aten::mean', args: [e],
  where: (n) => {
    const dims = constOf(n.arg('dim'));
    const self = n.arg('self');
    const rank = self && tensorInfo(self)?.shape.length;
    const last = Array.isArray(dims) && dims.length === 1 && (Number(dims[0]) === -1 || Number(dims[0]) === (rank ?? 0) - 1);
    return last && constOf(n.arg('keepdim')) === true && isNoneValue(n.arg('dtype'));
  },
});
/** mean(x^2) over the last dim, the square as pow(x, 2) or x * x. */
const MEAN_SQUARE = [meanLast(pow('X', 2)), meanLast(mul('X', 'X'))];

export interface WrittenOutOp {
  name: string;
  expr: Expr;
  /** Emits the one ATen op it becomes, over what the match bound. */
  emit(em: Emitter, b: Required<Pick<Bound, 'x'>> & Bound): Value;
}

const activation = (name: string, kind: string, expr: Expr, approximate?: 'tanh' | 'none'): WrittenOutOp => ({
  name, expr, emit: (em, b) => (approximate ? em.op(kind, b.x, em.str(approximate)) : em.op(kind, b.x)),
});

const rmsNorm = (name: string, expr: Expr): WrittenOutOp => ({
  name, expr,
  emit: (em, b) => em.op('aten::rms_norm', b.x, em.intList([tensorInfo(b.x)!.shape.at(-1)!]), b.w ?? em.none(), em.constant(b.eps!)),
});

/** x / sqrt(mean(x^2) + eps), as x * rsqrt(...) or x / sqrt(...). */
const normed = MEAN_SQUARE.flatMap((ms) => [mul('X', rsqrt(add(ms, 'EPS'))), div('X', sqrt(add(ms, 'EPS')))]);

export const EXPRESSIONS: readonly WrittenOutOp[] = [
  // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (NewGELUActivation, gelu_new)
  activation('GELU, tanh form', 'aten::gelu',
    mul(mul('X', 0.5), add(tanh(mul(add('X', mul(pow('X', 3), 0.044715)), SQRT_2_OVER_PI)), 1)), 'tanh'),
  // 0.5 * x * (1 + tanh(x * sqrt(2/pi) * (1 + 0.044715 * x * x)))   (FastGELUActivation)
  activation('GELU, tanh form (fast)', 'aten::gelu',
    mul(mul('X', 0.5), add(tanh(mul(mul('X', SQRT_2_OVER_PI), add(mul(mul('X', 0.044715), 'X'), 1))), 1)), 'tanh'),
  // x * 0.5 * (1 + erf(x / sqrt(2)))   (GELUActivation's Python form)
  activation('GELU, erf form', 'aten::gelu', mul(mul('X', 0.5), add(erf(div('X', Math.SQRT2)), 1)), 'none'),
  // x * sigmoid(x)
  activation('SiLU', 'aten::silu', mul('X', sigmoid('X'))),
  // w * (x * rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))   (LlamaRMSNorm, T5LayerNorm, ...), the
  // weighted forms first: the unweighted one is inside each of them.
  ...normed.map((e) => rmsNorm('RMSNorm', mul('W', e))),
  ...normed.map((e) => rmsNorm('RMSNorm (no weight)', e)),
];

const COMMUTATIVE = new Set(['aten::mul', 'aten::add']);

/** Binds X, W and EPS while matching `e` against `v`; the nodes matched go into `nodes`. */
function match(e: Expr, v: Value, bind: Bound, nodes: Node[]): boolean {
  if (e === 'X' || e === 'W') {
    const key = e === 'X' ? 'x' : 'w';
    if (bind[key] && bind[key] !== v) return false;
    bind[key] = v;
    return true;
  }
  if (e === 'EPS') {
    const c = scalarConstant(v);
    if (c === undefined || (bind.eps !== undefined && bind.eps !== c)) return false;
    bind.eps = c;
    return true;
  }
  if (typeof e === 'number') {
    const c = scalarConstant(v);
    return c !== undefined && Math.abs(c - e) <= 1e-6 * Math.max(1, Math.abs(e));
  }
  const n = v.node;
  if (!n || n.kind !== e.op || n.outputs.length !== 1) return false;
  // add's alpha must be 1; the operands are the first inputs of mul/add/div/pow/mean.
  if (n.kind === 'aten::add' && (n.inputs.length !== 3 || constNumber(n.arg('alpha')) !== 1)) return false;
  if (e.where && !e.where(n)) return false;
  const operands = n.inputs.slice(0, e.args.length);
  if (operands.length !== e.args.length) return false;
  const orders = COMMUTATIVE.has(n.kind) ? [operands, [...operands].reverse()] : [operands];
  for (const order of orders) {
    const b = { ...bind };
    const inner: Node[] = [];
    if (e.args.every((a, i) => match(a, order[i], b, inner))) {
      Object.assign(bind, b);
      nodes.push(n, ...inner);
      return true;
    }
  }
  return false;
}

/** A weight the fused op can take: one value per element of the last dim, in X's dtype. */
function fitsWeight(w: Value | undefined, x: { shape: number[]; dtype: string }): boolean {
  if (!w) return true;
  const wi = tensorInfo(w);
  return wi !== undefined && wi.dtype === x.dtype && wi.shape.length === 1 && wi.shape[0] === x.shape.at(-1);
}

/** Rewrites every match in place (the matched ops must be read only inside the expression); returns counts by name. */
export function recognizeWrittenOutOps(g: Graph): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const root of [...g.allNodes()].reverse()) {
    if (root.isDestroyed || root.outputs.length !== 1) continue;
    for (const a of EXPRESSIONS) {
      const bind: Bound = {};
      const nodes: Node[] = [];
      if (!match(a.expr, root.output, bind, nodes) || !bind.x) continue;
      const set = new Set(nodes);
      if (nodes.some((n) => n !== root && n.output.uses.some((u) => !set.has(u.node)))) continue;
      const x = tensorInfo(bind.x), y = tensorInfo(root.output);
      if (!x || !y || x.dtype !== y.dtype || x.shape.join() !== y.shape.join() || !/float/.test(x.dtype)) continue;
      if (!fitsWeight(bind.w, x)) continue;
      const em = new Emitter(g, root, { id: a.name, scope: root.scope, attention: false });
      em.role = 'written_out_activation';
      const out = a.emit(em, { ...bind, x: bind.x });
      setValueInfo(out, y);
      root.output.replaceAllUsesWith(out);
      // Consumers first: each pass frees the operands of the nodes it destroyed.
      for (let left = nodes; left.length;) {
        const dead = left.filter((n) => !n.hasUses());
        if (!dead.length) break;
        dead.forEach((n) => n.destroy());
        left = left.filter((n) => !n.isDestroyed);
      }
      counts[a.name] = (counts[a.name] ?? 0) + 1;
      break;
    }
  }
  return counts;
}
