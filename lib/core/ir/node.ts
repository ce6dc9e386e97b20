// Value, Node and Block: the mutable core of the IR, modelled on torch::jit (uses are tracked on
// values, block outputs are the inputs of a per-block prim::Return node) with torch.fx's `meta`.
import type { Graph } from './graph';
import type { AttrData, IValueData, ScopeFrame, TensorHandleLike, TypeData } from './serialized';
import { argIndex } from '../ops/registry';

/** One consumer slot: `node.inputs[index]` is the value. Block outputs are uses by the block's prim::Return node. */
export interface Use {
  readonly node: Node;
  readonly index: number;
}

export class Value {
  /** @internal */ _uses: Use[] = [];
  /** @internal */ _node: Node | null;
  /** @internal */ _paramBlock: Block | null;

  /** @internal Create through Graph.addInput, Block.addInput, Graph.createNode or Node.addOutput. */
  constructor(
    readonly graph: Graph,
    /** Unique within the graph, across blocks. */
    readonly id: number,
    public type: TypeData,
    /** TorchScript debug name without the leading %. */
    public name: string | undefined,
    producer: Node | null,
    paramBlock: Block | null,
  ) {
    this._node = producer;
    this._paramBlock = paramBlock;
    graph.noteValueId(id);
  }

  /** The producing node, or null for a block (or graph) input. */
  get node(): Node | null { return this._node; }
  /** The block that defines the value (null once its producer is detached). */
  get owningBlock(): Block | null { return this._node ? this._node.owningBlock : this._paramBlock; }
  get uses(): readonly Use[] { return this._uses; }
  get debugName(): string { return this.name ?? String(this.id); }
  hasUses(): boolean { return this._uses.length > 0; }

  /** Distinct consuming nodes in use order; prim::Return nodes stand for block/graph outputs. */
  users(): Node[] {
    return [...new Set(this._uses.map((u) => u.node))];
  }

  /** Point every use of this value at `other` (graph outputs included). */
  replaceAllUsesWith(other: Value): void {
    if (other === this) return;
    assertSameGraph(this.graph, other);
    for (const u of this._uses) {
      u.node._inputs[u.index] = other;
      other._uses.push(u);
    }
    this._uses = [];
  }
}

export type ConstantValue = bigint | number | boolean | string | null | TensorHandleLike | ConstantValue[];

/** Kinds that must survive dead code elimination even when their outputs are unused. */
export const SIDE_EFFECT_KINDS: ReadonlySet<string> = new Set([
  'prim::RaiseException', 'prim::SetAttr', 'prim::Print', 'prim::CallMethod', 'prim::CallFunction',
  'prim::Enter', 'prim::Exit', 'prim::AddStatValue', 'prim::TimePoint', 'aten::warn', 'aten::manual_seed',
]);

export class Node {
  /** @internal */ _inputs: Value[] = [];
  /** @internal */ _outputs: Value[] = [];
  /** @internal */ _blocks: Block[] = [];
  /** @internal */ _owningBlock: Block | null = null;
  /** @internal Circular list per block with the block's return node as sentinel. */ _prev: Node | null = null;
  /** @internal */ _next: Node | null = null;
  /** @internal */ _destroyed = false;

  schema?: string;
  attrs: Record<string, AttrData> = {};
  /** Module call stack (outermost first), when exported. */
  scope?: ScopeFrame[];
  /** "file:line" of the Python source, when recorded. */
  source?: string;
  /** Analysis results (shapes, FLOPs, partition ids, ...); copied shallowly by clone(), not serialized. */
  meta: Record<string, unknown> = {};

  /** @internal Create through Graph.create / Graph.createNode. */
  constructor(readonly graph: Graph, public kind: string) {}

  get inputs(): readonly Value[] { return this._inputs; }
  get outputs(): readonly Value[] { return this._outputs; }
  get blocks(): readonly Block[] { return this._blocks; }
  /** The block holding this node; null while detached or after destroy(). */
  get owningBlock(): Block | null { return this._owningBlock; }
  get isDestroyed(): boolean { return this._destroyed; }
  /** The next node in the block, or null at the end. */
  get next(): Node | null { return this._next && this._next !== this._owningBlock?.returnNode ? this._next : null; }
  get prev(): Node | null { return this._prev && this._prev !== this._owningBlock?.returnNode ? this._prev : null; }
  get output(): Value {
    if (this._outputs.length !== 1) throw new Error(`${this.kind} has ${this._outputs.length} outputs, not 1`);
    return this._outputs[0];
  }
  /** Dotted module path from the innermost scope frame ('' at the root or when unknown). */
  get modulePath(): string { return this.scope?.at(-1)?.path ?? ''; }
  get isConstant(): boolean { return this.kind === 'prim::Constant'; }

  /** The unwrapped value of an attribute, or undefined. */
  attr(name: string): AttrData['value'] | undefined { return this.attrs[name]?.value; }
  /**
   * The input bound to the schema argument `name` (lib/core/ops/registry.ts), e.g. `sdpa.arg('is_causal')`;
   * undefined when the op as matched has no such argument.
   */
  arg(name: string): Value | undefined {
    const i = this.argPosition(name);
    return i >= 0 ? this._inputs[i] : undefined;
  }

  /** The input index of the schema argument `name`, or -1 (one Value may fill several arguments). */
  argPosition(name: string): number {
    const i = argIndex(this.kind, this._inputs.map((v) => v.type.kind), name, this.schema);
    return i < this._inputs.length ? i : -1;
  }
  hasUses(): boolean { return this._outputs.some((o) => o.hasUses()); }

  /** Index in the owning block's node list (O(n)); -1 while detached. */
  index(): number {
    let i = 0;
    for (let n = this.prev; n; n = n.prev) i++;
    return this._owningBlock ? i : -1;
  }

  /** Where the node sits, e.g. "#3" or "#3.b1.#0" for node 0 of block 1 of top-level node 3. */
  location(): string {
    const here = `#${this.index()}`;
    const owner = this._owningBlock?.owningNode;
    return owner ? `${owner.location()}.b${owner._blocks.indexOf(this._owningBlock!)}.${here}` : here;
  }

  /** "aten::relu #3 -> (%y)", for messages. */
  describe(): string {
    return `${this.kind} ${this.location()} -> (${this._outputs.map((o) => '%' + o.debugName).join(', ')})`;
  }

  addInput(v: Value): void {
    assertSameGraph(this.graph, v);
    v._uses.push({ node: this, index: this._inputs.length });
    this._inputs.push(v);
  }

  replaceInput(index: number, v: Value): Value {
    assertSameGraph(this.graph, v);
    const old = this._inputs[index];
    if (!old) throw new RangeError(`${this.kind} has no input ${index}`);
    dropUse(old, this, index);
    this._inputs[index] = v;
    v._uses.push({ node: this, index });
    return old;
  }

  /** Replace every occurrence of `from` among the inputs by `to`. */
  replaceInputWith(from: Value, to: Value): void {
    this._inputs.forEach((v, i) => { if (v === from) this.replaceInput(i, to); });
  }

  removeInput(index: number): void {
    const old = this._inputs[index];
    if (!old) throw new RangeError(`${this.kind} has no input ${index}`);
    dropUse(old, this, index);
    this._inputs.splice(index, 1);
    // Later inputs shift down; their use records must follow.
    for (let i = index; i < this._inputs.length; i++) {
      const uses = this._inputs[i]._uses;
      const k = uses.findIndex((u) => u.node === this && u.index === i + 1);
      uses[k] = { node: this, index: i };
    }
  }

  removeAllInputs(): void {
    while (this._inputs.length) this.removeInput(this._inputs.length - 1);
  }

  addOutput(type: TypeData, name?: string, id: number = this.graph.freshValueId()): Value {
    const v = new Value(this.graph, id, type, name, this, null);
    this._outputs.push(v);
    return v;
  }

  /** Drop output `index`, which must be unused. */
  eraseOutput(index: number): void {
    const v = this._outputs[index];
    if (v.hasUses()) throw new Error(`cannot erase output %${v.debugName} of ${this.describe()}: it still has uses`);
    this._outputs.splice(index, 1);
    v._node = null;
  }

  addBlock(): Block {
    const b = new Block(this.graph, this);
    this._blocks.push(b);
    return b;
  }

  /**
   * Place this node just before `other` (moving it if it is already in a block).
   * `other` may be a block's returnNode: then this appends to that block.
   */
  insertBefore(other: Node): this {
    const block = other._owningBlock;
    if (!block || !other._prev) throw new Error(`cannot insert before ${other.kind}: it is not in a block`);
    if (other === this) return this;
    if (other.graph !== this.graph) throw new Error(`cannot insert ${this.kind} into another graph`);
    for (let b: Block | null = block; b; b = b.owningNode?._owningBlock ?? null) {
      if (b.owningNode === this) throw new Error(`cannot move ${this.describe()} into its own block`);
    }
    this.unlink();
    this._prev = other._prev;
    this._next = other;
    other._prev._next = this;
    other._prev = this;
    this._owningBlock = block;
    return this;
  }

  insertAfter(other: Node): this {
    const block = other._owningBlock;
    if (!block || !other._next) throw new Error(`cannot insert after ${other.kind}: it is not in a block`);
    if (other === block.returnNode) throw new Error('cannot insert after a return node');
    return other === this ? this : this.insertBefore(other._next);
  }

  /** True when this node comes before `other` in the same block. */
  isBefore(other: Node): boolean {
    if (this._owningBlock !== other._owningBlock || !this._owningBlock) throw new Error('isBefore: nodes are not in the same block');
    for (let n = this._next; n && n !== this._owningBlock.returnNode; n = n._next) if (n === other) return true;
    return false;
  }

  /** Detach without touching uses; the node may be reinserted. */
  removeFromBlock(): this {
    this.unlink();
    return this;
  }

  /**
   * Remove the node from the graph: drops its input uses and destroys its blocks' contents.
   * Refuses while any output is still used (replace or erase the users first).
   */
  destroy(): void {
    if (this._destroyed) return;
    if (this._owningBlock?.returnNode === this) throw new Error('cannot destroy a block\'s return node');
    for (const o of this._outputs) {
      if (o.hasUses()) {
        const users = o.users().map((u) => u.describe()).join(', ');
        throw new Error(`cannot destroy ${this.describe()}: output %${o.debugName} is used by ${users}`);
      }
    }
    this.dropAll();
  }

  /** Alias of destroy(), torch.fx's name. */
  erase(): void { this.destroy(); }

  /**
   * Whether removing the node could change behaviour even if its outputs are unused: listed
   * kinds, in-place aten ops (trailing `_`), schemas with a mutable alias such as `(a!)`, nodes
   * without outputs (they exist only for an effect), and nodes whose blocks contain any of these.
   */
  hasSideEffects(): boolean {
    if (SIDE_EFFECT_KINDS.has(this.kind)) return true;
    if (isInPlaceKind(this.kind) || (this.schema !== undefined && /\(\w+!/.test(this.schema))) return true;
    if (this._blocks.length) return this._blocks.some((b) => b.nodes().some((n) => n.hasSideEffects()));
    return this._outputs.length === 0;
  }

  /**
   * The value of a prim::Constant: int as bigint, bool as boolean (stored as an int attribute
   * with a bool output, as TorchScript does), float, str, device string, None as null, lists
   * as arrays, tensors as their handle.
   */
  constantValue(): ConstantValue {
    if (!this.isConstant) throw new Error(`${this.describe()} is not a prim::Constant`);
    const a = this.attrs['value'];
    if (!a) return null;
    const outKind = this._outputs[0]?.type.kind;
    switch (a.kind) {
      case 'i': return outKind === 'Bool' ? a.value !== 0n : a.value;
      case 'f': case 's': case 't': case 'is': case 'fs': case 'ss': return a.value;
      case 'ival': return ivalueToJs(a.value);
      case 'ty': throw new Error(`${this.describe()} holds a type, not a value`);
    }
  }

  /** @internal Destroy without checks (used for whole blocks whose contents go away together). */
  dropAll(): void {
    for (const b of this._blocks) b.dropAll();
    for (let i = this._inputs.length - 1; i >= 0; i--) dropUse(this._inputs[i], this, i);
    this._inputs = [];
    this.unlink();
    this._destroyed = true;
  }

  private unlink(): void {
    if (this._prev && this._next) {
      this._prev._next = this._next;
      this._next._prev = this._prev;
    }
    this._prev = this._next = null;
    this._owningBlock = null;
  }
}

export class Block {
  /** @internal */ _inputs: Value[] = [];
  /** Sentinel whose inputs are the block outputs; never listed among the nodes. */
  readonly returnNode: Node;

  /** @internal Create through Node.addBlock (the graph creates its top block). */
  constructor(readonly graph: Graph, readonly owningNode: Node | null) {
    this.returnNode = new Node(graph, 'prim::Return');
    this.returnNode._owningBlock = this;
    this.returnNode._prev = this.returnNode._next = this.returnNode;
  }

  /** Analyses' results about the block's inputs (graph inputs for the top block), as node.meta is for outputs. */
  meta: Record<string, unknown> = {};

  get inputs(): readonly Value[] { return this._inputs; }
  get outputs(): readonly Value[] { return this.returnNode._inputs; }
  get isEmpty(): boolean { return this.returnNode._next === this.returnNode; }
  get firstNode(): Node | null { return this.isEmpty ? null : this.returnNode._next; }
  get lastNode(): Node | null { return this.isEmpty ? null : this.returnNode._prev; }

  /** The nodes in order (a snapshot: safe to mutate the block while iterating it). */
  nodes(): Node[] {
    const out: Node[] = [];
    for (let n = this.returnNode._next!; n !== this.returnNode; n = n._next!) out.push(n);
    return out;
  }

  addInput(type: TypeData, name?: string, id: number = this.graph.freshValueId()): Value {
    const v = new Value(this.graph, id, type, name, null, this);
    this._inputs.push(v);
    return v;
  }

  /** Remove input `index`, which must be unused. */
  eraseInput(index: number): void {
    const v = this._inputs[index];
    if (v.hasUses()) throw new Error(`cannot erase block input %${v.debugName}: it still has uses`);
    this._inputs.splice(index, 1);
    v._paramBlock = null;
  }

  registerOutput(v: Value): number {
    this.returnNode.addInput(v);
    return this.returnNode._inputs.length - 1;
  }

  setOutputs(vs: readonly Value[]): void {
    this.returnNode.removeAllInputs();
    vs.forEach((v) => this.registerOutput(v));
  }

  appendNode(n: Node): Node { return n.insertBefore(this.returnNode); }
  prependNode(n: Node): Node { return n.insertBefore(this.returnNode._next!); }

  /** @internal */
  dropAll(): void {
    this.returnNode.removeAllInputs();
    for (const n of this.nodes().reverse()) n.dropAll();
  }
}

/**
 * The tensor a node of any kind reads its data from, by position rather than by a schema name:
 * the first input (`self` or `input` of aten ops, the base of a view, the tensor an in-place op
 * writes). For an op known by name, read its argument with `n.arg(name)` instead.
 */
export function dataInput(n: Node): Value { return n.inputs[0]; }

/** The object a `prim::GetAttr` reads its attribute from (its only input; prim ops have no schema). */
export function getAttrObject(n: Node): Value { return n.inputs[0]; }

/**
 * aten::add_ and friends, but not dunder ops such as aten::__and__; and oneDNN's
 * mkldnn::_convolution_pointwise_ (its sum written into the skip connection).
 */
export function isInPlaceKind(kind: string): boolean {
  const op = kind.slice(kind.indexOf('::') + 2).split('.')[0];
  return (kind.startsWith('aten::') || kind.startsWith('mkldnn::')) && /[^_]_$/.test(op);
}

/** The op an in-place kind is the in-place form of (aten::add_ -> aten::add); any other kind as it is. */
export function outOfPlaceKind(kind: string): string {
  return isInPlaceKind(kind) ? kind.slice(0, -1) : kind;
}

function dropUse(v: Value, node: Node, index: number): void {
  const k = v._uses.findIndex((u) => u.node === node && u.index === index);
  if (k >= 0) v._uses.splice(k, 1);
}

function assertSameGraph(g: Graph, v: Value): void {
  if (v.graph !== g) throw new Error(`value %${v.debugName} belongs to another graph`);
}

export function ivalueToJs(v: IValueData): ConstantValue {
  switch (v.type) {
    case 'int': case 'float': case 'bool': case 'str': case 'device': return v.value;
    case 'none': return null;
    case 'tensor': return v.tensor;
    case 'list': case 'tuple': return v.items.map(ivalueToJs);
    case 'enum': return ivalueToJs(v.value);
  }
}
