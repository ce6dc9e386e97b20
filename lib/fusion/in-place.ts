// Activations and residual adds in place where the tensor they would read dies there: the
// result is written over the input instead of a fresh buffer (what _addmm_activation's epilogue
// did for linear + GELU, for every activation and skip connection left after lowering). The
// input must be a fresh activation (not a view, a weight or a graph input) of the result's
// shape and dtype whose only reader is that op.
import { dataInput, type Graph, type Node, type Value } from '../core/ir';
import { buildFacts, isActivation, type GraphFacts } from '../core/facts';
import { constNumber } from '../core/constants';
import { tensorInfo } from '../core/value-info';

const IN_PLACE_ACTIVATIONS = new Set(
  ['gelu', 'relu', 'silu', 'sigmoid', 'tanh', 'hardtanh', 'hardswish', 'hardsigmoid', 'leaky_relu'].map((k) => `aten::${k}`),
);

/** Whether op `n` may overwrite `v`: a fresh tensor of n's result shape and dtype that only n reads. */
function mayOverwrite(f: GraphFacts, n: Node, v: Value): boolean {
  const p = v.node ? f.pos.get(v.node) : undefined;
  const i = f.vindex.get(v);
  if (p === undefined || i === undefined || f.role[p] !== 'compute' || !isActivation(f, i)) return false;
  // Layout and cast ops can return their input (broadcast_to, contiguous or to in a memory
  // format the tensor already has) where the facts cannot tell: never written over.
  if (f.classes[p].some((c) => c === 'layout' || c === 'cast')) return false;
  if (v.uses.length !== 1 || v.node!.owningBlock !== n.owningBlock || v.node!.blocks.length) return false;
  const a = tensorInfo(v), o = tensorInfo(n.output);
  return !!a && !!o && a.dtype === o.dtype && a.shape.join() === o.shape.join();
}

function toInPlace(n: Node): void {
  n.schema = n.schema?.replace(/^(\w+::\w+)(\.\w+)?\(/, (_m, name: string, overload = '') => `${name}_${overload}(`);
  n.kind = `${n.kind}_`;
}

/**
 * Rewrites, in place on `g`, the activations and adds whose input dies at them; returns how many.
 * An add is in place only at the shapes `g` was propagated for (at others its operand may
 * broadcast), so `{ adds: false }` leaves adds alone for a graph that must run at any shape.
 */
export function inPlaceWhereInputsDie(g: Graph, options: { adds?: boolean } = {}): number {
  const f = buildFacts(g);
  let rewritten = 0;
  for (const n of g.allNodes()) {
    if (IN_PLACE_ACTIVATIONS.has(n.kind) && mayOverwrite(f, n, dataInput(n))) {
      toInPlace(n);
      rewritten++;
    } else if ((options.adds ?? true) && n.kind === 'aten::add' && n.inputs.length === 3 && constNumber(n.arg('alpha')) === 1) {
      // self + other: overwrite self, or other (an add of alpha 1 commutes).
      const [a, b] = n.inputs;
      const target = [a, b].find((v) => v.type.kind === 'Tensor' && mayOverwrite(f, n, v));
      if (!target) continue;
      if (target === b) { n.replaceInput(0, b); n.replaceInput(1, a); }
      toInPlace(n);
      rewritten++;
    }
  }
  return rewritten;
}
