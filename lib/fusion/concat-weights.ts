// Packed weights for parallel projections whose weights are separate tensors (separate
// q/k/v nn.Linear, MultiheadAttention with kdim/vdim, gate/up projections): the weights (and
// biases) of each group are concatenated once, by running a graph of the module's own
// attributes through libtorch, and the result is held by the fused graph as a constant. The
// lowering (lower-fused.ts) then runs one GEMM over it. The bytes held are reported: they are
// extra weight memory, outside any run's peak.
import { moduleSelf, type Graph, type Node, type Value } from '../core/ir';
import type { NativeModule, NativeTensor } from '../torchscript/binding';
import { computeOnModule, moduleCone } from './weights-on-module';
import { isPackedRowSlices, linearHasBias as hasBias, type PackedWeights } from './lower-fused';
import { tensorInfo } from '../core/value-info';
import type { LoweringPass } from './lowering-pass';

export interface ConcatRequest {
  id: string;
  linears: Node[];
}

export interface ConcatPlan {
  requests: ConcatRequest[];
  /** Groups that need a concatenation but cannot have one, with the reason. */
  refused: Map<string, string>;
}

/** Which parallel-projection groups need their weights concatenated, and whether they can. */
export function planConcatenations(graph: Graph, groups: { kind: string; id: string; nodes: Node[] }[]): ConcatPlan {
  const self = moduleSelf(graph);
  const plan: ConcatPlan = { requests: [], refused: new Map() };
  for (const g of groups) {
    if (g.kind !== 'parallel_projection') continue;
    const linears = g.nodes.filter((n) => n.kind === 'aten::linear');
    if (linears.length < 2 || linears.some((l) => l.arg('input') !== linears[0].arg('input'))) continue;
    if (isPackedRowSlices(linears)) continue;
    if (!moduleCone(linears.flatMap(weightAndBias), self)) {
      plan.refused.set(g.id, 'the weights depend on the inputs, so they cannot be concatenated once ahead of the runs');
      continue;
    }
    plan.requests.push({ id: g.id, linears });
  }
  return plan;
}

/**
 * Concatenate each request's weights (and biases) along the output rows, once: a small graph
 * of the attribute reads and the concatenations runs on the module.
 */
export async function concatenateWeights(
  module: NativeModule, graph: Graph, requests: ConcatRequest[],
): Promise<Map<string, PackedWeights | string>> {
  const out = new Map<string, PackedWeights | string>();
  const usable = requests.filter((r) => {
    const biases = r.linears.map(hasBias);
    if (biases.some((b) => b !== biases[0])) { out.set(r.id, 'some projections have a bias and some do not'); return false; }
    return true;
  });
  if (usable.length === 0) return out;

  // A failure here costs the groups their fusion, not the whole preparation: they stay unfused
  // and say why.
  let tensors: NativeTensor[];
  try {
    tensors = await computeOnModule(module, graph, usable.flatMap((r) => r.linears.flatMap(weightAndBias)), (g, map) => {
      const cat = (vals: Value[]) => {
        const list = g.createNode('prim::ListConstruct', vals.map((v) => map.get(v)!), [{ kind: 'List', elem: { kind: 'Tensor' } }]).output;
        return g.createNode('aten::cat', [list, g.insertConstant(0n)], [{ kind: 'Tensor' }]).output;
      };
      return usable.flatMap((r) => [
        cat(r.linears.map((l) => l.arg('weight')!)),
        ...(hasBias(r.linears[0]) ? [cat(r.linears.map((l) => l.arg('bias')!))] : []),
      ]);
    });
  } catch (e) {
    const why = `the weights could not be concatenated: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    for (const r of usable) out.set(r.id, why);
    return out;
  }
  let k = 0;
  for (const r of usable) {
    const weight = tensors[k++];
    const bias = hasBias(r.linears[0]) ? tensors[k++] : null;
    const rows = r.linears.map((l) => nodeRows(l));
    if (rows.some((n) => n === undefined)) { out.set(r.id, 'weight shapes unknown'); continue; }
    out.set(r.id, { weight, bias, rows: rows as number[], bytes: weight.nbytes + (bias?.nbytes ?? 0) });
  }
  return out;
}

/** An aten::linear's weight and bias arguments (the bias may be None). */
function weightAndBias(l: Node): Value[] {
  return [l.arg('weight')!, l.arg('bias')!];
}

/** Output rows of a linear: its weight's first dimension, from the shape pass's value info. */
function nodeRows(l: Node): number | undefined {
  const n = tensorInfo(l.arg('weight')!)?.shape[0];
  return typeof n === 'number' ? n : undefined;
}

const CPU_CONCAT_REASON = 'separate weights: on CPU one GEMM over concatenated weights is no faster than separate GEMMs'
  + ' and keeps every output live longer (the concatenateProjections option of prepareGraphs forces it)';

/** prepareGraphs' step: the concatenated weights the projection groups' lowering reads. */
export async function concatenateProjectionsStep(pass: LoweringPass): Promise<void> {
  const plan = planConcatenations(pass.graph, pass.groups);
  for (const [id, why] of plan.refused) pass.concatenated.set(id, why);
  for (const [id, p] of await concatenateWeights(pass.module, pass.graph, plan.requests)) pass.concatenated.set(id, p);
}

/** Off: each group that would need concatenated weights says why it keeps separate GEMMs. */
export function concatenationsOff(pass: LoweringPass): void {
  const plan = planConcatenations(pass.graph, pass.groups);
  for (const [id, why] of plan.refused) pass.concatenated.set(id, why);
  for (const r of plan.requests) pass.concatenated.set(r.id, CPU_CONCAT_REASON);
}
