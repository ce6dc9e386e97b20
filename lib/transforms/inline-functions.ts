// Inline prim::CallFunction calls of TorchScript functions (F._canonical_mask,
// _detect_is_causal_mask, ...), in place. Scripted transformer stacks compute masks and the
// is_causal flag in such helpers; once inlined, folding with known None arguments decides
// them. Calls whose target is not a known function stay.
import { Graph, type GraphData, type Node } from '../core/ir';
import { inlineCall } from './inline-modules';

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
    // The first input is the function value itself.
    inlineCall(call, Graph.fromData(data), call.inputs.slice(1), call.scope ?? []);
    inlined++;
  }
}
