// Linear layers on weights MKL packs once for the GEMM's row count (mkl::_mkl_reorder_linear_weight
// ahead of the runs, mkl::_mkl_linear in the graph), as PyTorch's inductor runs them on CPU with
// freezing. The packed weight is held by the fused graph; the original weight stays the op's
// fallback, which it takes when a run has another row count than the one packed for.
// aten::addmm(b, x, W) over a module weight laid out (in, out) (transformers' Conv1D, GPT-2's
// projections) is the same GEMM: W^T is packed, and the fallback reads the transposed view.
import type { Graph, Node, Value } from '../core/ir';
import type { NativeModule, NativeTensor } from '../torchscript/binding';
import { constNumber, isNoneValue } from '../core/constants';
import { tensorInfo } from '../core/value-info';
import { numel } from '../core/ops/classes';
import { Emitter } from '../transforms/emit';
import { asTensor, computeEachOnModule, moduleCone } from './weights-on-module';
import { outcomeId, type LoweringOutcome } from './lower-fused';

export interface PackedLinearRequest {
  id: string; linear: Node; x: Value; weight: Value; bias: Value | undefined;
  /** The weight is (in, out), an addmm's mat2: packed and passed transposed. */
  transposed: boolean;
  rows: number;
}

/** The GEMM's operands by argument name: aten::linear(input, weight, bias), or aten::addmm(self=bias, mat1=x, mat2=W) with beta = alpha = 1. */
function operands(n: Node): Pick<PackedLinearRequest, 'x' | 'weight' | 'bias' | 'transposed'> | string {
  if (n.kind === 'aten::linear') {
    const bias = n.arg('bias');
    return { x: n.arg('input')!, weight: n.arg('weight')!, bias: isNoneValue(bias) ? undefined : bias, transposed: false };
  }
  if (constNumber(n.arg('beta')) !== 1 || constNumber(n.arg('alpha')) !== 1) return 'an addmm with beta or alpha other than 1';
  const bias = n.arg('self')!, b = tensorInfo(bias), w = tensorInfo(n.arg('mat2')!);
  if (!b || !w || b.shape.length !== 1 || b.shape[0] !== w.shape[1]) return 'an addmm whose input is not a bias of the output width';
  return { x: n.arg('mat1')!, weight: n.arg('mat2')!, bias, transposed: true };
}

function requestFor(id: string, linear: Node, self: Value | undefined): PackedLinearRequest | string {
  const ops = operands(linear);
  if (typeof ops === 'string') return ops;
  const xi = tensorInfo(ops.x), wi = tensorInfo(ops.weight);
  if (!xi || !wi || wi.shape.length !== 2 || xi.shape.length < 1) return 'shapes unknown';
  if (xi.dtype !== 'float32' || wi.dtype !== 'float32') return 'not float32';
  if (!moduleCone(ops.bias ? [ops.weight, ops.bias] : [ops.weight], self)) return 'the weight is computed from the inputs';
  return { id, linear, ...ops, rows: numel(xi.shape) / wi.shape[ops.transposed ? 0 : 1] };
}

/** Every top-level float32 aten::linear (and addmm over a weight) whose weight comes from the module alone. */
export function planPackedLinears(graph: Graph): { requests: PackedLinearRequest[]; refused: Map<string, string> } {
  const self = graph.inputs[0]?.type.kind === 'Class' ? graph.inputs[0] : undefined;
  const requests: PackedLinearRequest[] = [];
  const refused = new Map<string, string>();
  for (const n of graph.nodes()) {
    if (n.kind !== 'aten::linear' && n.kind !== 'aten::addmm') continue;
    const id = outcomeId(n);
    const r = requestFor(id, n, self);
    if (typeof r === 'string') refused.set(id, r);
    else requests.push(r);
  }
  return { requests, refused };
}

/** Each request's weight packed by MKL for its row count; a failure is every request's reason. */
export function packLinearWeights(module: NativeModule, graph: Graph, requests: PackedLinearRequest[]): Promise<Map<string, NativeTensor | string>> {
  return computeEachOnModule(module, graph, requests, (r) => [r.weight], (g, map, r) => {
    const plain = asTensor(g, map.get(r.weight)!);
    const weight = r.transposed ? g.createNode('aten::t', [plain], [{ kind: 'Tensor' }]).output : plain;
    return g.createNode('mkl::_mkl_reorder_linear_weight', [weight, g.insertConstant(BigInt(r.rows))], [{ kind: 'Tensor' }]).output;
  }, 'MKL could not pack the weights');
}

/** aten::linear(x, W, b) -> mkl::_mkl_linear(x, packed W, W, b, rows); aten::addmm(b, x, W) the same with W^T. */
export function lowerPackedLinear(g: Graph, r: PackedLinearRequest, packed: NativeTensor | string | undefined): LoweringOutcome {
  if (packed === undefined || typeof packed === 'string') return { id: r.id, lowered: false, reason: packed ?? 'the weight was not packed' };
  const em = new Emitter(g, r.linear, { id: r.id, scope: r.linear.scope, attention: false });
  em.role = 'packed_linear';
  const l = r.linear;
  // Read now, not at planning: an earlier lowering may have replaced the producer of x.
  const ops = operands(l) as Exclude<ReturnType<typeof operands>, string>;
  const weight = r.transposed ? em.op('aten::t', ops.weight) : ops.weight;
  const y = em.op('mkl::_mkl_linear', ops.x, em.tensorConstant(packed), weight, ops.bias ?? em.none(), em.int(r.rows));
  l.output.replaceAllUsesWith(y);
  l.destroy();
  for (const n of em.emitted) n.meta.fused = { kind: 'packed_linear', id: r.id };
  return { id: r.id, lowered: true, heldBytes: packed.nbytes };
}
