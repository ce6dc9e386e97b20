// The graph a shape run executes, made from the graph being analysed, and how to run it.
// The run reports values of the top-level block only, so values computed inside prim::If and
// prim::Loop blocks are surfaced first: each If also returns them (the branch not taken
// returns prim::Uninitialized in that slot) and each Loop carries them out (an extra
// loop-carried slot that starts uninitialized, so the loop's output is the last iteration's
// value), innermost blocks first so that nested ones surface level by level. The graph then
// returns one tuple of every value worth reporting. The addon only runs this graph.
import { Graph, TupleType, type Block, type Node, type TypeData, type Value } from '../core/ir';

export interface ShapeRunPlan {
  /** A copy of the analysed graph (same value ids) that returns one tuple of `reported`. */
  graph: Graph;
  /** Per element of that tuple, the id of the analysed graph's value it describes. */
  reportedIds: number[];
  /** Node by node (straight-line graphs: an op without a meta kernel can run on zeros) or the
   * whole graph through the interpreter (blocks and function calls). */
  executor: 'nodes' | 'graph';
  /** Parameters read from `self` become meta tensors (a whole-graph run on meta). */
  metaParameters: boolean;
}

/** Tensors and Optional[Tensor]s (masks merged at run time): what a run surfaces from blocks. */
function isTensorOrOptional(t: TypeData): boolean {
  return t.kind === 'Tensor' || (t.kind === 'Optional' && t.elem.kind === 'Tensor');
}

/** What a shape run reports: tensors, optional tensors, and the scalars and int lists sizes are made of. */
export function isReportedType(t: TypeData): boolean {
  return isTensorOrOptional(t) || t.kind === 'Int' || t.kind === 'Float' || t.kind === 'Bool'
    || (t.kind === 'List' && t.elem.kind === 'Int');
}

/** Straight-line: no top-level node has blocks or calls a function. */
export function isStraightLine(g: Graph): boolean {
  return g.nodes().every((n) => n.blocks.length === 0 && n.kind !== 'prim::CallFunction');
}

function uninitialized(g: Graph, type: TypeData): Node {
  return g.create('prim::Uninitialized', [], [type]);
}

/**
 * Surfaces the tensors computed inside If and Loop blocks as outputs of those nodes, in place.
 * `origin` maps each value that stands for another (an exposed output) to the id it describes;
 * values of the graph before the call describe themselves.
 */
export function exposeBlockTensors(g: Graph, origin: Map<Value, number>): void {
  const described = (v: Value) => origin.get(v) ?? v.id;
  const known = new Set(g.allValues());
  const innerTensors = (b: Block) => b.nodes().flatMap((m) => m.outputs)
    .filter((o) => isTensorOrOptional(o.type) && (known.has(o) || origin.has(o)));
  const visit = (b: Block): void => {
    for (const n of b.nodes()) {
      n.blocks.forEach(visit);
      if (n.kind === 'prim::If') exposeFromIf(g, n, innerTensors, described, origin);
      else if (n.kind === 'prim::Loop') exposeFromLoop(g, n, innerTensors, described, origin);
    }
  };
  visit(g.block);
}

type Inner = (b: Block) => Value[];

function exposeFromIf(g: Graph, n: Node, inner: Inner, described: (v: Value) => number, origin: Map<Value, number>): void {
  for (const bi of [0, 1]) {
    for (const v of inner(n.blocks[bi])) {
      const out = n.addOutput(v.type);
      n.blocks[bi].registerOutput(v);
      const other = n.blocks[1 - bi];
      const un = other.appendNode(uninitialized(g, v.type));
      other.registerOutput(un.outputs[0]);
      origin.set(out, described(v));
    }
  }
}

function exposeFromLoop(g: Graph, n: Node, inner: Inner, described: (v: Value) => number, origin: Map<Value, number>): void {
  const body = n.blocks[0];
  for (const v of inner(body)) {
    const un = uninitialized(g, v.type).insertBefore(n);
    n.addInput(un.outputs[0]);
    body.addInput(v.type);
    body.registerOutput(v);
    origin.set(n.addOutput(v.type), described(v));
  }
}

/** The graph to run for shapes of `g`'s values, with the executor a run `onMeta` takes. */
export function planShapeRun(g: Graph, opts: { onMeta: boolean }): ShapeRunPlan {
  const graph = g.clone();
  const straight = isStraightLine(graph);
  const original = new Set(graph.allValues());
  const origin = new Map<Value, number>();
  if (!straight) exposeBlockTensors(graph, origin);
  // Not the stand-ins that exposing made (a Loop's uninitialized start value).
  const reported = graph.nodes().flatMap((n) => n.outputs)
    .filter((o) => isReportedType(o.type) && (original.has(o) || origin.has(o)));
  const tuple = graph.createNode('prim::TupleConstruct', reported, [TupleType(reported.map((v) => v.type))]);
  graph.setOutputs([tuple.outputs[0]]);
  const executor = opts.onMeta && straight ? 'nodes' : 'graph';
  const takesSelf = graph.inputs[0]?.type.kind === 'Class';
  return {
    graph,
    reportedIds: reported.map((v) => origin.get(v) ?? v.id),
    executor,
    metaParameters: opts.onMeta && executor === 'graph' && takesSelf,
  };
}
