// Linear layers on weights packed once ahead of the runs, as PyTorch's inductor does with freezing,
// on one of two GEMMs, whichever is the faster on this machine's instruction set (`linearKernel`):
// - oneDNN: mkldnn::_reorder_linear_weight, then mkldnn::_linear_pointwise. On AVX-512 (AMD EPYC,
//   Zen 5 class, 2 threads) it measured 2.3-2.9x faster than MKL's packed GEMM and aten::linear
//   for ViT-B/16's and BERT's shapes (197-1024 rows, 768-3072 wide).
// - torchgraph's own (native/gemm_kernel.h): torchgraph::pack_linear_weight, then
//   torchgraph::linear. On AVX2 (AMD EPYC, Zen 3, 2 threads, in one built graph) 170-179 GFLOP/s
//   on those shapes, against 148-156 for oneDNN's and 143-162 for aten::linear's (MKL).
// Either packed weight is the weight's own bytes in a blocked layout (ours padded to 16 outputs),
// serves every row count, and turns back into the plain weight exactly (aten::to_dense,
// torchgraph::unpack_linear_weight): so it replaces the original (lib/pipeline/optimize.ts does).
// MKL's packed format measured 2.0-4.0x the weight and needs the original beside it.
// aten::addmm(b, x, W) over a module weight laid out (in, out) (transformers' Conv1D, GPT-2's
// projections) is the same GEMM: W^T is packed.
import { dataInput, moduleSelf, Value, type Graph, type Node } from '../core/ir';
import type { NativeModule, NativeTensor } from '../torchscript/binding';
import { constantOf, constNumber, isNoneValue } from '../core/constants';
import { tensorInfo } from '../core/value-info';
import { CONTIGUOUS_KINDS, RESHAPE_KINDS, VIEW_KINDS, numel } from '../core/ops/classes';
import { Emitter } from '../transforms/emit';
import { asTensor, computeEachOnModule, computeOnModule, moduleCone } from './weights-on-module';
import { outcomeId, type LoweringOutcome } from './lower-fused';
import type { LoweringPass, OwnedPass, PackedWeight } from './lowering-pass';
import { attributeOf, attributeReads, readAttribute } from './own-weights';
import { nativeSync } from '../core/errors';
import { soleDataUser, unaryOf, type UnaryPostOp } from './onednn-post-ops';
import { releaseFreedMemory } from '../torchscript/binding';
import { kernelChoice, type KernelChoice } from './kernel-choice';
import { OWN_OP_SCHEMAS, LINEAR_KIND, PACK_LINEAR_KIND } from '../core/ops/own-schemas';

/** The GEMM packed linears run on: oneDNN's, or torchgraph's own. */
export type LinearKernel = KernelChoice;

/** Ours where ATen's kernels run AVX2 (measured faster there, see above), oneDNN's elsewhere; TORCHGRAPH_LINEAR_KERNEL forces one. */
export const linearKernel = (): LinearKernel => kernelChoice('TORCHGRAPH_LINEAR_KERNEL');

/** The op a packed linear runs as on `kernel`, as the report names it. */
export function packedLinearOp(kernel: LinearKernel = linearKernel()): string {
  return kernel === 'torchgraph' ? LINEAR_KIND : 'mkldnn::_linear_pointwise';
}

export interface PackedLinearRequest {
  id: string; linear: Node; x: Value; weight: Value; bias: Value | undefined;
  /** The weight is (in, out), an addmm's mat2: packed and passed transposed. */
  transposed: boolean;
  rows: number;
  /** The activation applied as oneDNN's post-op: aten::_addmm_activation's own, or the one that alone reads the output. */
  postOp?: UnaryPostOp;
}

/**
 * Tiny GEMMs stay on aten::linear: oneDNN's per-call setup dominates them (measured here, Python,
 * 2 threads, per call: 2x16 @ 16x32 8.8 us plain against 13.6 us on oneDNN; 128x256 @ 256x256
 * 109 against 66), and on a toy model (2x16 inputs) its linear measured 1.4 KB above the peak
 * the estimate models.
 */
const MIN_PACKED_MACS = 65_536;

/**
 * The GEMM's operands by argument name: aten::linear(input, weight, bias), or aten::addmm(self=bias,
 * mat1=x, mat2=W) with beta = alpha = 1, or aten::_addmm_activation (the same, then GELU (erf) or
 * ReLU, which oneDNN applies as its post-op).
 */
function operands(n: Node): Pick<PackedLinearRequest, 'x' | 'weight' | 'bias' | 'transposed' | 'postOp'> | string {
  if (n.kind === 'aten::linear') {
    const bias = n.arg('bias');
    return { x: n.arg('input')!, weight: n.arg('weight')!, bias: isNoneValue(bias) ? undefined : bias, transposed: false };
  }
  if (constNumber(n.arg('beta')) !== 1 || constNumber(n.arg('alpha')) !== 1) return 'an addmm with beta or alpha other than 1';
  const bias = n.arg('self')!, b = tensorInfo(bias), w = tensorInfo(n.arg('mat2')!);
  if (!b || !w || b.shape.length !== 1 || b.shape[0] !== w.shape[1]) return 'an addmm whose input is not a bias of the output width';
  const ops = { x: n.arg('mat1')!, weight: n.arg('mat2')!, bias, transposed: true };
  if (n.kind !== 'aten::_addmm_activation') return ops;
  const gelu = constantOf(n.arg('use_gelu'));
  if (typeof gelu !== 'boolean') return 'an _addmm_activation whose activation is not a constant';
  return { ...ops, postOp: gelu ? { attr: 'gelu', scalars: [], algorithm: 'none' } : { attr: 'relu', scalars: [], algorithm: null } };
}

/** A post-op as the report names it: "gelu tanh", "leaky_relu 0.1", "swish". */
function postOpName(p: UnaryPostOp): string {
  return [p.attr, ...(p.algorithm && p.algorithm !== 'none' ? [p.algorithm] : []), ...p.scalars.map(String)].join(' ');
}

/** Layout ops an elementwise activation commutes with: one tensor out, each element one of the input's. */
const COMMUTES_WITH_ACTIVATION = new Set([...VIEW_KINDS, ...RESHAPE_KINDS, ...CONTIGUOUS_KINDS]);

/**
 * The activation that alone reads the linear's output, possibly through views and reshapes that
 * alone read it in turn (transformers' Conv1D reshapes addmm's 2-D output back to 3-D first), and
 * that oneDNN can apply as the GEMM's post-op while the tile is in cache (GPT-2's tanh GELU, an
 * MLP's SiLU gate, ReLU, ...): it saves a pass over the output.
 */
function activationAfter(linear: Node): { act: Node; postOp: UnaryPostOp } | undefined {
  let v = linear.output;
  let act = soleDataUser(v);
  while (act && COMMUTES_WITH_ACTIVATION.has(act.kind) && act.outputs.length === 1 && act.inputs.length && dataInput(act) === v) {
    v = act.output;
    act = soleDataUser(v);
  }
  if (!act || act.inputs.length === 0 || dataInput(act) !== v) return undefined;
  const postOp = unaryOf(act);
  return typeof postOp === 'string' ? undefined : { act, postOp };
}

function requestFor(id: string, linear: Node, self: Value | undefined): PackedLinearRequest | string {
  const ops = operands(linear);
  if (typeof ops === 'string') return ops;
  const xi = tensorInfo(ops.x), wi = tensorInfo(ops.weight);
  if (!xi || !wi || wi.shape.length !== 2 || xi.shape.length < 1) return 'shapes unknown';
  if (xi.dtype !== 'float32' || wi.dtype !== 'float32') return 'not float32';
  if (!moduleCone(ops.bias ? [ops.weight, ops.bias] : [ops.weight], self)) return 'the weight is computed from the inputs';
  const rows = numel(xi.shape) / wi.shape[ops.transposed ? 0 : 1];
  if (rows * numel(wi.shape) < MIN_PACKED_MACS) {
    return `a GEMM of fewer than ${MIN_PACKED_MACS} multiply-adds: oneDNN's per-call setup outweighs it`;
  }
  const postOp = ops.postOp ?? activationAfter(linear)?.postOp;
  return { id, linear, ...ops, rows, ...(postOp ? { postOp } : {}) };
}

/**
 * Every top-level float32 aten::linear (and addmm over a weight; with `activations`, _addmm_activation
 * too) whose weight comes from the module alone.
 */
export function planPackedLinears(graph: Graph, activations = false): { requests: PackedLinearRequest[]; refused: Map<string, string> } {
  const self = moduleSelf(graph);
  const requests: PackedLinearRequest[] = [];
  const refused = new Map<string, string>();
  for (const n of graph.nodes()) {
    if (n.kind !== 'aten::linear' && n.kind !== 'aten::addmm' && !(activations && n.kind === 'aten::_addmm_activation')) continue;
    const id = outcomeId(n);
    const r = requestFor(id, n, self);
    if (typeof r === 'string') refused.set(id, r);
    else requests.push(r);
  }
  return { requests, refused };
}

/** The packing of one weight value in `g` for `kernel` (W^T for an addmm's (in, out) weight), as a node output. */
export function emitLinearPack(
  g: Graph, weight: Value, transposed: boolean, rows: number, kernel: LinearKernel = linearKernel(),
): Value {
  const plain = asTensor(g, weight);
  const w = transposed ? g.createNode('aten::t', [plain], [{ kind: 'Tensor' }]).output : plain;
  if (kernel === 'torchgraph') {
    return g.createNode(PACK_LINEAR_KIND, [w], [{ kind: 'Tensor' }], {}, { schema: OWN_OP_SCHEMAS[PACK_LINEAR_KIND] }).output;
  }
  return g.createNode('mkldnn::_reorder_linear_weight', [w, g.insertConstant(BigInt(rows))], [{ kind: 'Tensor' }]).output;
}

/** Each request's weight packed (for oneDNN, for its row count, which only tunes the layout); a failure is every request's reason. */
export function packLinearWeights(
  module: NativeModule, graph: Graph, requests: PackedLinearRequest[], kernel: LinearKernel = linearKernel(),
): Promise<Map<string, NativeTensor | string>> {
  return computeEachOnModule(module, graph, requests, (r) => [r.weight],
    (g, map, r) => emitLinearPack(g, map.get(r.weight)!, r.transposed, r.rows, kernel),
    'the weights could not be packed');
}

/** The linear's output width: the weight's rows ((out, in)), or its columns for an addmm's (in, out). */
function outFeatures(r: Pick<PackedLinearRequest, 'weight' | 'transposed'>): number {
  const shape = tensorInfo(r.weight)!.shape;
  return shape[r.transposed ? 1 : 0];
}

/**
 * aten::linear(x, W, b) -> mkldnn::_linear_pointwise(x, reordered W, b), or torchgraph::linear(x,
 * packed W, b, out_features) on our kernel; aten::addmm(b, x, W) the same with W^T packed.
 * `packed` is the packed weight as a tensor (held by the graph as a constant), or a value of the
 * graph that holds it (an attribute of an optimized model's module).
 */
export function lowerPackedLinear(
  g: Graph, r: PackedLinearRequest, packed: NativeTensor | Value | string | undefined, kernel: LinearKernel = linearKernel(),
): LoweringOutcome {
  if (packed === undefined || typeof packed === 'string') {
    return { id: r.id, lowered: false, reason: packed ?? 'the weight was not packed' };
  }
  const em = new Emitter(g, r.linear, { id: r.id, scope: r.linear.scope, attention: false });
  em.role = 'packed_linear';
  const l = r.linear;
  // Read now, not at planning: an earlier lowering may have replaced the producer of x.
  const ops = operands(l) as Exclude<ReturnType<typeof operands>, string>;
  const weight = packed instanceof Value ? packed : em.tensorConstant(packed);
  const after = ops.postOp ? undefined : activationAfter(l);
  const post = ops.postOp ?? after?.postOp;
  const scalars = em.list((post?.scalars ?? []).map((x) => em.constant(x)), { kind: 'Optional', elem: { kind: 'Number' } });
  const algorithm = post?.algorithm ? em.str(post.algorithm) : em.none();
  const y = kernel === 'torchgraph'
    ? em.op(LINEAR_KIND, ops.x, weight, ops.bias ?? em.none(), em.constant(BigInt(outFeatures(r))), em.str(post?.attr ?? 'none'),
        scalars, algorithm)
    : em.op('mkldnn::_linear_pointwise', ops.x, weight, ops.bias ?? em.none(), em.str(post?.attr ?? 'none'), scalars, algorithm);
  // The activation read only the linear's output (or a view of it): that value stands for the
  // activation's output now, y for the linear's (metadata reads see the same shape, dtype, device).
  if (after) {
    after.act.output.replaceAllUsesWith(dataInput(after.act));
    after.act.destroy();
  }
  l.output.replaceAllUsesWith(y);
  l.destroy();
  for (const n of em.emitted) n.meta.fused = { kind: 'packed_linear', id: r.id };
  return {
    id: r.id, lowered: true, heldBytes: packed instanceof Value ? undefined : packed.nbytes, op: packedLinearOp(kernel),
    ...(post ? { postOp: postOpName(post) } : {}),
  };
}

/**
 * prepareGraphs' step: every linear on its weight reordered for the row count it runs with (the
 * graph's own shapes), held as a constant.
 */
export async function packLinearsStep(pass: LoweringPass): Promise<void> {
  const g = pass.graph;
  await pass.propagateShapes(g);
  const plan = planPackedLinears(g);
  const kernel = linearKernel();
  const weights = await packLinearWeights(pass.module, g, plan.requests, kernel);
  pass.lowering.packedLinears = [...plan.requests.map((r) => lowerPackedLinear(g, r, weights.get(r.id), kernel)),
    ...[...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }))];
  g.eliminateDeadCode();
}

/**
 * optimize's step: the weight of every linear of `pass.run` reordered for oneDNN, one weight at a
 * time, replacing its attribute when every read of it is such a weight (else the reordered copy
 * is a new attribute, reported); then the linears run on the reordered attributes.
 */
export async function prepackLinearsOnOwnedModule(pass: OwnedPass): Promise<void> {
  const g = pass.run;
  const plan = planPackedLinears(g, true);
  const kernel = linearKernel();
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const reads = attributeReads(g);
  const byAttribute = new Map<string, PackedLinearRequest[]>();
  for (const r of plan.requests) {
    const name = attributeOf(g, r.weight);
    if (!name) outcomes.push({ id: r.id, lowered: false, reason: 'the weight is not one of the model\'s tensors' });
    else byAttribute.set(name, [...(byAttribute.get(name) ?? []), r]);
  }
  const reordered = new Map<string, PackedWeight>();
  for (const [name, requests] of byAttribute) {
    const transposed = requests[0].transposed;
    const same = requests.filter((r) => r.transposed === transposed);
    for (const r of requests) {
      if (r.transposed !== transposed) outcomes.push({ id: r.id, lowered: false, reason: 'the weight is read both plain and transposed' });
    }
    const weightOf = new Set(same.map((r) => r.linear));
    const inPlace = same.length === requests.length
      && (reads.get(name) ?? []).every((v) => v.uses.every((u) => weightOf.has(u.node)
        && u.index === u.node.argPosition(u.node.kind === 'aten::linear' ? 'weight' : 'mat2')));
    let tensor: NativeTensor;
    try {
      [tensor] = await computeOnModule(pass.module, g, [same[0].weight],
        (h, map) => [emitLinearPack(h, map.get(same[0].weight)!, transposed, same[0].rows, kernel)]);
    } catch (e) {
      const reason = `the weight could not be packed: ${(e as Error).message.split('\n')[0]}`;
      for (const r of same) outcomes.push({ id: r.id, lowered: false, reason });
      continue;
    }
    const attribute = inPlace ? name : `${name}_reordered`;
    nativeSync(() => pass.module.setAttribute(attribute, tensor));
    const p: PackedWeight = {
      attribute, format: kernel === 'torchgraph' ? 'torchgraph-linear' : 'onednn-linear', transposed, inPlace, bytes: tensor.nbytes,
      ...(kernel === 'torchgraph' ? { outFeatures: outFeatures(same[0]) } : {}),
    };
    reordered.set(name, p);
    pass.packed.set(name, p);
    tensor.dispose();
    // The replaced weight's pages go back now: freed chunks left between reordered weights of
    // other sizes would otherwise stay resident (ResNet-50's optimize peaked 27 MiB higher).
    releaseFreedMemory();
    for (const r of same) outcomes.push({ id: r.id, lowered: true, heldBytes: inPlace ? undefined : p.bytes, op: packedLinearOp(kernel) });
  }
  pass.lowering.packedLinears = outcomes;
  for (const r of planPackedLinears(g, true).requests) {
    const name = attributeOf(g, r.weight);
    const p = name === undefined ? undefined : reordered.get(name);
    if (!p || p.transposed !== r.transposed) continue;
    const { postOp } = lowerPackedLinear(g, r, p.inPlace ? r.weight : readAttribute(g, p.attribute), kernel);
    const outcome = outcomes.find((o) => o.id === r.id && o.lowered);
    if (outcome && postOp) outcome.postOp = postOp;
  }
  g.eliminateDeadCode();
}
