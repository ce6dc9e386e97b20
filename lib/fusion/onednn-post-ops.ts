// oneDNN's eltwise post-ops: the activations its pointwise kernels (mkldnn::_convolution_pointwise,
// mkldnn::_linear_pointwise) apply to their output while it is in cache, read from the activation
// node that follows the convolution or the linear. One table for both lowerings; torchgraph::linear
// (native/packed_linear.cc) takes the same names.
import type { Node, Value } from '../core/ir';
import { constNumber, constOf } from '../core/constants';
import { METADATA_INPUT0, baseName } from '../core/ops/classes';

/** A oneDNN eltwise post-op: attr, its scalars and algorithm, as the mkldnn pointwise ops take them. */
export interface UnaryPostOp { attr: string; scalars: number[]; algorithm: string | null }

/** Activations oneDNN applies on the op's output, read by argument name (checked equal to PyTorch's in
 * conv-pointwise.test.ts and fused-ops.test.ts). */
const UNARY_POST_OPS: Record<string, (act: Node) => UnaryPostOp | string> = {
  relu: () => ({ attr: 'relu', scalars: [], algorithm: null }),
  sigmoid: () => ({ attr: 'sigmoid', scalars: [], algorithm: null }),
  tanh: () => ({ attr: 'tanh', scalars: [], algorithm: null }),
  silu: () => ({ attr: 'swish', scalars: [], algorithm: null }),
  hardswish: () => ({ attr: 'hardswish', scalars: [], algorithm: null }),
  hardsigmoid: () => ({ attr: 'hardsigmoid', scalars: [], algorithm: null }),
  relu6: () => ({ attr: 'hardtanh', scalars: [0, 6], algorithm: null }),
  gelu: (act) => {
    const approx = constOf(act.arg('approximate')!);
    return approx === 'none' || approx === 'tanh'
      ? { attr: 'gelu', scalars: [], algorithm: approx }
      : 'a GELU whose approximation is not a constant';
  },
  hardtanh: (act) => {
    const [lo, hi] = [constNumber(act.arg('min_val')), constNumber(act.arg('max_val'))];
    return lo !== undefined && hi !== undefined
      ? { attr: 'hardtanh', scalars: [lo, hi], algorithm: null }
      : 'hardtanh bounds are not constants';
  },
  leaky_relu: (act) => {
    const slope = constNumber(act.arg('negative_slope'));
    return slope !== undefined ? { attr: 'leaky_relu', scalars: [slope], algorithm: null } : 'the leaky ReLU slope is not a constant';
  },
};

/** The post-op for activation node `act` (in place or not), or why it has none. */
export function unaryOf(act: Node): UnaryPostOp | string {
  const read = UNARY_POST_OPS[baseName(act.kind)];
  return read ? read(act) : `${act.kind} has no oneDNN post-op`;
}

/** The one node that reads `v`'s data (metadata reads such as aten::size aside), counting each use. */
export function soleDataUser(v: Value): Node | undefined {
  const users = v.uses.filter((u) => !METADATA_INPUT0.has(u.node.kind)).map((u) => u.node);
  return users.length === 1 ? users[0] : undefined;
}
