// oneDNN's post-op activations (the names torchgraph::linear and torchgraph::conv2d take) with
// the ATen op each stands for, for tests comparing our ops against ATen.
import type { Tensor } from '../../lib';
import type { Graph, Value } from '../../lib/core/ir';

const T = [{ kind: 'Tensor' as const }];

/** The largest magnitude among t's values, at least 1. */
export function largest(t: Tensor): number {
  let m = 1;
  for (const v of t.data() as Float32Array) m = Math.max(m, Math.abs(v));
  return m;
}

export interface Act { attr: string; scalars: number[]; algorithm: string | null; aten: (g: Graph, y: Value) => Value }

const unary = (kind: string, ...args: (number | string)[]) => (g: Graph, y: Value) =>
  g.createNode(kind, [y, ...args.map((a) => g.insertConstant(a))], T).output;

export const ACTS: Act[] = [
  { attr: 'none', scalars: [], algorithm: null, aten: (_g, y) => y },
  { attr: 'relu', scalars: [], algorithm: null, aten: unary('aten::relu') },
  { attr: 'gelu', scalars: [], algorithm: 'none', aten: unary('aten::gelu', 'none') },
  { attr: 'gelu', scalars: [], algorithm: 'tanh', aten: unary('aten::gelu', 'tanh') },
  { attr: 'swish', scalars: [], algorithm: null, aten: unary('aten::silu') },
  { attr: 'sigmoid', scalars: [], algorithm: null, aten: unary('aten::sigmoid') },
  { attr: 'tanh', scalars: [], algorithm: null, aten: unary('aten::tanh') },
  { attr: 'leaky_relu', scalars: [0.1], algorithm: null, aten: unary('aten::leaky_relu', 0.1) },
  { attr: 'hardtanh', scalars: [-0.5, 0.75], algorithm: null, aten: unary('aten::hardtanh', -0.5, 0.75) },
  { attr: 'hardswish', scalars: [], algorithm: null, aten: unary('aten::hardswish') },
  { attr: 'hardsigmoid', scalars: [], algorithm: null, aten: unary('aten::hardsigmoid') },
];
