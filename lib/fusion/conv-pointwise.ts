// Convolutions on oneDNN's pointwise kernels, as PyTorch's inductor runs them on CPU with
// freezing: conv [+ residual add] [+ activation] becomes one mkldnn::_convolution_pointwise
// over a weight reordered once (mkldnn::_reorder_convolution_weight, held by the fused graph),
// with the add and the activation applied as oneDNN post-ops on the output while it is in
// cache. With a prepacked weight the kernel writes channels last whatever its input's layout,
// so activations stay channels last from one convolution to the next (channels-last.ts puts
// the graph's own layout back where the values leave that region).
//
// Measured on this project's 2-core CPU (transformers' ResNet-18 config, batch 2 at 224, Python,
// medians of 11): eager 37.1 ms, these kernels on dense weights 29.7 ms, on prepacked weights
// 25.1 ms, inductor with freezing 34.5 ms.
//
// A convolution with few input channels (an image stem or patch embedding: RGB in) runs on
// torchgraph::conv2d instead where `convKernel` picks ours: oneDNN's kernels vectorize over input
// channels. On AVX2 (AMD EPYC, Zen 3, 2 threads; `npm run bench -- --gemm`, one op in a built
// graph) ResNet's 7x7 stride-2 stem at batch 2 ran 2.67-2.68 ms on ours against 3.27 on oneDNN's
// (onnxruntime's: 2.8 in its profile), MobileNet's 3x3 stride-2 stem 0.24 against 0.25-0.26,
// ViT-B/16's 16x16 patches 1.50-1.52 against 1.58-1.60. Ours reads each window row (kw x C floats,
// contiguous in a padded channels-last copy) where it lies. It has no binary post-op (a stem has
// no residual add) and takes the same activations.
import { dataInput, isInPlaceKind, moduleSelf, Value, type Graph, type Node } from '../core/ir';
import type { NativeModule, NativeTensor } from '../torchscript/binding';
import { constNumber, constOf, isNoneValue, tensorConstantOf } from '../core/constants';
import { tensorInfo } from '../core/value-info';
import { LAYOUT_KINDS, METADATA_INPUT0, POINTWISE_CONV_KINDS } from '../core/ops/classes';
import { CONV2D_KIND, OWN_OP_SCHEMAS, PACK_CONV2D_KIND } from '../core/ops/own-schemas';
import { kernelChoice, type KernelChoice } from './kernel-choice';
import { Emitter } from '../transforms/emit';
import { asTensor, computeEachOnModule, moduleCone } from './weights-on-module';
import { outcomeId, type LoweringOutcome } from './lower-fused';
import type { LoweringPass, OwnedPass } from './lowering-pass';
import { restoreLayouts } from './channels-last';
import { soleDataUser, unaryOf, type UnaryPostOp } from './onednn-post-ops';
import { attributeOf, attributeReads, readAttribute } from './own-weights';
import { nativeSync, TorchGraphError } from '../core/errors';
import { releaseFreedMemory } from '../torchscript/binding';

/** After a binary post-op, oneDNN's pointwise kernel applies ReLU only ("Unary Fusion behavior undefined" otherwise). */
const UNARY_AFTER_ADD = new Set(['relu']);

const CONV_OPS = new Set(['aten::_convolution', 'aten::convolution', 'aten::conv2d']);

/** Input channels up to which a convolution is an image stem's, for torchgraph::conv2d. */
const FEW_CHANNELS = 4;

export type ConvKernel = KernelChoice;

/** The kernel for convolutions with few input channels (kernel-choice.ts): TORCHGRAPH_CONV_KERNEL forces one. */
export const convKernel = (): ConvKernel => kernelChoice('TORCHGRAPH_CONV_KERNEL');

/** The kernel `r` runs on (packing and lowering ask alike). */
const kernelOf = (r: ConvPointwiseRequest): ConvKernel => (r.stem ? convKernel() : 'onednn');

export interface ConvPointwiseRequest {
  id: string;
  conv: Node;
  /** An image stem (few input channels, ungrouped, undilated, no residual add): convKernel() picks its kernel. */
  stem: boolean;
  x: Value; weight: Value; bias: Value | undefined;
  /** (out, in, kh, kw). */
  weightShape: number[];
  padding: number[]; stride: number[]; dilation: number[]; groups: number;
  /** The residual add folded in as a binary post-op (the skip connection is its other operand). */
  add?: Node;
  act?: Node; unary?: UnaryPostOp;
  /** The node whose output the fused op replaces. */
  last: Node;
}

/** Shape and dtype of a tensor: recorded by shape propagation, or held by a constant a lowering made (folded weights). */
function tensorOf(v: Value): { shape: number[]; dtype: string } | undefined {
  return tensorConstantOf(v) ?? tensorInfo(v);
}

/** Metadata reads that see the same answer on the fused output (its strides differ, its shape, dtype and device do not). */
const SAME_FOR_Y = new Set([...METADATA_INPUT0].filter((k) => !/is_contiguous|stride/.test(k)));

function pair(v: Value | undefined): number[] | undefined {
  if (!v) return undefined;
  const c = constOf(v);
  const xs = Array.isArray(c) ? c.map(Number) : typeof c === 'bigint' || typeof c === 'number' ? [Number(c)] : undefined;
  if (!xs || xs.some((x) => !Number.isInteger(x))) return undefined;
  return xs.length === 1 ? [xs[0], xs[0]] : xs.length === 2 ? xs : undefined;
}

/** The residual add after `y` (alpha 1, the other operand of y's shape), or why not. */
function residualOf(add: Node, y: Value): true | string {
  if (add.kind !== 'aten::add' && add.kind !== 'aten::add_') return `${add.kind} is not an add`;
  const alpha = add.arg('alpha');
  if (alpha && constNumber(alpha) !== 1) return 'an add with alpha other than 1';
  const [a, b] = [add.arg('self')!, add.arg('other')!];
  const other = a === y ? b : a;
  // In place on the convolution's output (`out += identity`) writes y, which the fused op replaces.
  if (add.kind === 'aten::add_' && a !== y) return 'an in-place add into the skip connection';
  const oi = tensorOf(other), yi = tensorOf(y);
  if (!oi || !yi || oi.dtype !== 'float32' || oi.shape.join() !== yi.shape.join()) {
    return 'the skip connection is not a float32 tensor of the output\'s shape';
  }
  return true;
}

/** Why `conv` cannot run on a prepacked oneDNN kernel, or its geometry. */
function convGeometry(conv: Node, self: Value | undefined): Omit<ConvPointwiseRequest, 'id' | 'conv' | 'last' | 'stem'> | string {
  if (!CONV_OPS.has(conv.kind)) return `${conv.kind} is not a plain convolution`;
  const transposed = conv.arg('transposed');
  if (transposed && constOf(transposed) !== false) return 'a transposed convolution';
  const x = conv.arg('input')!, weight = conv.arg('weight')!;
  const xi = tensorOf(x), wi = tensorOf(weight);
  if (!xi || !wi || xi.shape.length !== 4 || wi.shape.length !== 4) return 'not a 2-D convolution of known shapes';
  if (xi.dtype !== 'float32' || wi.dtype !== 'float32') return 'not float32';
  const [padding, stride, dilation] = [pair(conv.arg('padding')), pair(conv.arg('stride')), pair(conv.arg('dilation'))];
  const groups = constNumber(conv.arg('groups'));
  if (!padding || !stride || !dilation || groups === undefined) {
    return 'padding, stride, dilation or groups is not a constant (or padding is a string)';
  }
  const bias = isNoneValue(conv.arg('bias')) ? undefined : conv.arg('bias');
  if (!moduleCone(bias ? [weight, bias] : [weight], self)) {
    return 'the weights depend on the inputs, so they cannot be packed once ahead of the runs';
  }
  return { x, weight, bias, padding, stride, dilation, groups, weightShape: wi.shape };
}

/** One conv_bn_act group (its batch norm already folded) as a pointwise-kernel request, or why not. */
function requestFor(id: string, nodes: Node[], self: Value | undefined): ConvPointwiseRequest | string {
  const alive = nodes.filter((n) => !n.isDestroyed);
  const conv = alive.find((n) => CONV_OPS.has(n.kind));
  if (!conv) return 'no plain convolution in the group';
  if (alive.some((n) => n.kind.includes('batch_norm'))) return 'its batch norm is not folded';
  const geometry = convGeometry(conv, self);
  if (typeof geometry === 'string') return geometry;
  const req: ConvPointwiseRequest = { id, conv, stem: false, ...geometry, last: conv };
  let next = soleDataUser(conv.output);
  if (next && alive.includes(next) && next.kind.startsWith('aten::add')) {
    const r = residualOf(next, conv.output);
    if (r === true) {
      Object.assign(req, { add: next, last: next });
      next = soleDataUser(next.output);
    } else {
      next = undefined;
    }
  }
  if (next && alive.includes(next) && dataInput(next) === req.last.output) {
    const unary = unaryOf(next);
    if (typeof unary !== 'string' && (!req.add || UNARY_AFTER_ADD.has(unary.attr))) Object.assign(req, { act: next, unary, last: next });
  }
  // The fused op runs at `last` and reads x and the skip connection there: nothing between may
  // write either in place (or a view of it).
  const own = new Set([conv, req.add, req.act]);
  const read = new Set([storageOf(req.x), ...(req.add ? req.add.inputs.slice(0, 2).filter((v) => v !== conv.output).map(storageOf) : [])]);
  for (let n = conv.next; n && n !== req.last; n = n.next) {
    const hit = own.has(n) ? undefined : inPlaceWriteOf(n, read);
    if (hit) return `${hit.kind} between the convolution and its post-ops writes one of their inputs`;
  }
  req.stem = req.weightShape[1] <= FEW_CHANNELS && req.groups === 1 && req.dilation.every((d) => d === 1) && !req.add;
  return req;
}

/** The value whose storage `v` shares: followed back through views and in-place ops. */
function storageOf(v: Value): Value {
  for (let n = v.node; n && (LAYOUT_KINDS.has(n.kind) || isInPlaceKind(n.kind)) && n.inputs.length; n = v.node) v = dataInput(n);
  return v;
}

/** The node (n, or one in its blocks) writing in place into the storage of a value of `read`. */
function inPlaceWriteOf(n: Node, read: ReadonlySet<Value>): Node | undefined {
  if ((isInPlaceKind(n.kind) || /\(\w+!/.test(n.schema ?? '')) && n.inputs.length && read.has(storageOf(dataInput(n)))) return n;
  for (const b of n.blocks) for (const m of b.nodes()) { const hit = inPlaceWriteOf(m, read); if (hit) return hit; }
  return undefined;
}

/**
 * The conv_bn_act groups, and the convolutions in no group (a shortcut's 1x1 convolution once
 * its batch norm is folded), that can run on oneDNN's pointwise kernels; why the others cannot.
 */
export function planConvPointwise(
  graph: Graph, groups: { kind: string; id: string; nodes: Node[] }[],
): { requests: ConvPointwiseRequest[]; refused: Map<string, string> } {
  const self = moduleSelf(graph);
  const requests: ConvPointwiseRequest[] = [];
  const refused = new Map<string, string>();
  const grouped = new Set(groups.flatMap((g) => g.nodes));
  const alone = graph.nodes().filter((n) => CONV_OPS.has(n.kind) && !grouped.has(n))
    .map((n) => ({ kind: 'conv_bn_act', id: outcomeId(n), nodes: [n] }));
  for (const g of [...groups, ...alone]) {
    if (g.kind !== 'conv_bn_act') continue;
    const r = requestFor(g.id, g.nodes, self);
    if (typeof r === 'string') refused.set(g.id, r);
    else requests.push(r);
  }
  return { requests, refused };
}

/**
 * Each request's weight packed once: in oneDNN's blocked layout for its input's shape, or in our
 * GEMM's panels (torchgraph::conv2d); a failure is every request's reason.
 */
export function packConvWeights(
  module: NativeModule, graph: Graph, requests: ConvPointwiseRequest[],
): Promise<Map<string, NativeTensor | string>> {
  return computeEachOnModule(module, graph, requests, (r) => [r.weight], (g, map, r) => {
    const ints = (xs: number[]) => g.createNode(
      'prim::ListConstruct', xs.map((x) => g.insertConstant(BigInt(x))), [{ kind: 'List', elem: { kind: 'Int' } }],
    ).output;
    if (kernelOf(r) === 'torchgraph') {
      return g.createNode(PACK_CONV2D_KIND, [asTensor(g, map.get(r.weight)!)], [{ kind: 'Tensor' }], {},
        { schema: OWN_OP_SCHEMAS[PACK_CONV2D_KIND] }).output;
    }
    return g.createNode('mkldnn::_reorder_convolution_weight', [
      asTensor(g, map.get(r.weight)!), ints(r.padding), ints(r.stride), ints(r.dilation),
      g.insertConstant(BigInt(r.groups)), ints(tensorOf(r.x)!.shape)], [{ kind: 'Tensor' }]).output;
  }, 'the convolution weights could not be prepacked');
}

/**
 * The request's nodes become one mkldnn::_convolution_pointwise (plain, or .binary with the skip
 * connection) on the packed weight: a tensor (held by the graph as a constant), or a value of the
 * graph that holds it (an optimized model's attribute).
 */
export function lowerConvPointwise(g: Graph, r: ConvPointwiseRequest, packed: NativeTensor | Value | string | undefined): LoweringOutcome {
  if (packed === undefined || typeof packed === 'string') {
    return { id: r.id, lowered: false, reason: packed ?? 'the weight was not prepacked' };
  }
  const em = new Emitter(g, r.last, { id: r.id, scope: r.conv.scope, attention: false });
  em.role = 'conv_pointwise';
  const ints = (xs: number[]) => em.intList(xs);
  const str = (s: string | null) => (s === null ? em.none() : em.str(s));
  const scalars = (xs: number[]) => em.list(xs.map((x) => em.constant(x)), { kind: 'Optional', elem: { kind: 'Number' } });
  // Read now, not at planning: an earlier lowering may have replaced the producer of either.
  const x = r.conv.arg('input')!;
  const other = r.add && (r.add.arg('self') === r.conv.output ? r.add.arg('other') : r.add.arg('self'));
  const w = packed instanceof Value ? packed : em.tensorConstant(packed);
  const bias = r.bias ?? em.none();
  const geometry = [ints(r.padding), ints(r.stride), ints(r.dilation), em.int(r.groups)];
  const unary = r.unary ?? { attr: 'none', scalars: [], algorithm: null };
  const y = kernelOf(r) === 'torchgraph'
    ? em.op(CONV2D_KIND, x, w, bias, em.int(r.weightShape[0]), ints(r.weightShape.slice(2)), ints(r.padding), ints(r.stride),
        str(unary.attr), scalars(unary.scalars), str(unary.algorithm))
    : r.add
      ? em.op('mkldnn::_convolution_pointwise', x, other!, w, bias, ...geometry, str('add'), em.none(),
          r.unary ? str(unary.attr) : em.none(), scalars(unary.scalars), str(unary.algorithm))
      : em.op('mkldnn::_convolution_pointwise', x, w, bias, ...geometry, str(unary.attr), scalars(unary.scalars), str(unary.algorithm));
  r.last.output.replaceAllUsesWith(y);
  // Reads of the replaced values' rank (scripted BatchNorm's input-dim check, which runs before
  // y exists) are 4; later reads of their shape, dtype or device read y's, the same. Reads of
  // their strides keep the original op alive.
  for (const n of [r.act, r.add, r.conv]) {
    if (!n || n === r.last) continue;
    for (const u of [...n.output.uses]) {
      const reader = u.node;
      if (reader.kind === 'aten::dim') {
        reader.output.replaceAllUsesWith(g.withInsertPoint(reader, () => g.insertConstant(4n)));
        reader.destroy();
      } else if (SAME_FOR_Y.has(reader.kind) && reader.owningBlock === y.node!.owningBlock && y.node!.isBefore(reader)) {
        reader.replaceInput(u.index, y);
      }
    }
  }
  for (const n of [r.act, r.add, r.conv]) if (n && !n.hasUses()) n.destroy();
  for (const n of em.emitted) n.meta.fused = { kind: 'conv_pointwise', id: r.id };
  return {
    id: r.id, lowered: true, heldBytes: packed instanceof Value ? undefined : packed.nbytes,
    op: kernelOf(r) === 'torchgraph' ? CONV2D_KIND : 'mkldnn::_convolution_pointwise',
  };
}

/** The reason every lowered convolution of `outcomes` is refused when the layouts cannot be restored. */
function layoutsRefused(outcomes: LoweringOutcome[], e: unknown): LoweringOutcome[] {
  const reason = `activations cannot stay channels last: ${(e as Error).message}`;
  return outcomes.map((o) => (o.lowered ? { id: o.id, lowered: false, reason } : o));
}

/**
 * prepareGraphs' step: the conv_bn_act groups onto the pointwise kernels over weights prepacked
 * as graph constants, on a copy (a channels-last value written in place leaves the graph as it
 * was); the copy replaces the pass's graph when the layouts are restored.
 */
export async function lowerConvolutionsStep(pass: LoweringPass): Promise<void> {
  const g = pass.graph.clone();
  const plan = planConvPointwise(g, pass.partition(g));
  const weights = await packConvWeights(pass.module, g, plan.requests);
  const refused = [...plan.refused].map(([id, reason]): LoweringOutcome => ({ id, lowered: false, reason }));
  let outcomes = [...plan.requests.map((r) => lowerConvPointwise(g, r, weights.get(r.id))), ...refused];
  try {
    restoreLayouts(g, g.allNodes().filter((n) => POINTWISE_CONV_KINDS.has(n.kind)).map((n) => n.output));
  } catch (e) {
    outcomes = layoutsRefused(outcomes, e);
  }
  g.eliminateDeadCode();
  g.verify();
  if (!outcomes.length) return;
  const off = pass.convolutionsOff;
  pass.lowering.convolutions = off ? outcomes.map((o) => ({ id: o.id, lowered: false, reason: o.reason ?? off })) : outcomes;
  if (!off && outcomes.some((o) => o.lowered)) pass.graph = g;
}

/**
 * optimize's step: the same lowering on `pass.run` over the owned module's plain weights; only
 * when the layouts can be restored are the weights prepacked, one at a time, each replacing its
 * attribute where only its convolution reads it (else the prepacked copy is a new attribute).
 */
export async function prepackConvolutionsOnOwnedModule(pass: OwnedPass): Promise<void> {
  const attempt = pass.run.clone();
  const plan = planConvPointwise(attempt, pass.partition(attempt));
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const lowered: ConvPointwiseRequest[] = [];
  for (const r of plan.requests) {
    if (!attributeOf(attempt, r.weight)) {
      outcomes.push({ id: r.id, lowered: false, reason: 'the weight is not one of the model\'s tensors' });
      continue;
    }
    const o = lowerConvPointwise(attempt, r, r.weight);
    outcomes.push(o);
    if (o.lowered) lowered.push(r);
  }
  if (outcomes.length) pass.lowering.convolutions = outcomes;
  if (!lowered.length) return;
  try {
    restoreLayouts(attempt, attempt.allNodes().filter((n) => POINTWISE_CONV_KINDS.has(n.kind)).map((n) => n.output));
  } catch (e) {
    pass.lowering.convolutions = layoutsRefused(outcomes, e);
    return;
  }
  attempt.eliminateDeadCode();
  const reads = attributeReads(attempt);
  const prepacked = new Set<string>();
  for (const r of lowered) {
    const name = attributeOf(attempt, r.weight)!;
    const users = (reads.get(name) ?? []).flatMap((v) => v.uses);
    const weightOf = (n: Node) => n.argPosition(n.kind === CONV2D_KIND ? 'packed_weight' : 'W');
    const inPlace = !prepacked.has(name) && users.every((u) => POINTWISE_CONV_KINDS.has(u.node.kind) && u.index === weightOf(u.node));
    const tensor = (await packConvWeights(pass.module, attempt, [r])).get(r.id);
    if (tensor === undefined || typeof tensor === 'string') {
      throw new TorchGraphError('ERR_TORCH', `optimize: the weight ${name} could not be prepacked: ${tensor ?? 'no result'}`);
    }
    const attribute = inPlace ? name : `${name}_prepacked_${pass.packed.size}`;
    nativeSync(() => pass.module.setAttribute(attribute, tensor));
    if (!inPlace) {
      const conv = r.weight.uses.find((u) => POINTWISE_CONV_KINDS.has(u.node.kind));
      conv?.node.replaceInput(conv.index, readAttribute(attempt, attribute));
    }
    prepacked.add(name);
    pass.packed.set(attribute, kernelOf(r) === 'torchgraph'
      ? { attribute, format: 'torchgraph-conv2d', transposed: false, inPlace, bytes: tensor.nbytes, weightSize: r.weightShape }
      : { attribute, format: 'onednn-conv', transposed: false, inPlace, bytes: tensor.nbytes });
    tensor.dispose();
    releaseFreedMemory();  // as in prepackLinearsOnOwnedModule (linear-packed.ts)
  }
  pass.run = attempt;
}
