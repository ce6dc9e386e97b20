// Graph: the owner of a top block, the value id counter and the insertion point.
import { Block, Node, Value } from './node';
import { printGraph, type PrintOptions } from './print';
import { decodeJson, encodeJson, graphToData, loadGraphData, type GraphJson, type JsonOptions } from './serialize';
import type { AttrData, GraphData, ScopeFrame, TypeData } from './serialized';
import { BoolType, FloatType, IntType, ListType, NoneType, StringType } from './types';
import { verifyGraph } from './verify';

export interface CreateNodeOptions {
  schema?: string;
  scope?: ScopeFrame[];
  source?: string;
  /** Debug names for the outputs, by position. */
  outputNames?: (string | undefined)[];
}

export class Graph {
  readonly block: Block;
  private nextValueId = 0;
  /** New nodes go just before this node; a block's returnNode means "append to that block". */
  private insertPointNode: Node;

  constructor() {
    this.block = new Block(this, null);
    this.insertPointNode = this.block.returnNode;
  }

  get inputs(): readonly Value[] { return this.block.inputs; }
  get outputs(): readonly Value[] { return this.block.outputs; }

  /** An id no value of this graph has used yet. */
  freshValueId(): number { return this.nextValueId++; }

  /** @internal Keep freshValueId ahead of ids chosen by the caller (fromData keeps exported ids). */
  noteValueId(id: number): void {
    if (id >= this.nextValueId) this.nextValueId = id + 1;
  }

  addInput(type: TypeData, name?: string): Value { return this.block.addInput(type, name); }
  registerOutput(v: Value): number { return this.block.registerOutput(v); }
  setOutputs(vs: readonly Value[]): void { this.block.setOutputs(vs); }

  /** A detached node: place it with insertBefore/insertAfter or Block.appendNode. */
  create(kind: string, inputs: readonly Value[] = [], outputTypes: readonly TypeData[] = [],
    attrs: Record<string, AttrData> = {}, opts: CreateNodeOptions = {}): Node {
    const n = new Node(this, kind);
    inputs.forEach((v) => n.addInput(v));
    outputTypes.forEach((t, i) => n.addOutput(t, opts.outputNames?.[i]));
    n.attrs = { ...attrs };
    if (opts.schema !== undefined) n.schema = opts.schema;
    if (opts.scope !== undefined) n.scope = opts.scope;
    if (opts.source !== undefined) n.source = opts.source;
    return n;
  }

  /** create() and insert at the insertion point (end of the top block unless set otherwise). */
  createNode(kind: string, inputs: readonly Value[] = [], outputTypes: readonly TypeData[] = [],
    attrs: Record<string, AttrData> = {}, opts: CreateNodeOptions = {}): Node {
    return this.insertNode(this.create(kind, inputs, outputTypes, attrs, opts));
  }

  insertNode(n: Node): Node { return n.insertBefore(this.insertPointNode); }

  /**
   * A prim::Constant for a JS value: bigint -> int, number -> float, boolean -> bool, null -> None,
   * arrays of bigint/number -> int[]/float[].
   */
  insertConstant(value: bigint | number | boolean | string | null | bigint[] | number[], opts: CreateNodeOptions = {}): Value {
    const make = (type: TypeData, attr?: AttrData) =>
      this.createNode('prim::Constant', [], [type], attr ? { value: attr } : {}, opts).output;
    if (value === null) return make(NoneType);
    if (typeof value === 'bigint') return make(IntType, { kind: 'i', value });
    if (typeof value === 'number') return make(FloatType, { kind: 'f', value });
    // TorchScript stores bools as int attributes on a bool-typed constant.
    if (typeof value === 'boolean') return make(BoolType, { kind: 'i', value: value ? 1n : 0n });
    if (typeof value === 'string') return make(StringType, { kind: 's', value });
    if (value.every((x): x is bigint => typeof x === 'bigint')) return make(ListType(IntType), { kind: 'is', value: [...value] });
    return make(ListType(FloatType), { kind: 'fs', value: (value as number[]).slice() });
  }

  /** The node new nodes are inserted before (a block's returnNode when appending). */
  get insertPoint(): Node { return this.insertPointNode; }

  /** Insert before `target` (a Node), or at the end of `target` (a Block). */
  setInsertPoint(target: Node | Block): void {
    this.insertPointNode = target instanceof Block ? target.returnNode : target;
  }

  /** Run `fn` with the insertion point set to `target`, restoring it afterwards. */
  withInsertPoint<T>(target: Node | Block, fn: () => T): T {
    const saved = this.insertPointNode;
    this.setInsertPoint(target);
    try { return fn(); } finally { this.insertPointNode = saved; }
  }

  /** Top-level nodes in order. */
  nodes(): Node[] { return this.block.nodes(); }

  /** Every node, in execution order: a node precedes the nodes of its blocks. */
  allNodes(): Node[] {
    const out: Node[] = [];
    const walk = (b: Block) => b.nodes().forEach((n) => { out.push(n); n.blocks.forEach(walk); });
    walk(this.block);
    return out;
  }

  /** Every block: the top block, then each node's blocks in execution order. */
  allBlocks(): Block[] {
    return [this.block, ...this.allNodes().flatMap((n) => n.blocks)];
  }

  /** Every value defined in the graph: block inputs and node outputs, in definition order. */
  allValues(): Value[] {
    const out: Value[] = [];
    const walk = (b: Block) => {
      out.push(...b.inputs);
      b.nodes().forEach((n) => { n.blocks.forEach(walk); out.push(...n.outputs); });
    };
    walk(this.block);
    return out;
  }

  /**
   * Remove nodes whose outputs are unused and that have no side effects (Node.hasSideEffects),
   * innermost blocks first, in place. Returns the number of nodes removed (nested ones included).
   */
  eliminateDeadCode(): number {
    let removed = 0;
    const sweep = (b: Block) => {
      for (const n of b.nodes().reverse()) {
        n.blocks.forEach(sweep);
        if (n.hasUses() || n.hasSideEffects()) continue;
        removed += 1 + n.blocks.reduce((k, sb) => k + countNodes(sb), 0);
        n.destroy();
      }
    };
    sweep(this.block);
    return removed;
  }

  /** A deep copy with the same value ids; node and block meta are copied shallowly; tensor handles are shared. */
  clone(): Graph {
    const g = Graph.fromData(this.toData());
    const mine = this.allNodes();
    g.allNodes().forEach((n, i) => { n.meta = { ...mine[i].meta }; });
    const myBlocks = this.allBlocks();
    g.allBlocks().forEach((b, i) => { b.meta = { ...myBlocks[i].meta }; });
    return g;
  }

  /** Throws GraphVerifyError naming the first offending node. */
  verify(): void { verifyGraph(this); }

  /** A readable dump: one line per node, nested blocks indented. */
  print(opts?: PrintOptions): string { return printGraph(this, opts); }
  toString(): string { return this.print(); }

  /** Plain data for the native side; independent of this graph except for shared tensor handles. */
  toData(): GraphData { return graphToData(this); }

  /** Build a graph from exported data, keeping its value ids. Does not verify (call verify()). */
  static fromData(data: GraphData): Graph {
    const g = new Graph();
    loadGraphData(g, data);
    return g;
  }

  /**
   * A JSON-safe object (so JSON.stringify(graph) works): BigInt as {"$bigint": "123"},
   * non-finite floats and -0 as {"$float": "-Infinity"}, tensors as {"$tensor": i} indexes into
   * `opts.tensors` when given (handles are appended there), else {"$tensor": null, dtype, shape}.
   */
  toJSON(opts?: JsonOptions | string): GraphJson {
    // JSON.stringify passes the property key as the first argument; ignore it.
    return encodeJson(this.toData(), typeof opts === 'object' ? opts : {});
  }

  /** Inverse of toJSON, from the object or its JSON text. Placeholders become TensorPlaceholder objects. */
  static fromJSON(json: string | GraphJson, opts: JsonOptions = {}): Graph {
    return Graph.fromData(decodeJson(typeof json === 'string' ? JSON.parse(json) : json, opts));
  }
}

function countNodes(b: Block): number {
  return b.nodes().reduce((k, n) => k + 1 + n.blocks.reduce((j, sb) => j + countNodes(sb), 0), 0);
}

/** The module a method's graph takes as its first input (`self`, Class-typed); undefined for a graph that takes none. */
export function moduleSelf(g: Graph): Value | undefined {
  const v = g.inputs[0];
  return v?.type.kind === 'Class' ? v : undefined;
}
