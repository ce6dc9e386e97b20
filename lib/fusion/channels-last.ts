// Where the fused graph's channels-last activations (written by the pointwise convolutions,
// conv-pointwise.ts) meet code written for contiguous tensors, the graph's own layout comes back.
// The region is what those convolutions write and what ops that keep a channels-last input
// channels last make of it (activations, elementwise arithmetic with broadcast or scalar
// operands, pooling, batch norm, further pointwise convolutions, which take any layout). Every
// other reader, and the graph's outputs, get aten::contiguous of the value: a view such as
// `x.view(n, -1)` would refuse channels-last strides, and callers see the strides they had.
import { dataInput, isInPlaceKind, type Block, type Graph, type Node, type Value } from '../core/ir';
import { ACT_KINDS_LIST, LAYOUT_KINDS, LIST_VIEW_KINDS, METADATA_INPUT0, POINTWISE_CONV_KINDS } from '../core/ops/classes';
import { tensorInfo } from '../core/value-info';
import { MAX_POOL_KIND } from '../core/ops/own-schemas';
import { Emitter } from '../transforms/emit';

const KEEPS_LAYOUT = new Set([...ACT_KINDS_LIST, ...['add', 'sub', 'mul', 'div', 'clamp', 'clamp_min', 'clamp_max', 'neg', 'dropout']
  .flatMap((k) => [`aten::${k}`, `aten::${k}_`]),
'aten::max_pool2d', 'aten::avg_pool2d', 'aten::adaptive_avg_pool2d', 'aten::batch_norm', ...POINTWISE_CONV_KINDS, MAX_POOL_KIND]);

/** Whether `n`, reading region values, writes channels last: every full-shape tensor operand is in the region. */
function keepsLayout(n: Node, region: ReadonlySet<Value>): boolean {
  if (!KEEPS_LAYOUT.has(n.kind) || n.outputs.length !== 1 || n.output.type.kind !== 'Tensor') return false;
  if (POINTWISE_CONV_KINDS.has(n.kind)) return true;
  if (isInPlaceKind(n.kind)) return region.has(dataInput(n)); // in place: the written tensor keeps its layout
  const shape = tensorInfo(n.output)?.shape;
  if (!shape) return false;
  return n.inputs.every((v) => {
    if (region.has(v) || v.type.kind !== 'Tensor') return true;
    const s = tensorInfo(v)?.shape;
    return !!s && (s.length < shape.length || s.some((d, i) => d === 1 && shape[i] !== 1)); // a broadcast operand
  });
}

/** The readers of a list that hand out its elements: for a list view (chunk, split), views themselves. */
const LIST_ELEMENT_KINDS = new Set(['aten::__getitem__', 'prim::ListUnpack']);

/** Whether `v`, or a view of a view of it, is written in place (input 0 of an in-place op). */
function writtenThroughViews(v: Value): boolean {
  return v.uses.some(({ node: u, index }) => index === 0 && (isInPlaceKind(u.kind)
    || ((LAYOUT_KINDS.has(u.kind) || LIST_VIEW_KINDS.has(u.kind) || LIST_ELEMENT_KINDS.has(u.kind))
      && u.outputs.some(writtenThroughViews))));
}

/**
 * Inserts aten::contiguous where values written by the `starts` (pointwise convolutions'
 * outputs) leave the channels-last region, in place (block outputs count as leaving). Returns
 * how many copies were inserted; throws when an op would write a region value in place.
 */
export function restoreLayouts(g: Graph, starts: Value[]): number {
  const region = new Set(starts);
  const exits: { node: Node; index: number }[] = [];
  const visit = (b: Block): void => {
    for (const n of b.nodes()) {
      n.blocks.forEach(visit);
      const inputs = n.inputs.map((v, index) => ({ v, index })).filter(({ v }) => region.has(v));
      if (!inputs.length || starts.includes(n.outputs[0])) continue;
      if (keepsLayout(n, region)) { region.add(n.output); continue; }
      // Shape, dtype and device reads see the same answer; stride and contiguity reads get a copy.
      if (METADATA_INPUT0.has(n.kind) && !/stride|is_contiguous/.test(n.kind)) continue;
      // A copy would take the write of an in-place op away from the value it was meant for.
      if (isInPlaceKind(n.kind) && region.has(dataInput(n))) throw new Error(`${n.kind} writes a channels-last value in place`);
      // A copy at a view would take a later write through that view away from the value.
      if ((LAYOUT_KINDS.has(n.kind) || LIST_VIEW_KINDS.has(n.kind)) && n.outputs.some(writtenThroughViews)) {
        throw new Error(`${n.kind} of a channels-last value is written in place later`);
      }
      for (const { index } of inputs) exits.push({ node: n, index });
    }
    b.returnNode.inputs.forEach((v, index) => { if (region.has(v)) exits.push({ node: b.returnNode, index }); });
  };
  visit(g.block);
  const copies = new Map<Node, Map<Value, Value>>();
  for (const { node, index } of exits) {
    const v = node.inputs[index];
    const mine = copies.get(node) ?? new Map<Value, Value>();
    copies.set(node, mine);
    let c = mine.get(v);
    if (!c) {
      const em = new Emitter(g, node, { id: 'channels_last', scope: node.scope, attention: false });
      em.role = 'restore_layout';
      c = em.contiguous(v);
      mine.set(v, c);
    }
    node.replaceInput(index, c);
  }
  return [...copies.values()].reduce((a, m) => a + m.size, 0);
}
