// Attention however it is spelled: a softmax over a function of a product of two activations
// (q @ k^T as matmul, bmm, baddbmm, mm or einsum, then any scale, bias, mask or view). The
// partitioner's attention rule reads the spellings it knows; every other such softmax is still an
// attention candidate, and the lowering reports it as refused with the rule's reason, so a core
// the rule did not pick up is never silent (lower-groups.ts).
import { dataInput, type Node, type Value } from '../core/ir';
import { LAYOUT_KINDS } from '../core/ops/classes';

const PRODUCTS = new Set(['aten::matmul', 'aten::bmm', 'aten::baddbmm', 'aten::mm', 'aten::einsum']);
const SOFTMAXES = new Set(['aten::softmax', 'aten::_softmax', 'aten::_safe_softmax']);
/** How far back from the softmax the product may be (scales, masks, biases, views between). */
const MAX_STEPS = 48;

/** Whether `v` depends on an input of the graph other than the module (`self`): an activation, not a weight or a constant. */
function activationTest(self: Value | undefined): (v: Value) => boolean {
  const memo = new Map<Value, boolean>();
  const visit = (v: Value): boolean => {
    const known = memo.get(v);
    if (known !== undefined) return known;
    memo.set(v, false);
    const n = v.node;
    const r = n ? n.inputs.some(visit) : v !== self;
    memo.set(v, r);
    return r;
  };
  return visit;
}

/** The tensor operands of a product node (einsum's are in its list argument). */
function operandsOf(n: Node): Value[] {
  if (n.kind === 'aten::einsum') {
    const list = n.arg('tensors')?.node;
    return list?.kind === 'prim::ListConstruct' ? [...list.inputs] : [];
  }
  if (n.kind === 'aten::baddbmm') return [n.arg('batch1'), n.arg('batch2')].filter((v): v is Value => v !== undefined);
  return n.inputs.slice(0, 2);
}

/** Ops an attention core may have between its scores and its softmax: scales, biases and masks, casts and views. */
const BETWEEN = new Set(['aten::mul', 'aten::div', 'aten::add', 'aten::sub', 'aten::masked_fill', 'aten::where', 'aten::to',
  'aten::type_as', 'aten::dropout', 'aten::mul_', 'aten::div_', 'aten::add_', 'aten::sub_', 'aten::masked_fill_', ...LAYOUT_KINDS]);

export interface ScoresProduct {
  product: Node;
  /** Ops between the product and the softmax that are none of a core's (tanh soft-capping, a linear over the heads, ...). */
  foreign: Node[];
}

/** The product of two activations that `softmax`'s input is computed from, if any, and what lies between them. */
export function scoresProductOf(softmax: Node, self: Value | undefined): ScoresProduct | undefined {
  const product = findProduct(softmax, self);
  if (!product) return undefined;
  // The nodes on a path from the product to the softmax: those with an input on such a path.
  const onPath = new Map<Node, boolean>([[product, true]]);
  const visit = (n: Node | null | undefined, depth: number): boolean => {
    if (!n || depth > MAX_STEPS) return false;
    const known = onPath.get(n);
    if (known !== undefined) return known;
    onPath.set(n, false);
    const r = n.inputs.some((v) => visit(v.node, depth + 1));
    onPath.set(n, r);
    return r;
  };
  visit(dataInput(softmax).node, 0);
  const foreign = [...onPath].filter(([n, on]) => on && n !== product && !BETWEEN.has(n.kind)).map(([n]) => n);
  return { product, foreign };
}

function findProduct(softmax: Node, self: Value | undefined): Node | undefined {
  if (!SOFTMAXES.has(softmax.kind)) return undefined;
  const isActivation = activationTest(self);
  const queue: Value[] = [dataInput(softmax)];
  const seen = new Set<Value>();
  for (let steps = 0; queue.length && steps < MAX_STEPS; steps++) {
    const v = queue.shift()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const n = v.node;
    if (!n || n.isConstant || SOFTMAXES.has(n.kind)) continue;
    if (PRODUCTS.has(n.kind)) {
      const ops = operandsOf(n);
      if (ops.length >= 2 && ops.filter(isActivation).length >= 2) return n;
      continue;
    }
    for (const x of n.inputs) if (x.type.kind === 'Tensor') queue.push(x);
  }
  return undefined;
}
