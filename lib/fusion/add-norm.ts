// A residual add and the layer norm (or RMSNorm) that reads its sum, as one op of our own:
// torchgraph::add_layer_norm / add_rms_norm (native/fused_ops.cc), one pass over each row where
// libtorch runs two ops and writes the sum to memory between them. The sum is the op's second
// result when something else reads it (the residual stream the next block adds to), as
// onnxruntime's SkipLayerNormalization does. Machine-specific (lowerings.ts): a saved model keeps
// the ATen ops, which plain PyTorch loads.
import type { Graph, Node, Value } from '../core/ir';
import { constOf, constNumber } from '../core/constants';
import { setValueInfo, tensorInfo } from '../core/value-info';
import { OWN_OP_SCHEMAS } from '../core/ops/own-schemas';
import { outcomeId, type LoweringOutcome } from './lower-fused';
import type { LoweringPass, OwnedPass } from './lowering-pass';

const NORMS: Record<string, { fused: string; schema: string }> = {
  'aten::layer_norm': { fused: 'torchgraph::add_layer_norm', schema: OWN_OP_SCHEMAS['torchgraph::add_layer_norm'] },
  'aten::rms_norm': { fused: 'torchgraph::add_rms_norm', schema: OWN_OP_SCHEMAS['torchgraph::add_rms_norm'] },
};

/** Why the add before `norm` cannot join it, or undefined when it can. `strict`: operand shapes must be recorded. */
function refusal(norm: Node, add: Node, strict: boolean): string | undefined {
  if (add.owningBlock !== norm.owningBlock) return 'the add is in another block';
  if (add.inputs.length !== 3 || constNumber(add.arg('alpha')) !== 1) return 'not an add of two tensors with alpha 1';
  const [a, b] = [add.arg('self')!, add.arg('other')!];
  if (a.type.kind !== 'Tensor' || b.type.kind !== 'Tensor') return 'an operand of the add is not a tensor';
  const out = tensorInfo(add.output);
  if (!out) return 'the sum has no recorded shape';
  if (out.dtype !== 'float32') return `the sum is ${out.dtype}; the fused kernel is float32`;
  for (const v of [a, b]) {
    const s = tensorInfo(v);
    if (!s ? strict : s.shape.join() !== out.shape.join() || s.dtype !== out.dtype) {
      return 'an operand of the add broadcasts or has another dtype (the fused kernel takes two tensors of one shape)';
    }
  }
  const ns = constOf(norm.arg('normalized_shape'));
  if (!Array.isArray(ns) || ns.join() !== out.shape.slice(out.shape.length - ns.length).join()) {
    return 'normalized_shape is not a constant equal to the trailing dims';
  }
  return undefined;
}

/**
 * Where the fused op can go: at the norm, or at the add when something reads the sum before the
 * norm (then every other argument of the norm must exist by the add); undefined where neither fits.
 */
function placement(norm: Node, add: Node): Node | undefined {
  // A reader inside a nested block (a prim::If's branch) counts where its enclosing node is.
  const at = (u: Node): Node | undefined => {
    let n: Node | null | undefined = u;
    while (n && n.owningBlock !== norm.owningBlock) n = n.owningBlock?.owningNode;
    return n ?? undefined;
  };
  const early = add.output.users().some((u) => { const a = at(u); return u !== norm && (!a || a.isBefore(norm)); });
  if (!early) return norm;
  const others = norm.inputs.filter((v) => v !== add.output);
  return others.every((v) => !v.node || (v.node.owningBlock === add.owningBlock && v.node.isBefore(add)))
    ? add : undefined;
}

/** The node of `norm`'s data input when it is an aten::add, else undefined. */
function addBefore(norm: Node): Node | undefined {
  const p = norm.arg('input')?.node;
  return p?.kind === 'aten::add' ? p : undefined;
}

/**
 * Every layer_norm / rms_norm of `g` whose input is a residual add, as the fused op; an outcome
 * for each such pair. `strict` (prepareGraphs, shapes freshly propagated): both operands' shapes
 * must be recorded; optimize's run graph may have lost some to earlier rewrites, and the kernel
 * itself falls back to the ATen ops for operands that broadcast at other shapes.
 */
export function lowerAddNorms(g: Graph, device: string, strict = true): LoweringOutcome[] {
  const outcomes: LoweringOutcome[] = [];
  for (const norm of g.allNodes()) {
    if (norm.isDestroyed) continue;
    const spec = NORMS[norm.kind];
    const add = spec ? addBefore(norm) : undefined;
    if (!spec || !add) continue;
    const id = outcomeId(norm);
    if (device !== 'cpu') { outcomes.push({ id, lowered: false, reason: `the fused kernel runs on CPU, not ${device}` }); continue; }
    const why = refusal(norm, add, strict);
    const at = why ? undefined : placement(norm, add);
    if (why || !at) {
      outcomes.push({ id, lowered: false, reason: why ?? 'the sum is read between the add and the norm' });
      continue;
    }
    const keepSum = add.output.users().some((u) => u !== norm);
    const rms = norm.kind === 'aten::rms_norm';
    const args: Value[] = [add.arg('self')!, add.arg('other')!, norm.arg('normalized_shape')!, norm.arg('weight')!];
    if (!rms) args.push(norm.arg('bias')!);
    const fused = g.withInsertPoint(at, () => g.createNode(spec.fused, [...args, norm.arg('eps')!, g.insertConstant(keepSum)],
      [{ kind: 'Tensor' }, { kind: 'Tensor' }], {}, { scope: norm.scope, schema: spec.schema }));
    fused.meta.fused = { kind: 'add_norm', id };
    // The results are the norm's and the sum's: their shapes carry over, so the next block's add,
    // which reads this sum, is judged on recorded shapes too.
    for (const [to, from] of [[fused.outputs[0], norm.output], [fused.outputs[1], add.output]] as const) {
      const info = tensorInfo(from);
      if (info && (to === fused.outputs[0] || keepSum)) setValueInfo(to, info);
    }
    norm.output.replaceAllUsesWith(fused.outputs[0]);
    norm.destroy();
    add.output.replaceAllUsesWith(fused.outputs[1]);
    add.destroy();
    outcomes.push({ id, lowered: true });
  }
  return outcomes;
}

/** prepareGraphs' step: on the graph with its groups lowered, shapes propagated first. */
export async function addNormsStep(pass: LoweringPass): Promise<void> {
  await pass.propagateShapes(pass.graph);
  pass.lowering.addNorms = lowerAddNorms(pass.graph, pass.device);
}

/** optimize's step: the run graph only (save() writes the portable one, with the ATen ops). */
export function addNormsOnOwnedModule(pass: OwnedPass): Promise<void> {
  pass.lowering.addNorms = lowerAddNorms(pass.run, pass.module.device, false);
  return Promise.resolve();
}
