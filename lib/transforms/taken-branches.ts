// The graph as it ran: each prim::If replaced by the branch the shape run took, each
// prim::Loop by one iteration of its body. Estimates that follow execution (liveness, peak
// memory) need this for scripted models, whose run-time checks (fast path or slow path, mask
// checks, ...) stay as prim::If: counted whole, a block holds every tensor in it live at once,
// which the interpreter never does. One iteration stands for all: each iteration frees what
// the one before allocated, except the loop-carried values, which the copy keeps as well.
import type { Block, Graph, Node } from '../core/ir';
import { constOf } from '../core/constants';
import { tensorInfo } from '../core/value-info';

/** Which branch ran: from the condition's recorded value, else from which branch has tensor shapes. */
export function takenBranch(n: Node): number | undefined {
  const cond = n.inputs[0];
  const known = constOf(cond);
  if (typeof known === 'boolean') return known ? 0 : 1;
  // The shape run records the tensors of the branch taken only (native ExposeBlockTensors).
  const ran = n.blocks.map(hasRecordedTensors);
  return ran[0] !== ran[1] ? (ran[0] ? 0 : 1) : undefined;
}

// Shapes given to a branch that did not run (untaken-branch-shapes.ts) are marked so, and are
// no evidence that it ran.
function hasRecordedTensors(b: Block): boolean {
  return b.nodes().some((m) => (!m.meta.speculativeShapes && m.outputs.some((o) => o.type.kind === 'Tensor' && tensorInfo(o) !== undefined))
    || m.blocks.some(hasRecordedTensors));
}

/** Replace a prim::Loop by its body run once: iteration 0, the carried values' initial inputs. */
function inlineOneIteration(g: Graph, loop: Node): Node[] {
  const body = loop.blocks[0];
  const [iter, ...carried] = body.inputs;
  iter.replaceAllUsesWith(g.withInsertPoint(loop, () => g.insertConstant(0n)));
  carried.forEach((v, i) => v.replaceAllUsesWith(loop.inputs[2 + i]));
  const moved = body.nodes();
  for (const m of moved) m.insertBefore(loop);
  loop.outputs.forEach((o, i) => o.replaceAllUsesWith(body.outputs[1 + i]));
  loop.destroy();
  return moved;
}

/**
 * A copy of `graph` with every prim::If whose taken branch is known replaced by that branch's
 * nodes, and every prim::Loop by one iteration (nested ones too). `unresolved` counts the Ifs
 * left as they are. A graph without blocks is returned as is.
 */
export function inlineTakenBranches(graph: Graph): { graph: Graph; unresolved: number } {
  if (!graph.nodes().some((n) => n.blocks.length)) return { graph, unresolved: 0 };
  const g = graph.clone();
  let unresolved = 0;
  const visit = (nodes: Node[]): void => {
    for (const n of nodes) {
      if (n.kind === 'prim::Loop') { visit(inlineOneIteration(g, n)); continue; }
      if (n.kind !== 'prim::If') { n.blocks.forEach((b) => visit(b.nodes())); continue; }
      const k = takenBranch(n);
      if (k === undefined) { unresolved++; n.blocks.forEach((b) => visit(b.nodes())); continue; }
      const taken = n.blocks[k];
      const moved = taken.nodes();
      for (const m of moved) m.insertBefore(n);
      n.outputs.forEach((o, i) => o.replaceAllUsesWith(taken.outputs[i]));
      n.destroy();
      visit(moved);
    }
  };
  visit(g.nodes());
  return { graph: g, unresolved };
}
