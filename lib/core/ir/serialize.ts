// GraphData <-> Graph, and GraphData <-> JSON-safe objects (BigInt, non-finite floats, tensor handles).
import type { Graph } from './graph';
import type { Block, Node, Value } from './node';
import type { AttrData, BlockData, DType, GraphData, IValueData, NodeData, TensorHandleLike, TypeData, ValueData } from './serialized';

// ---- Graph <-> GraphData ---------------------------------------------------------------------

export function graphToData(g: Graph): GraphData {
  return blockToData(g.block);
}

function blockToData(b: Block): BlockData {
  return { inputs: b.inputs.map(valueToData), outputs: b.outputs.map((v) => v.id), nodes: b.nodes().map(nodeToData) };
}

function nodeToData(n: Node): NodeData {
  const d: NodeData = {
    kind: n.kind,
    inputs: n.inputs.map((v) => v.id),
    outputs: n.outputs.map(valueToData),
    attrs: copyAttrs(n.attrs),
    blocks: n.blocks.map(blockToData),
  };
  // Optional fields only when present, so toData(fromData(d)) deep-equals d.
  if (n.schema !== undefined) d.schema = n.schema;
  if (n.scope !== undefined) d.scope = n.scope.map((f) => ({ ...f }));
  if (n.source !== undefined) d.source = n.source;
  return d;
}

function valueToData(v: Value): ValueData {
  const d: ValueData = { id: v.id, type: copyType(v.type) };
  if (v.name !== undefined) d.name = v.name;
  return d;
}

/** Fill an empty graph. Forward references resolve (verify() reports them); unknown or duplicate ids throw. */
export function loadGraphData(g: Graph, data: GraphData): void {
  const byId = new Map<number, Value>();
  const wiring: (() => void)[] = [];
  const define = (v: Value) => {
    if (byId.has(v.id)) throw new Error(`Graph.fromData: duplicate value id ${v.id}`);
    byId.set(v.id, v);
  };
  const resolve = (id: number, where: string) => {
    const v = byId.get(id);
    if (!v) throw new Error(`Graph.fromData: ${where} refers to unknown value id ${id}`);
    return v;
  };
  const fill = (block: Block, bd: BlockData) => {
    bd.inputs.forEach((vd) => define(block.addInput(copyType(vd.type), vd.name, vd.id)));
    for (const nd of bd.nodes) {
      const n = block.appendNode(g.create(nd.kind, [], [], copyAttrs(nd.attrs), {
        schema: nd.schema, scope: nd.scope?.map((f) => ({ ...f })), source: nd.source,
      }));
      nd.outputs.forEach((vd) => define(n.addOutput(copyType(vd.type), vd.name, vd.id)));
      wiring.push(() => nd.inputs.forEach((id, i) => n.addInput(resolve(id, `input ${i} of ${nd.kind}`))));
      nd.blocks.forEach((sbd) => fill(n.addBlock(), sbd));
    }
    wiring.push(() => bd.outputs.forEach((id, i) => block.registerOutput(resolve(id, `block output ${i}`))));
  };
  fill(g.block, data);
  wiring.forEach((wire) => wire());
}

const copyType = (t: TypeData): TypeData => structuredClone(t);

function copyAttrs(attrs: Record<string, AttrData>): Record<string, AttrData> {
  const out: Record<string, AttrData> = {};
  for (const [k, a] of Object.entries(attrs)) {
    out[k] = a.kind === 't' ? { kind: 't', value: a.value }
      : a.kind === 'ival' ? { kind: 'ival', value: copyIValue(a.value) }
      : structuredClone(a); // plain data (bigint included); tensors must not be cloned
  }
  return out;
}

function copyIValue(v: IValueData): IValueData {
  switch (v.type) {
    case 'tensor': return { type: 'tensor', tensor: v.tensor };
    case 'list': return { type: 'list', items: v.items.map(copyIValue), elem: copyType(v.elem) };
    case 'tuple': return { type: 'tuple', items: v.items.map(copyIValue) };
    case 'enum': return { ...v, value: copyIValue(v.value) };
    default: return { ...v };
  }
}

// ---- GraphData <-> JSON ----------------------------------------------------------------------

export interface JsonOptions {
  /**
   * Side table for tensor handles. toJSON appends each distinct handle (by identity) and writes
   * {"$tensor": index}; fromJSON reads handles back from it. Without it, toJSON writes
   * {"$tensor": null, dtype, shape} placeholders, and fromJSON turns them into TensorPlaceholder.
   */
  tensors?: TensorHandleLike[];
}

export const GRAPH_JSON_FORMAT = 'torchgraph.graph';

export interface GraphJson {
  format: typeof GRAPH_JSON_FORMAT;
  version: 1;
  graph: unknown;
}

/** Stands in for a tensor that was serialized without a side table; it cannot be run. */
export class TensorPlaceholder implements TensorHandleLike {
  readonly placeholder = true;
  constructor(readonly dtype: DType, readonly shape: number[]) {}
}

export function isTensorPlaceholder(t: unknown): t is TensorPlaceholder {
  return t instanceof TensorPlaceholder;
}

export function encodeJson(data: GraphData, opts: JsonOptions): GraphJson {
  const encodeTensor = (t: TensorHandleLike) => {
    if (!opts.tensors) return { $tensor: null, dtype: t.dtype, shape: [...t.shape] };
    let i = opts.tensors.indexOf(t);
    if (i < 0) i = opts.tensors.push(t) - 1;
    return { $tensor: i };
  };
  const encode = (x: unknown): unknown => {
    if (typeof x === 'bigint') return { $bigint: x.toString() };
    if (typeof x === 'number') return Number.isFinite(x) && !Object.is(x, -0) ? x : { $float: String(Object.is(x, -0) ? '-0' : x) };
    if (Array.isArray(x)) return x.map(encode);
    if (x === null || typeof x !== 'object') return x;
    const o = x as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined) continue;
      // Tensor handles are native objects: recognised by position, never walked into.
      const isTensorSlot = (k === 'value' && o.kind === 't') || (k === 'tensor' && o.type === 'tensor');
      out[k] = isTensorSlot ? encodeTensor(v as TensorHandleLike) : encode(v);
    }
    return out;
  };
  return { format: GRAPH_JSON_FORMAT, version: 1, graph: encode(data) };
}

export function decodeJson(json: GraphJson, opts: JsonOptions): GraphData {
  if (json?.format !== GRAPH_JSON_FORMAT || json.version !== 1) {
    throw new Error(`Graph.fromJSON: expected format "${GRAPH_JSON_FORMAT}" version 1`);
  }
  const decode = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(decode);
    if (x === null || typeof x !== 'object') return x;
    const o = x as Record<string, unknown>;
    if (typeof o.$bigint === 'string') return BigInt(o.$bigint);
    if (typeof o.$float === 'string') return Number(o.$float);
    if ('$tensor' in o) {
      if (o.$tensor === null) return new TensorPlaceholder(o.dtype as DType, o.shape as number[]);
      const t = opts.tensors?.[o.$tensor as number];
      if (!t) throw new Error(`Graph.fromJSON: tensor ${String(o.$tensor)} is not in the side table`);
      return t;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[k] = decode(v);
    return out;
  };
  return decode(json.graph) as GraphData;
}
