// Inline calls to user-defined modules (and torch.nn containers), keeping calls to torch.nn
// leaf modules as single nodes: the "standard" view, like torch.fx's default tracer.
// In place on `graph`.
import { Graph, type Block, type Node, type Value, type GraphData, type ScopeFrame } from '../core/ir';
import { isLeafModuleClass, moduleCallOf, modulePaths } from './module-calls';

/** Returns the method graph of the submodule at a dotted path. */
export type FetchMethodGraph = (path: string, method: string) => GraphData;

export interface InlineReport {
  inlinedCalls: number;
  leafCalls: { path: string; cls: string }[];
}

/**
 * Copy `src` (a node of a callee graph exported for the module at `calleePath`) before
 * `before`, mapping values through `map`. The callee's scope paths are relative to its own
 * module; they are made absolute.
 */
export function copyNodeBefore(src: Node, before: Node, map: Map<Value, Value>, scopePrefix: ScopeFrame[], calleePath = ''): Node {
  const g = before.graph;
  const rebased = (src.scope ?? []).map((f) => ({ ...f, path: calleePath && f.path ? `${calleePath}.${f.path}` : f.path || calleePath }));
  const n = g.create(src.kind, src.inputs.map((v) => mapValue(v, map)), [], src.attrs, {
    schema: src.schema, source: src.source, scope: [...scopePrefix, ...rebased],
  });
  for (const o of src.outputs) map.set(o, n.addOutput(o.type, o.name));
  n.insertBefore(before);
  for (const b of src.blocks) copyBlockInto(b, n.addBlock(), map, scopePrefix, calleePath);
  return n;
}

function copyBlockInto(src: Block, dst: Block, map: Map<Value, Value>, scopePrefix: ScopeFrame[], calleePath: string): void {
  for (const i of src.inputs) map.set(i, dst.addInput(i.type, i.name));
  for (const n of src.nodes()) copyNodeBefore(n, dst.returnNode, map, scopePrefix, calleePath);
  dst.setOutputs(src.outputs.map((v) => mapValue(v, map)));
}

function mapValue(v: Value, map: Map<Value, Value>): Value {
  const m = map.get(v);
  if (!m) throw new Error(`inline: value %${v.debugName} has no mapping`);
  return m;
}

/**
 * Replace `call` by a copy of `callee`'s nodes (see copyNodeBefore) with the callee's inputs
 * bound to `args`; the call's outputs become the copies of the callee's. Returns the copies.
 */
export function inlineCall(call: Node, callee: Graph, args: readonly Value[], scopePrefix: ScopeFrame[], calleePath = ''): Node[] {
  const map = new Map<Value, Value>();
  callee.inputs.forEach((v, i) => map.set(v, args[i]));
  const copied = callee.nodes().map((n) => copyNodeBefore(n, call, map, scopePrefix, calleePath));
  call.outputs.forEach((o, i) => o.replaceAllUsesWith(mapValue(callee.outputs[i], map)));
  call.destroy();
  return copied;
}

/**
 * Inline every module call whose class `shouldInline` accepts (default: all but torch.nn
 * leaf modules), repeatedly, since inlined bodies bring calls of their own.
 */
export function inlineModuleCalls(graph: Graph, fetch: FetchMethodGraph,
  shouldInline: (cls: string) => boolean = (cls) => !isLeafModuleClass(cls)): InlineReport {
  let inlinedCalls = 0;
  // One scan per nesting level: every call found is inlined, then the inlined bodies' own calls
  // (a scan per call would walk the whole graph once for each of a ResNet's hundreds of calls).
  for (;;) {
    const paths = modulePaths(graph);
    const calls = graph.allNodes().flatMap((n) => {
      const c = moduleCallOf(n, paths);
      return c && shouldInline(c.cls) ? [c] : [];
    });
    if (!calls.length) break;
    for (const call of calls) {
      const frame: ScopeFrame = { path: call.path, cls: call.cls, method: call.method };
      inlineCall(call.node, Graph.fromData(fetch(call.path, call.method)), call.node.inputs, [...(call.node.scope ?? []), frame],
        call.path);
      inlinedCalls++;
    }
  }
  const paths = modulePaths(graph);
  const leafCalls: { path: string; cls: string }[] = [];
  for (const n of graph.allNodes()) {
    const call = moduleCallOf(n, paths);
    if (!call) continue;
    n.meta.callModule = { path: call.path, cls: call.cls };
    leafCalls.push({ path: call.path, cls: call.cls });
  }
  graph.eliminateDeadCode();
  return { inlinedCalls, leafCalls };
}
