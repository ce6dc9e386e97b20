// A graph's weights moved into a module of its own: every value the graph computes from the
// module alone (attribute reads, and pure ops on them such as a slice of a packed in_proj_weight
// or a transposed Conv1D weight) and every tensor constant (folded, concatenated weights) becomes
// one tensor attribute of a new flat module; scalars read from the module become constants. The
// tensors are the module's own (views stay views: nothing is copied), so once the original
// module is disposed, what the graph does not read is freed. This is torch.jit.freeze's idea,
// with the weights kept as attributes so that they can be replaced one by one (prepacking) and
// saved under readable names.
import { getAttrObject, Graph, moduleSelf, type Node, type Value, type TypeData } from '../core/ir';
import type { TensorHandleLike } from '../core/ir/serialized';
import type { NativeModule, NativeModuleSpec, NativeTensor, NativeValue } from '../torchscript/binding';
import { isInPlaceKind } from '../core/ir/node';
import type { ArgumentInfo, DefaultValue } from '../torchscript/arguments';
import { copyNodeBefore } from '../transforms/inline-modules';
import { setValueInfo, valueInfo } from '../core/value-info';
import { tensorConstantOf } from '../core/constants';
import { native, nativeSync, TorchGraphError } from '../core/errors';

/** The class of an owned module (one per module: each lives in its own compilation unit). */
export const OWNED_CLASS = '__torch__.torchgraph.OptimizedModule';

/** One attribute of the owned module and where its tensor came from. */
export interface OwnedWeight {
  name: string;
  /**
   * The state_dict name it was read from (`encoder.layers.0.linear1.weight`), what was computed
   * from one (`... (aten::slice)`), or `constant` (a weight a lowering computed).
   */
  source: string;
}

export interface OwnedGraph {
  /** The graph, reading every weight as `prim::GetAttr[name](%self)` of the owned module. */
  graph: Graph;
  /** The tensors by attribute name (handles the caller disposes once the module holds them). */
  tensors: Map<string, NativeTensor>;
  weights: OwnedWeight[];
}

/** Tensor constants of at most this many elements stay in the graph. */
const SMALL_CONSTANT = 64;

/** GetAttr reads inside blocks (scripted models' branches) moved to the top block: an attribute read is pure. */
function hoistAttributeReads(g: Graph): void {
  for (const n of g.allNodes()) {
    if (n.kind !== 'prim::GetAttr' || n.owningBlock === g.block) continue;
    const src = getAttrObject(n);
    if (src.owningBlock !== g.block) continue;
    let top: Node = n;
    while (top.owningBlock !== g.block) top = top.owningBlock!.owningNode!;
    n.removeFromBlock();
    n.insertBefore(top);
  }
}

/** Values computed from `self` alone by pure top-level nodes (in-place ops and nodes with blocks excluded). */
function moduleValues(g: Graph, self: Value): Set<Value> {
  const cone = new Set<Value>([self]);
  const constant = (v: Value) => v.node?.isConstant === true;
  for (const n of g.block.nodes()) {
    if (n.isConstant || n.blocks.length || n.hasSideEffects() || isInPlaceKind(n.kind)) continue;
    if (n.inputs.some((v) => cone.has(v)) && n.inputs.every((v) => cone.has(v) || constant(v))) n.outputs.forEach((o) => cone.add(o));
  }
  return cone;
}

function attributePath(v: Value): string | undefined {
  const n = v.node;
  if (!n) return '';
  if (n.kind !== 'prim::GetAttr') return undefined;
  const base = attributePath(getAttrObject(n));
  const name = String(n.attr('name'));
  return base === undefined ? undefined : base ? `${base}.${name}` : name;
}

/** What a computed module value derives from, for its attribute's name and the report. */
function describeSource(v: Value): { path: string; op?: string } {
  const direct = attributePath(v);
  if (direct !== undefined) return { path: direct };
  const n = v.node!;
  const from = n.inputs.map((i) => (i.node?.isConstant ? undefined : describeSource(i))).find((s) => s);
  return { path: from?.path ?? 'computed', op: n.kind };
}

/** `to` with the shape facts of `from` (the graph keeps its propagated shapes). */
function withInfoOf(from: Value, to: Value): Value {
  const info = valueInfo(from);
  if (info) setValueInfo(to, info);
  return to;
}

function identifier(s: string): string {
  const id = s.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(id) ? `_${id}` : id;
}

function constantFor(g: Graph, before: Node, v: NativeValue, type: TypeData, what: string): Value {
  const put = (c: bigint | number | boolean | null | bigint[] | number[]) => g.withInsertPoint(before, () => g.insertConstant(c));
  if (v === null) return put(null);
  if (type.kind === 'Int' && (typeof v === 'number' || typeof v === 'bigint')) return put(BigInt(v));
  if (type.kind === 'Float' && typeof v === 'number') return put(v);
  if (type.kind === 'Bool' && typeof v === 'boolean') return put(v);
  if (type.kind === 'List' && type.elem.kind === 'Int' && Array.isArray(v)) return put(v.map((x) => BigInt(x as number)));
  throw new TorchGraphError('ERR_GRAPH', `the graph reads ${what} (${type.kind}) from the module, which cannot become a constant`);
}

/** Read every boundary value off the module with one graph of the cone's nodes. */
async function readBoundaryValues(
  module: NativeModule, graph: Graph, self: Value, boundary: Value[], coneNode: (n: Node) => boolean,
): Promise<NativeValue[]> {
  const reader = new Graph();
  const map = new Map<Value, Value>([[self, reader.addInput(self.type, 'self')]]);
  const readerNode = (n: Node) => coneNode(n) || (n.isConstant && n.outputs.some((o) => o.uses.some((u) => coneNode(u.node))));
  for (const n of graph.block.nodes()) if (readerNode(n)) copyNodeBefore(n, reader.block.returnNode, map, []);
  const items = boundary.map((v) => map.get(v)!);
  reader.setOutputs([reader.createNode('prim::TupleConstruct', items, [{ kind: 'Tuple', elems: items.map((v) => v.type) }]).output]);
  const built = nativeSync(() => module.buildGraph(reader.toData()));
  try {
    return (await native(() => built.run([]))).output as NativeValue[];
  } finally {
    built.dispose();
  }
}

/**
 * `graph` (changed in place) reading its weights from a new flat module instead of `module`.
 * Values are read off `module` once, by one small graph; tensor results are shared with it.
 */
export async function ownWeights(module: NativeModule, graph: Graph): Promise<OwnedGraph> {
  const self = selfOf(graph);
  hoistAttributeReads(graph);
  const cone = moduleValues(graph, self);
  const coneNode = (n: Node) => n.outputs.some((o) => cone.has(o));
  const outputs = new Set(graph.outputs);
  const boundary = [...cone].filter((v) => v !== self && (outputs.has(v) || v.uses.some((u) => !coneNode(u.node))));
  const cls = boundary.find((v) => v.type.kind === 'Class');
  if (cls) {
    throw new TorchGraphError('ERR_GRAPH',
      `the graph passes the submodule ${attributePath(cls) || '%' + cls.debugName} around as an object: it is not fully inlined`);
  }

  const values = await readBoundaryValues(module, graph, self, boundary, coneNode);

  const tensors = new Map<string, NativeTensor>();
  const weights: OwnedWeight[] = [];
  const taken = new Set<string>();
  const uniqueName = (base: string) => {
    let name = identifier(base) || 'weight';
    for (let k = 1; taken.has(name); k++) name = `${identifier(base)}_${k}`;
    taken.add(name);
    return name;
  };
  const first = graph.block.firstNode!;
  const newSelf = self;
  const read = (name: string) => graph.withInsertPoint(first, () => graph.createNode(
    'prim::GetAttr', [newSelf], [{ kind: 'Tensor' }], { name: { kind: 's', value: name } },
  ).output);
  const isTensor = (v: NativeValue): v is NativeTensor => typeof v === 'object' && v !== null && !Array.isArray(v)
    && 'dtype' in v && 'shape' in v;
  // A scripted model reads one attribute at several sites (PyTorch's fast path and slow path):
  // one attribute each, so that the weight is held, prepacked and saved once.
  const byPath = new Map<string, string>();
  boundary.forEach((v, i) => {
    const r = values[i];
    if (isTensor(r)) {
      const src = describeSource(v);
      const same = src.op ? undefined : byPath.get(src.path);
      if (same) {
        r.dispose();
        v.replaceAllUsesWith(withInfoOf(v, read(same)));
        return;
      }
      const name = uniqueName(src.op ? `${src.path}_${src.op.split('::').pop()}` : src.path);
      if (!src.op) byPath.set(src.path, name);
      tensors.set(name, r);
      weights.push({ name, source: src.op ? `${src.path} (${src.op})` : src.path });
      v.replaceAllUsesWith(withInfoOf(v, read(name)));
    } else {
      const type = v.type.kind === 'Optional' ? v.type.elem : v.type;
      v.replaceAllUsesWith(constantFor(graph, first, r, type, attributePath(v) || `%${v.debugName}`));
    }
  });
  // Tensor constants (weights the lowerings computed), one attribute per tensor. Small ones stay
  // constants: a trace records scalars as 0-d tensor constants, and shape runs need their values.
  const byHandle = new Map<TensorHandleLike, string>();
  for (const n of graph.allNodes()) {
    const t = n.isConstant ? tensorConstantOf(n.output) : undefined;
    if (!t || t.shape.reduce((a, b) => a * b, 1) <= SMALL_CONSTANT) continue;
    let name = byHandle.get(t);
    if (!name) {
      name = uniqueName(`constant_${n.output.uses[0]?.node.modulePath || 'graph'}`);
      byHandle.set(t, name);
      tensors.set(name, t as NativeTensor);
      weights.push({ name, source: 'constant' });
    }
    const attrName = name;
    const v = graph.withInsertPoint(first, () => graph.createNode(
      'prim::GetAttr', [newSelf], [{ kind: 'Tensor' }], { name: { kind: 's', value: attrName } },
    ).output);
    n.output.replaceAllUsesWith(withInfoOf(n.output, v));
    n.destroy();
  }
  graph.eliminateDeadCode();
  const stray = self.users().find((u) => u.kind !== 'prim::GetAttr' || !tensors.has(String(u.attr('name'))));
  if (stray) throw new TorchGraphError('ERR_GRAPH', `the graph still reads the module through ${stray.kind}`);
  self.type = { kind: 'Class', name: OWNED_CLASS };
  return { graph, tensors, weights };
}

/** The spec of a flat module holding `tensors` as buffers, with `graph` as its forward. */
export function ownedModuleSpec(
  graph: Graph, tensors: ReadonlyMap<string, NativeTensor>, signature?: readonly ArgumentInfo[],
): NativeModuleSpec {
  // The signature names forward's arguments and carries their defaults (one per graph input after self).
  const args = signature && signature.length === graph.inputs.length - 1 ? signature.map(schemaArgument) : undefined;
  return {
    modules: [{ path: '', cls: OWNED_CLASS }],
    tensors: [...tensors].map(([name, tensor]) => ({ module: '', name, kind: 'buffer' as const, tensor })),
    methods: [{ module: '', name: 'forward', graph: graph.toData(), ...(args ? { arguments: args } : {}) }],
  };
}

/** An argument as the native schema takes it: a default as a value (List[...] defaults as typed lists, tuples as arrays). */
function schemaArgument(a: ArgumentInfo): { name: string; default?: NativeValue } {
  if (!a.hasDefault || a.default === undefined) return { name: a.name };
  const list = a.type.match(/^List\[(int|float|bool)\]$/);
  const value = (v: DefaultValue): NativeValue => (Array.isArray(v) ? v.map(value) : v);
  return {
    name: a.name,
    default: list && Array.isArray(a.default)
      ? { list: a.default.map(value), elem: list[1] as 'int' | 'float' | 'bool' }
      : value(a.default),
  };
}

/** The module `g` takes as its first input. */
function selfOf(g: Graph): Value {
  const self = moduleSelf(g);
  if (!self) throw new TorchGraphError('ERR_GRAPH', 'the graph does not take the module as its first input');
  return self;
}

/** Each attribute of the owned module and its reads in `g` (`prim::GetAttr[name](%self)`). */
export function attributeReads(g: Graph): Map<string, Value[]> {
  const out = new Map<string, Value[]>();
  for (const u of selfOf(g).users()) {
    if (u.kind !== 'prim::GetAttr') continue;
    const name = String(u.attr('name'));
    out.set(name, [...(out.get(name) ?? []), u.output]);
  }
  return out;
}

/** The attribute `v` reads off the graph's module, if it is such a read. */
export function attributeOf(g: Graph, v: Value): string | undefined {
  const n = v.node;
  return n?.kind === 'prim::GetAttr' && getAttrObject(n) === moduleSelf(g) ? String(n.attr('name')) : undefined;
}

/** A read of the module's attribute `name`, at the top of `g`. */
export function readAttribute(g: Graph, name: string): Value {
  return g.withInsertPoint(g.block.firstNode!, () => g.createNode(
    'prim::GetAttr', [selfOf(g)], [{ kind: 'Tensor' }], { name: { kind: 's', value: name } },
  ).output);
}
