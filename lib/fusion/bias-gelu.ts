// A bias add and the GELU after it as one op of our own, torchgraph::bias_gelu (native/fused_ops.cc),
// as onnxruntime's BiasGelu / FastGelu: one pass over the GEMM's output instead of the bias written
// into it and a second pass for GELU. Where it applies on CPU:
//   linear(x, W, b) -> gelu      => linear(x, W) -> bias_gelu(b)   (a linear left on ATen: tiny GEMMs,
//   addmm(b, x, W) -> gelu       => mm(x, W) -> bias_gelu(b)        or no oneDNN, or a tanh GELU,
//   add(t, b) -> gelu            => bias_gelu(t, b)                  which _addmm_activation lacks)
// A linear on oneDNN's reordered weight (linear-packed.ts) already adds its bias in the GEMM, and
// aten::_addmm_activation applies an erf GELU in place on the GEMM's output: both stay as they are.
// Machine-specific (lowerings.ts): a saved model keeps the ATen ops.
import type { Graph, Node, Value } from '../core/ir';
import { constOf, constNumber, isNoneValue } from '../core/constants';
import { tensorInfo } from '../core/value-info';
import { OWN_OP_SCHEMAS, BIAS_GELU_KIND } from '../core/ops/own-schemas';
import { Emitter } from '../transforms/emit';
import { outcomeId, type LoweringOutcome } from './lower-fused';
import type { LoweringPass, OwnedPass } from './lowering-pass';

interface BiasedProducer {
  /** The producer's output without its bias, emitted before the GELU (undefined: the add's other operand is it). */
  emit(em: Emitter): Value;
  bias: Value;
}

/** Whether `b` is a 1-D bias over the last dim of `out` (float32, as the kernel takes). */
function isBiasOf(b: Value, out: Value): boolean {
  const bi = tensorInfo(b), oi = tensorInfo(out);
  return !!bi && !!oi && bi.shape.length === 1 && oi.shape.length >= 1 && bi.shape[0] === oi.shape[oi.shape.length - 1]
    && bi.dtype === 'float32';
}

/** The GELU's producer read as "something plus a bias", or why not. */
function biasedProducer(p: Node): BiasedProducer | string {
  if (p.kind === 'aten::linear') {
    const b = p.arg('bias');
    if (isNoneValue(b)) return 'the linear has no bias';
    return { bias: b!, emit: (em) => em.linear(p.arg('input')!, p.arg('weight')!, null) };
  }
  if (p.kind === 'aten::addmm') {
    if (constNumber(p.arg('beta')) !== 1 || constNumber(p.arg('alpha')) !== 1) return 'an addmm with beta or alpha other than 1';
    const b = p.arg('self')!;
    if (!isBiasOf(b, p.output)) return 'the addmm\'s input is not a bias of the output width';
    return { bias: b, emit: (em) => em.op('aten::mm', p.arg('mat1')!, p.arg('mat2')!) };
  }
  if (p.kind === 'aten::add' && p.inputs.length === 3 && constNumber(p.arg('alpha')) === 1) {
    const [a, b] = [p.arg('self')!, p.arg('other')!];
    const full = (v: Value) => tensorInfo(v)?.shape.join() === tensorInfo(p.output)?.shape.join();
    if (isBiasOf(b, p.output) && full(a)) return { bias: b, emit: () => a };
    if (isBiasOf(a, p.output) && full(b)) return { bias: a, emit: () => b };
    return 'neither operand of the add is a bias over the last dim';
  }
  return `${p.kind} is not a linear, addmm or add`;
}

/**
 * Every GELU of `g` after a linear, addmm or add of a bias that it alone reads, as bias_gelu; an
 * outcome for each GELU after such a producer (others are not candidates).
 */
export function lowerBiasGelus(g: Graph, device: string): LoweringOutcome[] {
  const outcomes: LoweringOutcome[] = [];
  for (const gelu of g.allNodes()) {
    if (gelu.isDestroyed || gelu.kind !== 'aten::gelu') continue;
    const p = gelu.arg('self')?.node;
    if (!p || !['aten::linear', 'aten::addmm', 'aten::add'].includes(p.kind)) continue;
    const id = outcomeId(gelu);
    const approximate = constOf(gelu.arg('approximate'));
    const out = tensorInfo(p.output);
    const refused = device !== 'cpu' ? `the fused kernel runs on CPU, not ${device}`
      : p.owningBlock !== gelu.owningBlock || p.output.uses.length !== 1 ? 'something else reads the GELU\'s input'
      : approximate !== 'none' && approximate !== 'tanh' ? 'GELU\'s approximation is not a constant'
      : !out || out.dtype !== 'float32' ? 'the GELU\'s input is not float32 (or has no recorded shape)'
      : undefined;
    const producer = refused ?? biasedProducer(p);
    if (typeof producer === 'string') { outcomes.push({ id, lowered: false, reason: producer }); continue; }
    const em = new Emitter(g, gelu, { id, scope: gelu.scope, attention: false });
    const x = producer.emit(em);
    const fused = g.withInsertPoint(gelu, () => g.createNode(BIAS_GELU_KIND, [x, producer.bias, em.str(approximate as string)],
      [{ kind: 'Tensor' }], {}, { scope: gelu.scope, schema: OWN_OP_SCHEMAS[BIAS_GELU_KIND] }));
    for (const n of [...em.emitted, fused]) n.meta.fused = { kind: 'bias_gelu', id };
    gelu.output.replaceAllUsesWith(fused.output);
    gelu.destroy();
    p.destroy();
    outcomes.push({ id, lowered: true });
  }
  return outcomes;
}

/** prepareGraphs' step: on the graph with its groups lowered and its linears packed, shapes propagated first. */
export async function biasGelusStep(pass: LoweringPass): Promise<void> {
  await pass.propagateShapes(pass.graph);
  pass.lowering.biasGelus = lowerBiasGelus(pass.graph, pass.device);
}

/** optimize's step: the run graph only (save() writes the portable one, with the ATen ops). */
export function biasGelusOnOwnedModule(pass: OwnedPass): Promise<void> {
  pass.lowering.biasGelus = lowerBiasGelus(pass.run, pass.module.device);
  return Promise.resolve();
}
