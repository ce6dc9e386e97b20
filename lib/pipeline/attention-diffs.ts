// Each attention's own max abs diff, for the report's attention table: the output of its core
// (the explicit core's context matmul in the unfused graph; SDPA, or the core kept explicit, in
// the fused graph), fused against unfused, on the run's inputs. The whole model's diff says only
// that some attention differs; this says which. Differences from earlier layers reach later
// cores too, so a later attention's figure includes them.
import type { Graph, Value } from '../core/ir';
import { TupleType } from '../core/ir/types';
import type { Module } from '../torchscript/module';
import type { NativeValue } from '../torchscript/binding';
import { native, nativeSync } from '../core/errors';
import { flattenTensors, fromNativeValue, nativeOf, type Tensor } from '../torchscript/tensor';
import { maxAbsDiff } from './compare';

/** The roles the decomposition and the attention-core lowering give a core's output (node.meta.attention.role). */
const CORE_OUTPUT_ROLES: ReadonlySet<string> = new Set(['context', 'fused_attention']);

/** Each attention's core output, by attention id; top-level nodes only (a value inside a branch cannot be an output). */
function coreOutputs(g: Graph): Map<string, Value> {
  const out = new Map<string, Value>();
  for (const n of g.nodes()) {
    const a = n.meta.attention as { id?: unknown; role?: unknown } | undefined;
    if (a && typeof a.id === 'string' && typeof a.role === 'string' && CORE_OUTPUT_ROLES.has(a.role) && n.outputs.length === 1) {
      out.set(a.id, n.outputs[0]);
    }
  }
  return out;
}

/** A copy of `g` whose outputs are copies of the cores' outputs, taken where each is made (an op
 * made in place later, where its input dies, cannot change them), run once. */
async function coreValues(module: Module, g: Graph, ids: readonly string[], args: NativeValue[]): Promise<Tensor[]> {
  const copy = g.clone();
  const cores = coreOutputs(copy);
  const copies = ids.map((id) => {
    const v = cores.get(id)!;
    return copy.withInsertPoint(v.node!.next ?? copy.block, () => {
      const none = copy.insertConstant(null);
      return copy.createNode('aten::clone', [v, none], [v.type]).output;
    });
  });
  // A built graph returns one value: several go out as one tuple.
  const tuple = () => copy.createNode('prim::TupleConstruct', copies, [TupleType(copies.map((v) => v.type))]).output;
  copy.setOutputs([copies.length === 1 ? copies[0] : tuple()]);
  copy.eliminateDeadCode();
  const built = nativeSync(() => module._native.buildGraph(copy.toData()));
  try {
    const r = await native(() => built.run(args, {}));
    return flattenTensors(fromNativeValue(r.output));
  } finally {
    built.dispose();
  }
}

/** Max abs diff of each attention's core output, fused against unfused, by attention id; an attention whose
 * core is not found in both graphs, or whose outputs differ in shape, is left out. */
export async function attentionDiffs(module: Module, graphs: { unfused: Graph; fused: Graph }, inputs: Tensor[]):
Promise<Record<string, number | null>> {
  const unfused = coreOutputs(graphs.unfused);
  const fused = coreOutputs(graphs.fused);
  const ids = [...unfused.keys()].filter((id) => fused.has(id));
  if (!ids.length) return {};
  const moved = inputs.map((t) => (t.device === module.device ? t : t.to(module.device)));
  const args = module._resolveInputs(moved.map(nativeOf));
  let a: Tensor[] = [];
  let b: Tensor[] = [];
  try {
    a = await coreValues(module, graphs.unfused, ids, args);
    b = await coreValues(module, graphs.fused, ids, args);
    const out: Record<string, number | null> = {};
    ids.forEach((id, i) => {
      if (a[i] && b[i] && a[i].shape.join('x') === b[i].shape.join('x')) out[id] = maxAbsDiff([b[i]], [a[i]]);
    });
    return out;
  } finally {
    [...a, ...b].forEach((t) => t.dispose());
    moved.forEach((t, i) => { if (t !== inputs[i]) t.dispose(); });
  }
}
