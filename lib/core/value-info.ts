// What shape propagation knows about a value, stored on the producing node's meta
// (torch.fx's habit: analyses write into node.meta); block and graph inputs keep theirs in
// their block's meta, so Graph.clone() carries both.
import type { DType } from './ir/serialized';
import type { Graph, Value } from './ir';

export type ValueInfo =
  | { kind: 'Tensor'; shape: number[]; strides: number[]; dtype: DType; bytes: number; storageBytes: number;
    /** oneDNN's opaque layout (a prepacked weight): `strides` are then the dense ones of its shape. */
    layout?: 'mkldnn' }
  | { kind: 'Int'; value: number }
  | { kind: 'Float'; value: number }
  | { kind: 'Bool'; value: boolean }
  | { kind: 'IntList'; value: number[] }
  | { kind: 'None' }
  | { kind: 'Other'; repr: string };

export type TensorInfo = Extract<ValueInfo, { kind: 'Tensor' }>;

type InfoList = (ValueInfo | undefined)[];
/** Block inputs' info by value id (ids survive clone() and the erasing of other inputs). */
type InfoById = Record<number, ValueInfo>;

/** Record info for a value. */
export function setValueInfo(v: Value, info: ValueInfo): void {
  // New containers each time: Graph.clone copies meta shallowly, and a clone's shape run must
  // not write into the graph it was cloned from.
  const n = v.node;
  if (n) {
    const list = [...((n.meta.outputInfo as InfoList | undefined) ?? [])];
    list[n.outputs.indexOf(v)] = info;
    n.meta.outputInfo = list;
    return;
  }
  const b = v.owningBlock;
  if (b) b.meta.inputInfo = { ...(b.meta.inputInfo as InfoById | undefined), [v.id]: info };
}

export function valueInfo(v: Value): ValueInfo | undefined {
  const n = v.node;
  if (n) return (n.meta.outputInfo as InfoList | undefined)?.[n.outputs.indexOf(v)];
  return (v.owningBlock?.meta.inputInfo as InfoById | undefined)?.[v.id];
}

export function tensorInfo(v: Value): TensorInfo | undefined {
  const i = valueInfo(v);
  return i?.kind === 'Tensor' ? i : undefined;
}

/** Drop all recorded info (after a rewrite invalidates it). */
export function clearValueInfo(g: Graph): void {
  for (const n of g.allNodes()) delete n.meta.outputInfo;
  for (const b of g.allBlocks()) delete b.meta.inputInfo;
}
