// Activations that model code writes out as arithmetic become the one ATen op computing the same
// function, so the fused graph runs one kernel over the tensor instead of a chain of elementwise
// passes (libtorch's CPU builds have no fuser for them). Real code: transformers' NewGELU and
// FastGELU (GPT-2, GPT-J, CLIP, ...: the tanh approximation), GELUActivation's Python fallback
// (the erf form), hand-written SiLU. The patterns are data (EXPRESSIONS); one matcher reads them,
// with add and mul commutative and constants matched to 1e-6 relative.
import type { Graph, Node, Value } from '../core/ir';
import { constNumber, scalarConstant } from '../core/constants';
import { setValueInfo, tensorInfo } from '../core/value-info';
import { Emitter } from './emit';

/** An expression over one tensor X: an op of these kinds on sub-expressions, X, or a scalar constant. */
type Expr = { op: string; args: Expr[] } | 'X' | number;

const op = (name: string) => (...args: Expr[]): Expr => ({ op: `aten::${name}`, args });
const [mul, add, div, tanh, pow, erf, sigmoid] = ['mul', 'add', 'div', 'tanh', 'pow', 'erf', 'sigmoid'].map(op);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export interface WrittenOutActivation {
  name: string;
  expr: Expr;
  /** The ATen op it becomes: kind and its arguments after X. */
  kind: string;
  approximate?: 'tanh' | 'none';
}

export const EXPRESSIONS: readonly WrittenOutActivation[] = [
  // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (NewGELUActivation, gelu_new)
  { name: 'GELU, tanh form', kind: 'aten::gelu', approximate: 'tanh',
    expr: mul(mul('X', 0.5), add(tanh(mul(add('X', mul(pow('X', 3), 0.044715)), SQRT_2_OVER_PI)), 1)) },
  // 0.5 * x * (1 + tanh(x * sqrt(2/pi) * (1 + 0.044715 * x * x)))   (FastGELUActivation)
  { name: 'GELU, tanh form (fast)', kind: 'aten::gelu', approximate: 'tanh',
    expr: mul(mul('X', 0.5), add(tanh(mul(mul('X', SQRT_2_OVER_PI), add(mul(mul('X', 0.044715), 'X'), 1))), 1)) },
  // x * 0.5 * (1 + erf(x / sqrt(2)))   (GELUActivation's Python form)
  { name: 'GELU, erf form', kind: 'aten::gelu', approximate: 'none', expr: mul(mul('X', 0.5), add(erf(div('X', Math.SQRT2)), 1)) },
  // x * sigmoid(x)
  { name: 'SiLU', kind: 'aten::silu', expr: mul('X', sigmoid('X')) },
];

const COMMUTATIVE = new Set(['aten::mul', 'aten::add']);

/** Binds X while matching `e` against `v`; the nodes matched go into `nodes`. */
function match(e: Expr, v: Value, bind: { x?: Value }, nodes: Node[]): boolean {
  if (e === 'X') {
    if (bind.x && bind.x !== v) return false;
    bind.x = v;
    return true;
  }
  if (typeof e === 'number') {
    const c = scalarConstant(v);
    return c !== undefined && Math.abs(c - e) <= 1e-6 * Math.max(1, Math.abs(e));
  }
  const n = v.node;
  if (!n || n.kind !== e.op || n.outputs.length !== 1) return false;
  // add's alpha must be 1; the operands are the first two inputs of mul/add/div/pow.
  if (n.kind === 'aten::add' && (n.inputs.length !== 3 || constNumber(n.arg('alpha')) !== 1)) return false;
  const operands = n.inputs.slice(0, e.args.length);
  if (operands.length !== e.args.length) return false;
  const orders = COMMUTATIVE.has(n.kind) ? [operands, [...operands].reverse()] : [operands];
  for (const order of orders) {
    const b = { ...bind };
    const inner: Node[] = [];
    if (e.args.every((a, i) => match(a, order[i], b, inner))) {
      bind.x = b.x;
      nodes.push(n, ...inner);
      return true;
    }
  }
  return false;
}

/** Rewrites every match in place (the matched ops must be read only inside the expression); returns counts by name. */
export function recognizeWrittenOutActivations(g: Graph): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const root of [...g.allNodes()].reverse()) {
    if (root.isDestroyed || root.outputs.length !== 1) continue;
    for (const a of EXPRESSIONS) {
      const bind: { x?: Value } = {};
      const nodes: Node[] = [];
      if (!match(a.expr, root.output, bind, nodes) || !bind.x) continue;
      const set = new Set(nodes);
      if (nodes.some((n) => n !== root && n.output.uses.some((u) => !set.has(u.node)))) continue;
      const x = tensorInfo(bind.x), y = tensorInfo(root.output);
      if (!x || !y || x.dtype !== y.dtype || x.shape.join() !== y.shape.join() || !/float/.test(x.dtype)) continue;
      const em = new Emitter(g, root, { id: a.name, scope: root.scope, attention: false });
      em.role = 'written_out_activation';
      const out = a.approximate ? em.op(a.kind, bind.x, em.str(a.approximate)) : em.op(a.kind, bind.x);
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
