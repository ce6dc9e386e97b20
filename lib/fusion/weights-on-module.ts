// Weights computed once from a module's own tensors (concatenated projections, folded batch
// norms): a small graph of `self`, the attribute reads and whatever the caller adds, run once
// on the module. The results are held by the fused graph as constants.
import { Graph, moduleSelf, type Node, type Value } from '../core/ir';
import { copyNodeBefore } from '../transforms/inline-modules';
import type { NativeModule, NativeTensor } from '../torchscript/binding';
import { native, nativeSync } from '../core/errors';

/**
 * The nodes computing `vals` from the module alone (attribute reads and pure ops on them, such
 * as the chunked in_proj_bias), in graph order; undefined when any depends on an input.
 */
export function moduleCone(vals: Value[], self: Value | undefined): Node[] | undefined {
  const seen = new Set<Node>();
  const visit = (v: Value): boolean => {
    if (v === self) return true;
    const n = v.node;
    if (!n || n.owningBlock !== n.graph.block || n.blocks.length || n.hasSideEffects()) return false;
    if (seen.has(n)) return true;
    seen.add(n);
    return n.inputs.every(visit);
  };
  if (!self || !vals.every(visit)) return undefined;
  return self.owningBlock!.nodes().filter((n) => seen.has(n));
}

/**
 * Runs, once on `module`, a graph holding copies of the nodes of `graph` that compute `reads`
 * (all in its module cone) and the results `emit` adds from their copies (`map` takes a value
 * of `graph` to its copy). Resolves to the result tensors in order; rejects when libtorch does.
 */
export async function computeOnModule(module: NativeModule, graph: Graph, reads: Value[],
  emit: (g: Graph, map: Map<Value, Value>) => Value[]): Promise<NativeTensor[]> {
  const self = moduleSelf(graph);
  if (!self) throw new Error('computeOnModule: the graph does not take the module as its first input');
  const g = new Graph();
  const map = new Map<Value, Value>([[self, g.addInput(self.type, self.name)]]);
  for (const n of moduleCone(reads, self)!) copyNodeBefore(n, g.block.returnNode, map, []);
  const results = emit(g, map);
  g.setOutputs([g.createNode('prim::TupleConstruct', results, [{ kind: 'Tuple', elems: results.map(() => ({ kind: 'Tensor' })) }]).output]);
  const built = nativeSync(() => module.buildGraph(g.toData()));
  try {
    return (await native(() => built.run([]))).output as unknown as NativeTensor[];
  } finally {
    built.dispose();
  }
}

/**
 * One tensor per request, computed on the module by the nodes `emit` adds for it (reading the
 * copies of `reads(r)`). A failure is every request's reason, prefixed with `what`.
 */
export async function computeEachOnModule<R extends { id: string }>(
  module: NativeModule, graph: Graph, requests: R[], reads: (r: R) => Value[],
  emit: (g: Graph, map: Map<Value, Value>, r: R) => Value, what: string,
): Promise<Map<string, NativeTensor | string>> {
  const out = new Map<string, NativeTensor | string>();
  if (!requests.length) return out;
  try {
    const tensors = await computeOnModule(module, graph, requests.flatMap(reads), (g, map) => requests.map((r) => emit(g, map, r)));
    requests.forEach((r, i) => out.set(r.id, tensors[i]));
  } catch (e) {
    const why = `${what}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    for (const r of requests) out.set(r.id, why);
  }
  return out;
}

/** A value as a plain Tensor (scripted modules type their parameters Optional[Tensor]). */
export function asTensor(g: Graph, v: Value): Value {
  return v.type.kind === 'Optional' ? g.createNode('prim::unchecked_cast', [v], [{ kind: 'Tensor' }]).output : v;
}
