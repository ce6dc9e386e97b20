// `torchgraph inspect MODEL`: print one view of a model's graph as text, JSON or DOT, with each
// value's shape and dtype where the inputs are known, and each node's fusion group.
import type { Graph } from '../../core/ir';
import type { Module } from '../../torchscript/module';
import type { InputSpec } from '../../torchscript/propagate-shapes';
import { graphStats } from '../../report/stats';
import { checkModelTakesSpecs } from '../../pipeline/input-check';
import {
  groupKey, inspectInputs, inspectNodes, nodeGroup, renderInspectDot, renderInspectText, shapeText, type NodeGroup,
} from '../../report/inspect';
import { EXIT_OK, UsageError } from './errors';
import type { CliIO } from './io';
import { ModelOnce, modelFileAndInputs, orderedSpecs, programSignature, resolveModelArg, withoutDefaults } from './model';
import type { LoweringSwitches } from '../../fusion/lowerings';
import { describeOff } from './lowering-options';

export const VIEWS = ['standard', 'inlined', 'decomposed', 'fused'] as const;
export type InspectView = (typeof VIEWS)[number];

export interface InspectCliOptions {
  view: InspectView;
  json?: boolean;
  dot?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  /** --input [NAME=]SPEC, as validate takes them (shapes for every view; the decomposed and fused views of file models need them). */
  input?: string[];
  seed?: number;
}

export interface ViewResult {
  graph: Graph;
  /** What the heading says about shapes (found for which inputs, or why not). */
  notes: string[];
}

/**
 * The graph of one view, with shapes where `inputs` are given. standard/inlined come from
 * transforms/module-views (shapes propagated when they can be); decomposed is partitioned
 * (node.meta.group); fused is decomposed and lowered with `fuse`'s switches (node.meta.fused on
 * what the lowerings emitted, node.meta.group on the members of groups left as they are).
 */
export async function viewGraph(
  module: Module, view: InspectView, inputs: readonly InputSpec[] = [], fuse: LoweringSwitches = {},
): Promise<ViewResult> {
  const notes: string[] = [];
  // Inputs the model rejects are the user's to fix (exit 2), in every view.
  if (inputs.length) await checkModelTakesSpecs(module, inputs);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { exportView } = require('../../transforms/module-views') as typeof import('../../transforms/module-views');
  if (view === 'standard' || view === 'inlined') {
    const graph = exportView(module, view).graph;
    if (inputs.length) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { propagateShapes } = require('../../torchscript/propagate-shapes') as typeof import('../../torchscript/propagate-shapes');
      try {
        await propagateShapes(graph, module, inputs);
      } catch (e) {
        const reason = (e as Error).message.split('\n')[0];
        notes.push(`shapes: not found on the ${view} view (${reason}); the decomposed and fused views have them`);
      }
    }
    return { graph, notes };
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { decomposeStandardView, fuseDecomposed } = require('../../pipeline/prepare') as typeof import('../../pipeline/prepare');
  const std = exportView(module, 'standard').graph;
  const { decomposed } = await decomposeStandardView(module, std, inputs);
  if (view === 'decomposed') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { partitionGraph } = require('../../fusion/partition') as typeof import('../../fusion/partition');
    const p = partitionGraph(decomposed);
    for (const g of p.groups) for (const n of g.nodes) if (g.label) n.meta.groupLabel = g.label;
    return { graph: decomposed, notes };
  }
  const { fused, groups } = await fuseDecomposed(module, decomposed, inputs, fuse);
  const present = new Set(fused.allNodes());
  for (const g of groups) {
    for (const n of g.nodes) {
      if (!present.has(n) || n.meta.fused) continue;
      n.meta.group = g.id;
      n.meta.groupKind = g.kind;
    }
  }
  const off = describeOff(fuse);
  if (off) notes.push(`lowerings switched off: ${off}`);
  return { graph: fused, notes };
}

export async function inspectCommand(modelArg: string, o: InspectCliOptions, io: CliIO, fuse: LoweringSwitches = {}): Promise<number> {
  const ref = resolveModelArg(modelArg);
  const needsInputs = o.view === 'decomposed' || o.view === 'fused';
  const inputTexts = [...(o.input ?? [])];
  // As validate: a .pt2 program's float inputs of fixed shape default to its example's shapes.
  const program = ref.kind === 'file' ? await programSignature(ref.path, inputTexts.length === 0) : undefined;
  if (ref.kind === 'file' && inputTexts.length === 0 && program?.defaults) inputTexts.push(...program.defaults);
  // Shapes decide how attention decomposes (masks, ranks): the decomposed views need inputs.
  if (needsInputs && ref.kind === 'file' && !inputTexts.length) {
    throw new UsageError(`inspect --view ${o.view} of a model file needs --input SPEC for each model input `
      + `(as validate takes them: SHAPE[:DTYPE][:FILL], a .npy file, or NAME=SPEC)${withoutDefaults(program)}`);
  }
  // A model file is loaded once: for the names of inputs given by name, and for the view.
  const once = ref.kind === 'file' ? new ModelOnce(ref.path) : null;
  let module;
  let file;
  let inputs;
  try {
    const { specs, names } = await orderedSpecs(inputTexts, once);
    const quiet = Boolean(o.quiet) && !o.verbose;
    ({ file, inputs } = await modelFileAndInputs(ref, inputTexts, { specs, names }, Number(o.seed ?? 0), program?.names,
      { verbose: Boolean(o.verbose), quiet, step: () => {}, done: () => {}, stderr: io.stderr }));
    module = await (once?.file === file ? once.get() : new ModelOnce(file).get());
  } catch (e) {
    await once?.dispose();
    throw e;
  }
  const shapes: InputSpec[] = inputs.tensors.map((t) => ({ shape: t.shape, dtype: t.dtype }));
  inputs.tensors.forEach((t) => t.dispose());
  try {
    const { graph, notes } = await viewGraph(module, o.view, shapes, fuse);
    if (inputs.info.length) {
      const described = inputs.info.map((i) => `${i.name} ${shapeText(i.dtype, i.shape)} (${i.source})`).join(', ');
      notes.unshift(`shapes for input${inputs.info.length > 1 ? 's' : ''} ${described}`);
    } else {
      notes.unshift('shapes: none (give --input SPEC for each forward() argument to see them)');
    }
    const name = `${ref.display} (${o.view})`;
    if (o.dot) {
      io.stdout(renderInspectDot(graph, name));
    } else if (o.json) {
      const stats = graphStats(graph);
      const groups = new Map<string, NodeGroup & { nodes: number }>();
      for (const n of graph.allNodes()) {
        const g = nodeGroup(n);
        if (!g) continue;
        const seen = groups.get(groupKey(g));
        groups.set(groupKey(g), {
          id: g.id, kind: g.kind, ...(g.attention ? { attention: g.attention } : {}),
          lowered: g.lowered || Boolean(seen?.lowered), nodes: (seen?.nodes ?? 0) + 1,
        });
      }
      io.stdout(JSON.stringify({
        model: ref.display, file, view: o.view, nodes: stats.nodes, ops: stats.ops, notes,
        inputs: inspectInputs(graph), groups: [...groups.values()], annotations: inspectNodes(graph), graph: graph.toJSON(),
      }, null, 2) + '\n');
    } else {
      io.stdout(renderInspectText(graph, { model: ref.display, file, view: o.view, notes }));
    }
  } finally {
    module.dispose();
  }
  return EXIT_OK;
}
