// Activations, residual adds and convolutions' sums in place where the tensor they would read dies there: the
// result is written over the input instead of a fresh buffer (what _addmm_activation's epilogue
// did for linear + GELU, for every activation and skip connection left after lowering). The
// input must be a fresh activation (not a view, a weight or a graph input) of the result's
// shape and dtype whose only reader is that op.
import { dataInput, type Graph, type Node, type Value } from '../core/ir';
import { buildFacts, isActivation, type GraphFacts } from '../core/facts';
import { constNumber } from '../core/constants';
import { tensorInfo } from '../core/value-info';
import { isChannelsLastContiguous, METADATA_INPUT0 } from '../core/ops/classes';
import { SCHEMA_TABLE } from '../core/ops/schemas-table';

const IN_PLACE_ACTIVATIONS = new Set(
  ['gelu', 'relu', 'silu', 'sigmoid', 'tanh', 'hardtanh', 'hardswish', 'hardsigmoid', 'leaky_relu'].map((k) => `aten::${k}`),
);

/**
 * Whether op `n` may overwrite `v`: a fresh tensor of n's result shape and dtype that only n
 * reads, or that only `readsBefore` ops read before n besides (ops whose results never alias it;
 * then reads of its shape, anywhere, too: the sum keeps the shape, dtype and layout).
 */
function mayOverwrite(f: GraphFacts, n: Node, v: Value, readsBefore: ReadonlySet<string> = new Set()): boolean {
  const p = v.node ? f.pos.get(v.node) : undefined;
  const i = f.vindex.get(v);
  if (p === undefined || i === undefined || f.role[p] !== 'compute' || !isActivation(f, i)) return false;
  // Layout and cast ops can return their input (broadcast_to, contiguous or to in a memory
  // format the tensor already has) where the facts cannot tell: never written over.
  if (f.classes[p].some((c) => c === 'layout' || c === 'cast')) return false;
  if (v.node!.owningBlock !== n.owningBlock || v.node!.blocks.length) return false;
  const others = v.uses.filter((u) => u.node !== n && !(readsBefore.size && METADATA_INPUT0.has(u.node.kind)));
  if (v.uses.filter((u) => u.node === n).length !== 1) return false;
  if (!others.every((u) => readsBefore.has(u.node.kind) && u.node.owningBlock === n.owningBlock && u.node.isBefore(n))) return false;
  const a = tensorInfo(v), o = tensorInfo(n.output);
  return !!a && !!o && a.dtype === o.dtype && a.shape.join() === o.shape.join();
}

const POINTWISE_CONV = 'mkldnn::_convolution_pointwise';
/** The in-place overload's schema, as torch's table lists it (other first). */
const POINTWISE_CONV_IN_PLACE_SCHEMA = SCHEMA_TABLE.find((t) => t.startsWith(`${POINTWISE_CONV}_.binary(`))!;

/**
 * A pointwise convolution with a residual add (conv-pointwise.ts) whose skip connection dies
 * there: oneDNN writes the sum into the skip connection's buffer (mkldnn::_convolution_pointwise_,
 * `other` first). ResNet's identity is also read by the block's first convolution, before.
 * ResNet-18 at batch 2, Python, the same kernels: 22.7 against 22.2-22.3 ms.
 */
function convSumInPlace(f: GraphFacts, n: Node): boolean {
  const other = n.kind === POINTWISE_CONV ? n.arg('other') : undefined;
  if (!other || !mayOverwrite(f, n, other, new Set([POINTWISE_CONV]))) return false;
  const info = tensorInfo(other);
  // oneDNN writes the sum in the skip connection's own layout: only where that is the output's (channels last).
  if (!info || !isChannelsLastContiguous(info.shape, info.strides)) return false;
  const x = n.arg('X')!;
  n.replaceInput(0, other);
  n.replaceInput(1, x);
  n.kind = `${POINTWISE_CONV}_`;
  n.schema = POINTWISE_CONV_IN_PLACE_SCHEMA;
  return true;
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
    } else if ((options.adds ?? true) && convSumInPlace(f, n)) {
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
