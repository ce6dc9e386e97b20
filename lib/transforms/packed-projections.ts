// A packed in-projection split the way torch.nn.functional.multi_head_attention_forward splits it
// (torch/nn/functional.py _in_projection_packed, what a torch.export program or a trace of an
// nn.MultiheadAttention off its fast path records):
//
//   proj = linear(x, W, b)                                       # W: (n*E, in)
//   proj = proj.unflatten(-1, (n, E)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
//   ... proj[0], proj[1], ...                                    # select(proj, 0, i)
//
// -> one linear per piece over a row slice of the packed weight (and bias):
//
//   proj[i] = linear(x, W[i*E:(i+1)*E], b[i*E:(i+1)*E])
//
// which is how torchgraph's own decomposition of aten::_native_multi_head_attention (the
// TorchScript fast path) writes the same projections. With one spelling, the partitioner's
// parallel-projection rule sees the same group in both, and its lowering (one linear over the
// packed weight, column slices of its output) replaces the unflatten/transpose/contiguous copy.
import { dataInput, type Graph, type Node, type Value } from '../core/ir';
import { constOf } from '../core/constants';
import { setValueInfo, tensorInfo } from '../core/value-info';
import { contiguousStrides } from '../core/strides';

/** The sole user of `v`, when it is of `kind`. */
function soleUser(v: Value, kind: string): Node | undefined {
  if (v.uses.length !== 1) return undefined;
  const n = v.uses[0].node;
  return n.kind === kind && dataInput(n) === v ? n : undefined;
}

function intArg(n: Node, name: string): number | undefined {
  const v = n.arg(name);
  const c = v ? constOf(v) : undefined;
  return typeof c === 'number' ? c : undefined;
}

/** `d` as a non-negative dim of a tensor of rank `rank`. */
const dimOf = (d: number | undefined, rank: number) => (d === undefined ? undefined : d < 0 ? d + rank : d);

export interface PackedSplit { linear: Node; pieces: number; width: number; selects: { node: Node; index: number }[]; dead: Node[] }

/** The packed split of `linear`'s output, or undefined when it is not read as one. */
export function packedSplit(linear: Node): PackedSplit | undefined {
  if (linear.kind !== 'aten::linear' || linear.outputs.length !== 1) return undefined;
  const rank = tensorInfo(linear.output)?.shape.length;
  if (rank === undefined || rank < 1) return undefined;
  const unflatten = soleUser(linear.output, 'aten::unflatten');
  if (!unflatten || dimOf(intArg(unflatten, 'dim'), rank) !== rank - 1) return undefined;
  const sizes = constOf(unflatten.arg('sizes')!);
  if (!Array.isArray(sizes) || sizes.length !== 2 || sizes.some((s) => s <= 0)) return undefined;
  const [pieces, width] = sizes;
  // (..., n, E) -> (1, ..., n, E) -> (n, ..., 1, E) -> (n, ..., E)
  const unsqueeze = soleUser(unflatten.output, 'aten::unsqueeze');
  if (!unsqueeze || dimOf(intArg(unsqueeze, 'dim'), rank + 2) !== 0) return undefined;
  const transpose = soleUser(unsqueeze.output, 'aten::transpose');
  if (!transpose) return undefined;
  const dims = [dimOf(intArg(transpose, 'dim0'), rank + 2), dimOf(intArg(transpose, 'dim1'), rank + 2)].sort();
  if (dims[0] !== 0 || dims[1] !== rank) return undefined;
  const squeeze = soleUser(transpose.output, 'aten::squeeze');
  if (!squeeze || dimOf(intArg(squeeze, 'dim'), rank + 2) !== rank) return undefined;
  const dead = [unflatten, unsqueeze, transpose, squeeze];
  let pieced = squeeze.output;
  const contiguous = soleUser(pieced, 'aten::contiguous');
  if (contiguous) {
    const format = contiguous.arg('memory_format');
    if (format && constOf(format) !== 0) return undefined; // torch.contiguous_format only
    dead.push(contiguous);
    pieced = contiguous.output;
  }
  const selects: PackedSplit['selects'] = [];
  for (const u of pieced.uses) {
    const s = u.node;
    const isRowSelect = s.kind === 'aten::select' && u.index === 0 && dimOf(intArg(s, 'dim'), rank + 1) === 0;
    const index = isRowSelect ? dimOf(intArg(s, 'index'), pieces) : undefined;
    if (index === undefined || index < 0 || index >= pieces) return undefined;
    selects.push({ node: s, index });
  }
  return selects.length ? { linear, pieces, width, selects, dead } : undefined;
}

/** Rewrite every packed split of `g` (see the file comment); returns how many linears were split. */
export function splitPackedProjections(g: Graph): number {
  let count = 0;
  for (const n of g.allNodes()) {
    if (n.isDestroyed) continue;
    const split = packedSplit(n);
    if (split) {
      rewrite(g, split);
      count++;
    }
  }
  return count;
}

function rewrite(g: Graph, { linear, width, selects, dead }: PackedSplit): void {
  const x = linear.arg('input')!, w = linear.arg('weight')!, b = linear.arg('bias')!;
  const hasBias = constOf(b) !== null;
  const opts = { scope: linear.scope, source: linear.source };
  g.withInsertPoint(linear, () => {
    const rows = (t: Value, i: number): Value => {
      const s = g.createNode('aten::slice', [
        t, g.insertConstant(0n), g.insertConstant(BigInt(i * width)), g.insertConstant(BigInt((i + 1) * width)), g.insertConstant(1n),
      ], [{ kind: 'Tensor' }], {}, opts).output;
      const info = tensorInfo(t);
      if (info && info.shape.length >= 1) {
        const shape = [width, ...info.shape.slice(1)];
        const bytes = (info.bytes / Math.max(1, info.shape.reduce((a, d) => a * d, 1))) * shape.reduce((a, d) => a * d, 1);
        setValueInfo(s, { ...info, shape, bytes });
      }
      return s;
    };
    for (const { node, index } of selects) {
      const linearOpts = { ...opts, ...(linear.schema ? { schema: linear.schema } : {}) };
      const y = g.createNode('aten::linear', [x, rows(w, index), hasBias ? rows(b, index) : b], [{ kind: 'Tensor' }], {},
        linearOpts).output;
      const info = tensorInfo(node.output);
      if (info) setValueInfo(y, { ...info, strides: contiguousStrides(info.shape), storageBytes: info.bytes });
      node.output.replaceAllUsesWith(y);
    }
  });
  for (const { node } of selects) node.destroy();
  for (const d of [...dead].reverse()) d.destroy();
  linear.destroy();
}
