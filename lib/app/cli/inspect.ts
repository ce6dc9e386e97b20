// `torchgraph inspect MODEL`: print one view of a model's graph as text, JSON or DOT.
import type { Graph } from '../../core/ir';
import type { Module } from '../../torchscript/module';
import { graphToDot } from '../../report/dot';
import { graphStats } from '../../report/stats';
import { EXIT_OK } from './errors';
import type { CliIO } from './io';
import { builtinFile, builtinFixture, exampleInputs, makeInputs, parseSpecs, resolveModelArg } from './model';
import { CliError } from './errors';
import type { Tensor } from '../../torchscript/tensor';
import { createPipeline } from '../../pipeline/pipeline';

export const VIEWS = ['standard', 'inlined', 'decomposed', 'fused'] as const;
export type InspectView = (typeof VIEWS)[number];

export interface InspectCliOptions {
  view: InspectView;
  json?: boolean;
  dot?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  /** --input SPEC (shapes for the decomposed and fused views of file models). */
  input?: string[];
  seed?: number;
}

/** The graph of one view. standard/inlined come from transforms/module-views; decomposed/fused from the pipeline. */
export async function viewGraph(module: Module, view: InspectView, inputs: Tensor[] = []): Promise<Graph> {
  if (view === 'standard' || view === 'inlined') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { exportView } = require('../../transforms/module-views') as typeof import('../../transforms/module-views');
    return exportView(module, view).graph;
  }
  const pipeline = createPipeline();
  const std = await pipeline.standard(module, inputs);
  const dec = await pipeline.decompose(module, std.graph, inputs);
  if (view === 'decomposed') return dec.graph;
  return (await pipeline.partition(module, dec.graph, dec, inputs)).graph;
}

export async function inspectCommand(modelArg: string, o: InspectCliOptions, io: CliIO): Promise<number> {
  const ref = resolveModelArg(modelArg);
  const needsInputs = o.view === 'decomposed' || o.view === 'fused';
  const specs = parseSpecs(o.input ?? []);
  const fx = ref.kind === 'builtin' ? await builtinFixture(ref.name, { verbose: o.verbose, stderr: (s) => { if (!o.quiet) io.stderr(s); } }) : undefined;
  const file = fx ? builtinFile(fx) : (ref as { path: string }).path;
  // Shapes decide how attention decomposes (masks, ranks): the decomposed views need inputs.
  if (needsInputs && !specs.length && !fx) throw new CliError(`inspect --view ${o.view} of a model file needs --input SPEC for each model input`);
  const inputs = !needsInputs ? [] : specs.length ? makeInputs(specs, Number(o.seed ?? 0)).tensors : exampleInputs(fx!).tensors;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { loadModel } = require('../../program/load-model') as typeof import('../../program/load-model');
  const module = await loadModel(file);
  try {
    const graph = await viewGraph(module, o.view, inputs);
    if (o.dot) {
      io.stdout(graphToDot(graph, { name: `${ref.display} (${o.view})` }));
    } else if (o.json) {
      const stats = graphStats(graph);
      io.stdout(JSON.stringify({ model: ref.display, file, view: o.view, nodes: stats.nodes, ops: stats.ops, graph: graph.toJSON() }, null, 2) + '\n');
    } else {
      const stats = graphStats(graph);
      io.stdout(`# ${ref.display}: ${o.view} view, ${stats.nodes} nodes (${file})\n`);
      io.stdout(graph.print());
    }
  } finally {
    module.dispose();
  }
  return EXIT_OK;
}
