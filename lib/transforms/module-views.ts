// The ways to see a model as a graph:
//   standard: like torch.fx's default tracer; user modules inlined, torch.nn leaf modules
//             (Linear, LayerNorm, MultiheadAttention, ...) kept as single call_module nodes;
//   inlined:  everything down to aten/prim ops; weights are prim::GetAttr reads of the
//             module's own tensors.
// Scripted models carry run-time checks on module attributes; both views fold what the
// module's known attributes decide and report what remains.
import { Graph, type GraphData } from '../core/ir';
import type { Module } from '../torchscript/module';
import { nativeSync, TorchGraphError } from '../core/errors';
import { foldModuleConstants, type FoldReport } from './fold-module-constants';
import { inlineFunctionCalls } from './inline-functions';
import { inlineModuleCalls, type InlineReport } from './inline-modules';

export type ViewName = 'standard' | 'inlined';

export interface ViewReport {
  view: ViewName;
  method: string;
  nodes: number;
  inline?: InlineReport;
  fold: FoldReport;
  ms: number;
}

export interface ModelView {
  graph: Graph;
  report: ViewReport;
}

/** The graph of a method of the submodule at `path` (inlined unless `inline` is false). */
export function methodGraphs(module: Module): (path: string, method: string, inline?: boolean) => GraphData {
  return (path, method, inline = true) => nativeSync(() => module._native.exportGraph(method, { inline, path }));
}

/** The inlined graph of a TorchScript function of the model, or undefined (a builtin, say). */
export function functionGraphs(module: Module): (qualifiedName: string) => GraphData | undefined {
  return (name) => {
    try { return module._native.exportFunction(name, { inline: true }); } catch { return undefined; }
  };
}

export function exportView(module: Module, view: ViewName, method = 'forward'): ModelView {
  if (view !== 'standard' && view !== 'inlined') {
    const got = typeof view === 'string' ? JSON.stringify(view) : typeof view;
    throw new TorchGraphError('ERR_INVALID_ARG', `exportView: view must be 'standard' or 'inlined', got ${got}`);
  }
  if (typeof method !== 'string' || method === '') {
    throw new TorchGraphError('ERR_INVALID_ARG', 'exportView: method must be a non-empty string');
  }
  const t0 = performance.now();
  const graphOf = methodGraphs(module);
  let graph: Graph;
  let inline: InlineReport | undefined;
  if (view === 'inlined') {
    graph = Graph.fromData(graphOf('', method, true));
    // torch's Inline leaves some calls in place (nested module calls in traced models; calls
    // to TorchScript functions of a scripted model that has not run yet): finish the job.
    inline = inlineModuleCalls(graph, graphOf, () => true);
    inlineFunctionCalls(graph, functionGraphs(module));
  } else {
    graph = Graph.fromData(graphOf('', method, false));
    inline = inlineModuleCalls(graph, (path, m) => graphOf(path, m, false));
  }
  const fold = foldModuleConstants(graph, module.tree());
  graph.verify();
  return {
    graph,
    report: { view, method, nodes: graph.allNodes().length, inline, fold, ms: performance.now() - t0 },
  };
}
