// What shape propagation knows about a value, stored on the producing node's meta
// (torch.fx's habit: analyses write into node.meta). Graph inputs keep theirs on the graph.
import type { DType } from './ir/serialized';
import type { Graph, Value } from './ir';

export type ValueInfo =
  | { kind: 'Tensor'; shape: number[]; strides: number[]; dtype: DType; bytes: number; storageBytes: number }
  | { kind: 'Int'; value: number }
  | { kind: 'Float'; value: number }
  | { kind: 'Bool'; value: boolean }
  | { kind: 'IntList'; value: number[] }
  | { kind: 'None' }
  | { kind: 'Other'; repr: string };

export type TensorInfo = Extract<ValueInfo, { kind: 'Tensor' }>;

const INPUT_INFO = new WeakMap<Value, ValueInfo>();

/** Record info for a value (node outputs go to node.meta.outputInfo[i]). */
export function setValueInfo(v: Value, info: ValueInfo): void {
  const n = v.node;
  if (!n) { INPUT_INFO.set(v, info); return; }
  // A new list each time: Graph.clone copies meta shallowly, and a clone's shape run must not
  // write into the graph it was cloned from.
  const list = [...((n.meta.outputInfo as (ValueInfo | undefined)[] | undefined) ?? [])];
  list[n.outputs.indexOf(v)] = info;
  n.meta.outputInfo = list;
}

export function valueInfo(v: Value): ValueInfo | undefined {
  const n = v.node;
  if (!n) return INPUT_INFO.get(v);
  return (n.meta.outputInfo as (ValueInfo | undefined)[] | undefined)?.[n.outputs.indexOf(v)];
}

export function tensorInfo(v: Value): TensorInfo | undefined {
  const i = valueInfo(v);
  return i?.kind === 'Tensor' ? i : undefined;
}

/** Drop all recorded info (after a rewrite invalidates it). */
export function clearValueInfo(g: Graph): void {
  for (const n of g.allNodes()) delete n.meta.outputInfo;
}
