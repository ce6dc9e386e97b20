// Inline prim::CallFunction calls of TorchScript functions (F._canonical_mask,
// _detect_is_causal_mask, ...), in place. Scripted transformer stacks compute masks and the
// is_causal flag in such helpers; once inlined, folding with known None arguments decides
// them. Calls whose target is not a known function stay.
import { Graph, type GraphData, type Node, type Value } from '../core/ir';
import { copyNodeBefore } from './inline-modules';

export type FetchFunctionGraph = (qualifiedName: string) => GraphData | undefined;

function targetName(call: Node): string | undefined {
  const f = call.inputs[0];
  return f?.type.kind === 'Other' ? f.type.repr : undefined;
}

/** Inline function calls (repeatedly: bodies bring calls of their own). Returns how many. */
export function inlineFunctionCalls(graph: Graph, fetch: FetchFunctionGraph, shouldInline: (name: string) => boolean = () => true): number {
  let inlined = 0;
  const unavailable = new Set<string>();
  for (;;) {
    const call = graph.allNodes().find((n) => {
      if (n.kind !== 'prim::CallFunction') return false;
      const name = targetName(n);
      return name !== undefined && !unavailable.has(name) && shouldInline(name);
    });
    if (!call) return inlined;
    const name = targetName(call)!;
    const data = fetch(name);
    if (!data) { unavailable.add(name); continue; }
    const callee = Graph.fromData(data);
    const map = new Map<Value, Value>();
    callee.inputs.forEach((v, i) => map.set(v, call.inputs[i + 1]));
    for (const n of callee.nodes()) copyNodeBefore(n, call, map, call.scope ?? []);
    call.outputs.forEach((o, i) => o.replaceAllUsesWith(map.get(callee.outputs[i])!));
    call.destroy();
    inlined++;
  }
}
