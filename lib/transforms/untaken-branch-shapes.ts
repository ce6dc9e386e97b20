// Shapes for code in prim::If branches the shape run did not take. Scripted models keep both
// paths of their run-time checks (MultiheadAttention's fast path and slow path, say); a shape
// run sees only the branch that runs, so ops in the other have no shapes and cannot be
// rewritten. A copy of the graph with those Ifs forced the other way gets a second shape run,
// and the branches' values take its shapes, marked speculative (they are not evidence of
// what ran: see taken-branches.ts).
import type { Block, Graph, Node } from '../core/ir';
import type { Module } from '../torchscript/module';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { takenBranch } from './taken-branches';
import { setValueInfo, tensorInfo, valueInfo } from '../core/value-info';

export interface UntakenShapesReport {
  /** Ifs forced the other way in the second run. */
  forced: number;
  /** Values that received shapes. */
  values: number;
  /** Why the second run failed (the branches then stay without shapes). */
  failed?: string;
}

function blockNodes(b: Block): Node[] {
  return b.nodes().flatMap((n) => [n, ...n.blocks.flatMap(blockNodes)]);
}

/** Give shapes to the untaken branches that hold a node `wanted` says needs them. */
export async function shapeUntakenBranches(
  g: Graph, module: Module, inputs: readonly InputSpec[], wanted: (n: Node) => boolean,
): Promise<UntakenShapesReport> {
  const targets: { node: Node; branch: number }[] = [];
  for (const n of g.allNodes()) {
    if (n.kind !== 'prim::If') continue;
    const taken = takenBranch(n);
    if (taken === undefined) continue;
    const other = 1 - taken;
    if (blockNodes(n.blocks[other]).some((m) => wanted(m) && m.outputs.every((o) => !tensorInfo(o)))) {
      targets.push({ node: n, branch: other });
    }
  }
  if (!targets.length) return { forced: 0, values: 0 };

  // The copy has the same structure and value ids: nodes map by position, values by id.
  const copy = g.clone();
  const position = new Map(g.allNodes().map((n, i) => [n, i]));
  const copied = copy.allNodes();
  for (const t of targets) {
    const c = copied[position.get(t.node)!];
    c.replaceInput(0, copy.withInsertPoint(c, () => copy.insertConstant(t.branch === 0)));
  }
  try {
    await propagateShapes(copy, module, inputs);
  } catch (e) {
    return { forced: targets.length, values: 0, failed: (e as Error).message.split('\n')[0] };
  }
  const byId = new Map(copy.allValues().map((v) => [v.id, v]));
  let values = 0;
  for (const t of targets) {
    for (const m of blockNodes(t.node.blocks[t.branch])) {
      for (const o of m.outputs) {
        const info = byId.get(o.id) && valueInfo(byId.get(o.id)!);
        const had = valueInfo(o);
        if (!info || (had && had.kind !== 'Other')) continue;
        setValueInfo(o, info);
        m.meta.speculativeShapes = true;
        values++;
      }
    }
  }
  return { forced: targets.length, values };
}
