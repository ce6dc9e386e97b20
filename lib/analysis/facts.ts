// One pass over a graph that every analysis shares: node order, what each node is (bookkeeping,
// weight read, view, compute, ...), its fusion classes, which values are weights or shape
// arithmetic, which input each output aliases, and who really reads each value's data.
// Everything is indexed by position in graph.allNodes() order (nodes) or by value index.
import type { Graph, Node, Value } from '../ir';
import { tensorInfo, valueInfo, type TensorInfo } from '../passes/value-info';
import {
  ATTENTION_KINDS, BATCHNORM_KINDS, CAST_KINDS, CONTAINER_KINDS, CONTIGUOUS_KINDS, CONV_KINDS, COPY_KINDS, CREATE_KINDS,
  DROPOUT_KINDS, LAYOUT_KINDS, LIST_VIEW_KINDS, METADATA_INPUT0, NORM_KINDS, POOL_KINDS, REDUCTION_KINDS, RESHAPE_KINDS,
  SOFTMAX_KINDS, VIEW_KINDS, baseName, canView, isActKind, isContiguous, isElementwiseKind, numel, type OpClass,
} from './ops';

/**
 * bookkeeping: constants, size/int arithmetic, list builders of ints, module GetAttr (no tensor
 *   data, 0 FLOPs, no tensor memory);
 * weight: a GetAttr or constant producing model data;
 * control: a node with blocks (prim::If, prim::Loop);
 * container: builds or takes apart lists/tuples of tensors;
 * view: every tensor output shares storage with an input (no allocation, 0 FLOPs);
 * compute: everything else.
 */
export type NodeRole = 'bookkeeping' | 'weight' | 'control' | 'container' | 'view' | 'compute';

/** Value kinds. */
export const VK = { Plain: 0, Tensor: 1, Container: 2, Object: 3 } as const;
export type VK = (typeof VK)[keyof typeof VK];

export interface GraphFacts {
  readonly graph: Graph;
  /** graph.allNodes(): execution order, nested blocks after their owner. */
  readonly nodes: Node[];
  readonly pos: Map<Node, number>;
  readonly role: NodeRole[];
  readonly classes: OpClass[][];
  /** Nodes in the graph's top block (only these are fused and scheduled as units). */
  readonly topLevel: boolean[];
  /** Position of the last node of each node's subtree (itself when it has no blocks). */
  readonly endPos: Int32Array;
  /** The top-level ancestor (or itself) of each node. */
  readonly topOf: Int32Array;

  readonly values: Value[];
  readonly vindex: Map<Value, number>;
  readonly info: (TensorInfo | undefined)[];
  readonly vkind: Uint8Array;
  /** Non-tensor values and shape-arithmetic scalar tensors. */
  readonly scalar: Uint8Array;
  /** Tensors whose storage is model data (GetAttr, tensor constants, views of them). */
  readonly weight: Uint8Array;
  /** Graph (top block) inputs that are tensors, and views of them. */
  readonly input: Uint8Array;
  /** The value whose storage this one shares, or -1 (a fresh allocation, or not a tensor). */
  readonly parent: Int32Array;
  /** For containers: the values held. */
  readonly holds: (number[] | undefined)[];
  /** Producing node position, or -1 for block inputs. */
  readonly producer: Int32Array;
  /** Consumers that read the data (sorted positions, unique), excluding metadata-only reads. */
  readonly dataUsers: number[][];
  /** Consumers that read only shape/dtype/device. */
  readonly metaUsers: number[][];
  readonly graphOutput: Uint8Array;
  readonly hasBlocks: boolean;
}

function typeKind(v: Value): VK {
  const t = v.type;
  const holdsTensor = (x: typeof t): boolean => {
    switch (x.kind) {
      case 'Tensor': return true;
      case 'List': case 'Optional': return holdsTensor(x.elem);
      case 'Tuple': return x.elems.some(holdsTensor);
      case 'Dict': return holdsTensor(x.value);
      default: return false;
    }
  };
  if (t.kind === 'Tensor') return VK.Tensor;
  if (t.kind === 'Optional' && t.elem.kind === 'Tensor') return VK.Tensor;
  if (t.kind === 'Class' || t.kind === 'Other') return VK.Object;
  return holdsTensor(t) ? VK.Container : VK.Plain;
}

/** A constant's JS value (ints as numbers), or what shape propagation recorded. */
export function constOf(v: Value): number | boolean | string | null | number[] | undefined {
  const n = v.node;
  if (n?.isConstant) {
    const c = n.constantValue();
    if (typeof c === 'bigint') return Number(c);
    if (typeof c === 'number' || typeof c === 'boolean' || typeof c === 'string' || c === null) return c;
    if (Array.isArray(c) && c.every((x) => typeof x === 'bigint' || typeof x === 'number')) return c.map(Number);
    return undefined;
  }
  if (v.type.kind === 'None') return null;
  const i = valueInfo(v);
  if (!i) return undefined;
  switch (i.kind) {
    case 'Int': case 'Float': case 'Bool': case 'IntList': return i.value;
    case 'None': return null;
    default: return undefined;
  }
}

export function constNumber(v: Value | undefined): number | undefined {
  if (!v) return undefined;
  const c = constOf(v);
  return typeof c === 'number' ? c : typeof c === 'boolean' ? Number(c) : undefined;
}

export function buildFacts(graph: Graph): GraphFacts {
  const nodes = graph.allNodes();
  const N = nodes.length;
  const pos = new Map<Node, number>();
  nodes.forEach((n, i) => pos.set(n, i));

  const values: Value[] = [];
  const vindex = new Map<Value, number>();
  const producer: number[] = [];
  const addValue = (v: Value, p: number) => { vindex.set(v, values.length); values.push(v); producer.push(p); };
  graph.inputs.forEach((v) => addValue(v, -1));
  let hasBlocks = false;
  for (let p = 0; p < N; p++) {
    const n = nodes[p];
    n.outputs.forEach((o) => addValue(o, p));
    for (const b of n.blocks) { hasBlocks = true; b.inputs.forEach((v) => addValue(v, -1)); }
  }
  const V = values.length;
  const info: (TensorInfo | undefined)[] = new Array(V);
  const vkind = new Uint8Array(V);
  const scalar = new Uint8Array(V);
  const weight = new Uint8Array(V);
  const input = new Uint8Array(V);
  const parent = new Int32Array(V).fill(-1);
  const holds: (number[] | undefined)[] = new Array(V);
  const dataUsers: number[][] = Array.from({ length: V }, () => []);
  const metaUsers: number[][] = Array.from({ length: V }, () => []);
  const graphOutput = new Uint8Array(V);

  for (let i = 0; i < V; i++) {
    const v = values[i];
    vkind[i] = typeKind(v);
    if (vkind[i] === VK.Tensor) info[i] = tensorInfo(v);
    if (vkind[i] === VK.Plain) scalar[i] = 1;
  }
  graph.inputs.forEach((v) => { const i = vindex.get(v)!; if (vkind[i] === VK.Tensor) input[i] = 1; });

  const role: NodeRole[] = new Array(N);
  const classes: OpClass[][] = new Array(N);
  const idx = (v: Value) => vindex.get(v) ?? -1;
  const isScalarTensorInfo = (i: number) => { const t = info[i]; return !t || numel(t.shape) <= 1; };

  for (let p = 0; p < N; p++) {
    const n = nodes[p];
    const kind = n.kind;
    const ins = n.inputs.map(idx);
    const outs = n.outputs.map(idx);
    const tensorOuts = outs.filter((o) => vkind[o] === VK.Tensor);
    classes[p] = [];

    if (n.blocks.length) { role[p] = 'control'; continue; }
    if (kind === 'prim::Constant') {
      const o = outs[0];
      if (o !== undefined && vkind[o] === VK.Tensor) {
        const c = n.attr('value') as { shape?: number[] } | undefined;
        const count = info[o] ? numel(info[o]!.shape) : c?.shape ? numel(c.shape) : 1;
        if (count > 1) { weight[o] = 1; role[p] = 'weight'; } else { scalar[o] = 1; role[p] = 'bookkeeping'; }
      } else role[p] = 'bookkeeping';
      continue;
    }
    if (kind === 'prim::GetAttr') {
      const o = outs[0];
      if (vkind[o] === VK.Tensor) { weight[o] = 1; role[p] = 'weight'; } else role[p] = 'bookkeeping';
      continue;
    }
    if (kind === 'prim::NumToTensor') { outs.forEach((o) => { scalar[o] = 1; }); role[p] = 'bookkeeping'; continue; }

    // Shape arithmetic: every input is a plain value or a scalar tensor, every output too.
    const allInScalar = ins.every((i) => i < 0 || scalar[i] === 1 || vkind[i] === VK.Object);
    if (allInScalar && tensorOuts.length && tensorOuts.every(isScalarTensorInfo) && !CREATE_KINDS.has(kind)) {
      tensorOuts.forEach((o) => { scalar[o] = 1; });
    }
    if (outs.length === 0 || outs.every((o) => scalar[o] === 1 || vkind[o] === VK.Object)) {
      // A list of tensors is never bookkeeping; a list of ints is.
      role[p] = 'bookkeeping';
      for (const i of ins) if (i >= 0 && (vkind[i] === VK.Tensor || vkind[i] === VK.Container)) addUse(i, p, n, ins.indexOf(i));
      continue;
    }

    // Aliasing and containers.
    const in0 = ins[0];
    let aliases = false;
    if (CONTAINER_KINDS.has(kind)) {
      role[p] = 'container';
      if (kind === 'prim::ListConstruct' || kind === 'prim::TupleConstruct' || kind === 'prim::DictConstruct') {
        for (const o of outs) holds[o] = ins.filter((i) => vkind[i] === VK.Tensor || vkind[i] === VK.Container);
      } else if (in0 !== undefined) {
        const held = holds[in0];
        const k = kind === 'prim::TupleIndex' || kind === 'aten::__getitem__' ? constNumber(n.inputs[1]) : undefined;
        outs.forEach((o, j) => {
          const src = held ? (held.length === 1 ? held[0] : held[k ?? j]) : in0;
          if (src === undefined) return;
          if (vkind[o] === VK.Tensor) parent[o] = vkind[src] === VK.Tensor ? src : (holds[src]?.[0] ?? -1);
          else if (vkind[o] === VK.Container) holds[o] = [src];
        });
      }
    } else if (in0 !== undefined && in0 >= 0 && (vkind[in0] === VK.Tensor)) {
      const a = info[in0];
      const o0 = outs[0];
      const b = o0 !== undefined ? info[o0] : undefined;
      if (VIEW_KINDS.has(kind)) aliases = true;
      else if (LIST_VIEW_KINDS.has(kind)) { for (const o of outs) if (vkind[o] === VK.Container) holds[o] = [in0]; aliases = true; }
      else if (RESHAPE_KINDS.has(kind)) aliases = !!a && !!b && canView(a.shape, a.strides, b.shape);
      else if (CONTIGUOUS_KINDS.has(kind)) aliases = !!a && isContiguous(a.shape, a.strides);
      else if (DROPOUT_KINDS.has(kind) && kind !== 'aten::native_dropout') {
        const p0 = constNumber(n.inputs[1]);
        const train = constOf(n.inputs[2]);
        aliases = train === false || p0 === 0;
      } else if (CAST_KINDS.has(kind)) aliases = !!a && !!b && a.dtype === b.dtype;
      else if (/[^_]_$/.test(kind.slice(kind.indexOf('::') + 2)) && kind.startsWith('aten::')) aliases = true; // in-place
      if (aliases) {
        for (const o of outs) if (vkind[o] === VK.Tensor) parent[o] = in0;
        role[p] = 'view';
      } else role[p] = 'compute';
    } else role[p] = 'compute';

    for (const o of outs) {
      const par = parent[o];
      if (par >= 0) { weight[o] = weight[par]; input[o] = input[par]; }
    }
    classes[p] = classify(n, ins, outs);
    n.inputs.forEach((_, j) => { const i = ins[j]; if (i >= 0 && vkind[i] !== VK.Plain && scalar[i] !== 1) addUse(i, p, n, j); });
  }

  function addUse(i: number, p: number, n: Node, j: number): void {
    const meta = (j === 0 && METADATA_INPUT0.has(n.kind)) || n.kind === 'aten::size' || n.kind === 'aten::dim' || n.kind === 'aten::numel';
    const list = meta ? metaUsers[i] : dataUsers[i];
    if (list[list.length - 1] !== p) list.push(p);
  }

  function classify(n: Node, ins: number[], outs: number[]): OpClass[] {
    const kind = n.kind;
    const isW = (i: number | undefined) => i !== undefined && i >= 0 && weight[i] === 1;
    const isScalarArg = (i: number | undefined) => i === undefined || i < 0 || scalar[i] === 1 || vkind[i] === VK.Plain
      || (vkind[i] === VK.Tensor && !!info[i] && numel(info[i]!.shape) === 1);
    if (ATTENTION_KINDS.has(kind)) return ['attention'];
    if (kind === 'aten::linear' || kind === 'aten::_linear') return ['linear'];
    if (kind === 'aten::addmm') return isW(ins[2]) ? ['linear'] : ['matmul'];
    if (kind === 'aten::matmul' || kind === 'aten::mm' || kind === 'aten::bmm') return isW(ins[0]) || isW(ins[1]) ? ['linear'] : ['matmul'];
    if (kind === 'aten::baddbmm' || kind === 'aten::addbmm') return isW(ins[1]) || isW(ins[2]) ? ['linear'] : ['matmul'];
    if (CONV_KINDS.has(kind)) return ['conv'];
    if (BATCHNORM_KINDS.has(kind)) return ['batchnorm'];
    if (NORM_KINDS.has(kind)) return ['norm'];
    if (SOFTMAX_KINDS.has(kind)) return ['softmax'];
    if (DROPOUT_KINDS.has(kind)) return ['dropout', 'elementwise'];
    if (LAYOUT_KINDS.has(kind)) return ['layout'];
    if (CAST_KINDS.has(kind)) return ['cast', 'elementwise'];
    if (isActKind(kind)) return ['act', 'elementwise'];
    const base = baseName(kind);
    if (base === 'mul' || base === 'div') {
      const [x, y] = [ins[0], ins[1]];
      if (isScalarArg(y) && !isScalarArg(x)) return ['scale', 'elementwise'];
      if (base === 'mul' && isScalarArg(x) && !isScalarArg(y)) return ['scale', 'elementwise'];
      return ['elementwise'];
    }
    if (base === 'add' || base === 'sub') {
      const [x, y] = [ins[0], ins[1]];
      if (!isScalarArg(x) && !isScalarArg(y)) return ['add', 'mask', 'elementwise'];
      return ['elementwise'];
    }
    if (base === 'masked_fill' || base === 'where') return ['mask', 'elementwise'];
    if (isElementwiseKind(kind)) return ['elementwise'];
    if (REDUCTION_KINDS.has(kind)) return ['reduction'];
    if (POOL_KINDS.has(kind)) return ['pool'];
    if (CREATE_KINDS.has(kind)) return ['create'];
    if (COPY_KINDS.has(kind)) return ['copy'];
    void outs;
    return ['other'];
  }

  // Graph outputs (containers hold their elements).
  const markOut = (i: number) => {
    if (i < 0 || graphOutput[i]) return;
    graphOutput[i] = 1;
    holds[i]?.forEach(markOut);
  };
  graph.outputs.forEach((v) => markOut(idx(v)));

  // Subtree extents and top-level ancestors.
  const endPos = new Int32Array(N);
  const topOf = new Int32Array(N);
  const topLevel: boolean[] = new Array(N).fill(false);
  for (let p = N - 1; p >= 0; p--) {
    const n = nodes[p];
    let end = p;
    if (n.blocks.length) {
      // The subtree is contiguous in allNodes order: it ends where the next non-descendant starts.
      let q = p + 1;
      while (q < N && isDescendant(nodes[q], n)) q++;
      end = q - 1;
    }
    endPos[p] = end;
  }
  for (let p = 0; p < N; p++) {
    const owner = nodes[p].owningBlock?.owningNode;
    topLevel[p] = !owner;
    topOf[p] = owner ? topOf[pos.get(owner)!] : p;
  }

  return {
    graph, nodes, pos, role, classes, topLevel, endPos, topOf,
    values, vindex, info, vkind, scalar, weight, input, parent, holds,
    producer: Int32Array.from(producer), dataUsers, metaUsers, graphOutput, hasBlocks,
  };
}

function isDescendant(n: Node, ancestor: Node): boolean {
  for (let o = n.owningBlock?.owningNode; o; o = o.owningBlock?.owningNode) if (o === ancestor) return true;
  return false;
}

/** Follow aliases to the value that owns the storage. */
export function storageRoot(f: GraphFacts, i: number): number {
  while (f.parent[i] >= 0) i = f.parent[i];
  return i;
}

/** A tensor that is neither model data nor shape arithmetic. */
export function isActivation(f: GraphFacts, i: number): boolean {
  return i >= 0 && f.vkind[i] === VK.Tensor && f.scalar[i] === 0 && f.weight[i] === 0;
}

export function valueIdx(f: GraphFacts, v: Value): number { return f.vindex.get(v) ?? -1; }
