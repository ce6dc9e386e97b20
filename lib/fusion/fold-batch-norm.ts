// Batch norm in eval mode folded into the convolution before it (conv_bn_act groups): the
// normalisation is an affine map per output channel, so W' = W * s and b' = (b - mean) * s + beta
// with s = gamma / sqrt(var + eps) (torch.nn.utils.fusion.fuse_conv_bn_weights' arithmetic).
// The folded weights are computed once, by running a small graph of the module's own attributes
// through libtorch, and held by the fused graph as constants, like concatenated projection
// weights (concat-weights.ts); the fused graph then skips one pass over every activation.
import { moduleSelf, type Graph, type Node, type Value } from '../core/ir';
import type { NativeModule, NativeTensor } from '../torchscript/binding';
import { constOf, isNoneValue } from '../core/constants';
import { tensorInfo } from '../core/value-info';
import { CONV_KINDS, METADATA_INPUT0 } from '../core/ops/classes';
import { Emitter } from '../transforms/emit';
import { computeOnModule, moduleCone } from './weights-on-module';
import type { LoweringOutcome } from './lower-fused';
import type { LoweringPass, OwnedPass } from './lowering-pass';
import { attributeOf, attributeReads } from './own-weights';
import { nativeOf, Tensor } from '../torchscript/tensor';
import { nativeSync } from '../core/errors';

export interface FoldRequest { id: string; conv: Node; bn: Node }

export interface FoldedWeights { weight: NativeTensor; bias: NativeTensor; bytes: number }

const FOLDED_BN_ARGS = ['weight', 'bias', 'running_mean', 'running_var', 'eps'];

/** Why this conv + batch norm pair cannot be folded, or null when it can. */
function refusal(conv: Node, bn: Node, self: Value | undefined): string | null {
  if (bn.kind !== 'aten::batch_norm') return `${bn.kind} is not aten::batch_norm`;
  if (constOf(bn.arg('training')!) !== false) return 'the batch norm is not in eval mode (training is not the constant False)';
  // Reads of its sizes (scripted BatchNorm's input-dim check) see the same shape after folding.
  const dataReaders = conv.outputs[0].uses.filter((u) => !METADATA_INPUT0.has(u.node.kind));
  if (bn.arg('input') !== conv.outputs[0] || dataReaders.length !== 1) return 'the convolution output is read by more than the batch norm';
  const transposed = conv.arg('transposed');
  if (transposed && constOf(transposed) !== false) {
    return 'a transposed convolution keeps its batch norm (weights are laid out by input channel)';
  }
  const w = tensorInfo(conv.arg('weight')!);
  if (!w || w.dtype !== 'float32') return 'the convolution weight is not a float32 tensor of known shape';
  if (conv.argPosition('bias') < 0 || bn.argPosition('eps') < 0) return `no bias or eps argument in ${conv.kind} / ${bn.kind}`;
  const reads = [...FOLDED_BN_ARGS.map((a) => bn.arg(a)), conv.arg('weight'), conv.arg('bias')].filter((v): v is Value => !isNoneValue(v));
  if (!moduleCone(reads, self)) return 'the weights depend on the inputs, so they cannot be folded once ahead of the runs';
  return null;
}

/** The conv_bn_act groups whose batch norm can be folded, and why the others cannot. */
export function planBatchNormFolds(
  graph: Graph, groups: { kind: string; id: string; nodes: Node[] }[],
): { requests: FoldRequest[]; refused: Map<string, string> } {
  const self = moduleSelf(graph);
  const requests: FoldRequest[] = [];
  const refused = new Map<string, string>();
  for (const g of groups) {
    if (g.kind !== 'conv_bn_act') continue;
    const conv = g.nodes.find((n) => CONV_KINDS.has(n.kind));
    const bn = g.nodes.find((n) => n.kind.includes('batch_norm'));
    if (!conv || !bn) continue;
    const why = refusal(conv, bn, self);
    if (why) refused.set(g.id, why);
    else requests.push({ id: g.id, conv, bn });
  }
  return { requests, refused };
}

/** Emits W' and b' of one request into `g` (values mapped from the model graph through `map`). */
function emitFold(g: Graph, r: FoldRequest, map: Map<Value, Value>): Value[] {
  const T = { kind: 'Tensor' } as const;
  const op = (kind: string, ...xs: Value[]) => g.createNode(kind, xs, [T]).output;
  // Scripted modules type their parameters Optional[Tensor]; the shape run saw tensors there.
  const m = (v: Value | undefined) => {
    if (isNoneValue(v)) return undefined;
    const mv = map.get(v!)!;
    return mv.type.kind === 'Optional' ? g.createNode('prim::unchecked_cast', [mv], [T]).output : mv;
  };
  const one = g.insertConstant(1n);
  const inv = op('aten::rsqrt', op('aten::add', m(r.bn.arg('running_var'))!, map.get(r.bn.arg('eps')!)!, one));
  const gamma = m(r.bn.arg('weight'));
  const scale = gamma ? op('aten::mul', gamma, inv) : inv;
  const rank = tensorInfo(r.conv.arg('weight')!)!.shape.length;
  const dims = [-1n, ...Array(rank - 1).fill(1n)].map((d) => g.insertConstant(d));
  const shape = g.createNode('prim::ListConstruct', dims, [{ kind: 'List', elem: { kind: 'Int' } }]).output;
  const weight = op('aten::mul', m(r.conv.arg('weight'))!, op('aten::reshape', scale, shape));
  const bias = m(r.conv.arg('bias'));
  const mean = m(r.bn.arg('running_mean'))!;
  const shifted = bias ? op('aten::sub', bias, mean, one) : op('aten::neg', mean);
  const beta = m(r.bn.arg('bias'));
  const scaled = op('aten::mul', shifted, scale);
  return [weight, beta ? op('aten::add', scaled, beta, one) : scaled];
}

/** The folded weights of each request, computed once on the module; a failure is the group's reason. */
export async function foldBatchNorms(
  module: NativeModule, graph: Graph, requests: FoldRequest[],
): Promise<Map<string, FoldedWeights | string>> {
  const out = new Map<string, FoldedWeights | string>();
  if (!requests.length) return out;
  const reads = requests.flatMap((r) => [...FOLDED_BN_ARGS.map((a) => r.bn.arg(a)), r.conv.arg('weight'), r.conv.arg('bias')])
    .filter((v): v is Value => !isNoneValue(v));
  let tensors: NativeTensor[];
  try {
    tensors = await computeOnModule(module, graph, reads, (g, map) => requests.flatMap((r) => emitFold(g, r, map)));
  } catch (e) {
    const why = `the batch norm could not be folded: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    for (const r of requests) out.set(r.id, why);
    return out;
  }
  requests.forEach((r, i) => {
    const [weight, bias] = [tensors[2 * i], tensors[2 * i + 1]];
    out.set(r.id, { weight, bias, bytes: weight.nbytes + bias.nbytes });
  });
  return out;
}

/** The group's convolution reads the folded weights and its batch norm goes; the activation stays. */
export function lowerConvBatchNorm(g: Graph, nodes: Node[], id: string, folded: FoldedWeights | string | undefined): LoweringOutcome {
  const conv = nodes.find((n) => CONV_KINDS.has(n.kind));
  const bn = nodes.find((n) => n.kind.includes('batch_norm'));
  if (!conv || !bn) return { id, lowered: false, reason: 'no batch norm to fold: the convolution and its activation run as they are' };
  if (folded === undefined || typeof folded === 'string') return { id, lowered: false, reason: folded ?? 'the batch norm was not folded' };
  const em = new Emitter(g, conv, { id, scope: conv.scope, attention: false });
  em.role = 'folded_batch_norm';
  conv.replaceInput(conv.argPosition('weight'), em.tensorConstant(folded.weight));
  conv.replaceInput(conv.argPosition('bias'), em.tensorConstant(folded.bias));
  bn.outputs[0].replaceAllUsesWith(conv.outputs[0]);
  bn.destroy();
  return { id, lowered: true, heldBytes: folded.bytes };
}

/** prepareGraphs' step: the folded weights the conv_bn_act groups' lowering reads. */
export async function foldBatchNormsStep(pass: LoweringPass): Promise<void> {
  const plan = planBatchNormFolds(pass.graph, pass.groups);
  for (const [id, why] of plan.refused) pass.folded.set(id, why);
  for (const [id, f] of await foldBatchNorms(pass.module, pass.graph, plan.requests)) pass.folded.set(id, f);
}

/**
 * optimize's step: batch norms folded one at a time on the owned module. Each folded weight is
 * computed, the pair lowered at once, and the plain weight and the batch norm's tensors released
 * as soon as nothing reads them, so folding never holds a second copy of the convolution
 * weights. In place on `pass.portable`; the folded weights are graph constants until the weights
 * move again (own-weights.ts), which the result asks for.
 */
export async function foldBatchNormsOnOwnedModule(pass: OwnedPass): Promise<{ movedWeights: boolean }> {
  const g = pass.portable;
  const groups = pass.partition(g);
  const plan = planBatchNormFolds(g, groups);
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const released = Tensor.empty([0], 'float32');
  try {
    for (const r of plan.requests) {
      const folded = (await foldBatchNorms(pass.module, g, [r])).get(r.id);
      const reads = [r.conv, r.bn].flatMap((n) => n.inputs).filter((v) => attributeOf(g, v) !== undefined);
      const o = lowerConvBatchNorm(g, groups.find((x) => x.id === r.id)!.nodes, r.id, folded);
      outcomes.push(o);
      if (!o.lowered) continue;
      for (const v of reads) {
        if (v.hasUses()) continue;
        const name = attributeOf(g, v)!;
        v.node!.destroy();
        if (!(attributeReads(g).get(name) ?? []).length) nativeSync(() => pass.module.setAttribute(name, nativeOf(released)));
      }
    }
  } finally {
    released.dispose();
  }
  if (outcomes.length) pass.lowering.foldedBatchNorms = outcomes;
  return { movedWeights: outcomes.some((o) => o.lowered) };
}
