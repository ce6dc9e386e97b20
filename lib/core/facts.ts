// One pass over a graph that every analysis shares: node order, what each node is (bookkeeping,
// weight read, view, compute, ...), its fusion classes, which values are weights or shape
// arithmetic, which input each output aliases, and who really reads each value's data.
// Everything is indexed by position in graph.allNodes() order (nodes) or by value index.
import { isInPlaceKind, type Block, type Graph, type Node, type Value } from './ir';
import { tensorInfo, valueInfo, type TensorInfo } from './value-info';
import { constNumber, constOf } from './constants';
import { BIAS_GELU_KIND } from './ops/own-schemas';
import {
  ATTENTION_KINDS, BATCHNORM_KINDS, CAST_KINDS, CONTAINER_KINDS, CONTIGUOUS_KINDS, CONV_KINDS, COPY_KINDS, CREATE_KINDS,
  DROPOUT_KINDS, LAYOUT_KINDS, LIST_VIEW_KINDS, METADATA_INPUT0, NORM_KINDS, POOL_KINDS, REDUCTION_KINDS, RESHAPE_KINDS,
  SOFTMAX_KINDS, VIEW_KINDS, ACT_KINDS_LIST, baseName, canView, isContiguous, isElementwiseKind, numel, type OpClass,
} from './ops/classes';

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
  readonly vindex: ValueIndex;
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

function holdsTensor(t: Value['type']): boolean {
  switch (t.kind) {
    case 'Tensor': return true;
    case 'List': case 'Optional': return holdsTensor(t.elem);
    case 'Tuple': for (const e of t.elems) if (holdsTensor(e)) return true; return false;
    case 'Dict': return holdsTensor(t.value);
    default: return false;
  }
}

function typeKind(v: Value): VK {
  const t = v.type;
  if (t.kind === 'Tensor') return VK.Tensor;
  if (t.kind === 'Optional' && t.elem.kind === 'Tensor') return VK.Tensor;
  if (t.kind === 'Class' || t.kind === 'Other') return VK.Object;
  return holdsTensor(t) ? VK.Container : VK.Plain;
}

/** Value -> index, by Value.id (unique within a graph). */
export class ValueIndex {
  constructor(private readonly ids: Int32Array) {}
  get(v: Value): number | undefined {
    const i = this.ids[v.id];
    return i === undefined || i < 0 ? undefined : i;
  }
}

/** The tables buildFacts fills in, by value index and by node position. */
interface Tables {
  info: (TensorInfo | undefined)[];
  vkind: Uint8Array;
  scalar: Uint8Array;
  weight: Uint8Array;
  input: Uint8Array;
  parent: Int32Array;
  holds: (number[] | undefined)[];
  dataUsers: number[][];
  metaUsers: number[][];
  graphOutput: Uint8Array;
  role: NodeRole[];
  classes: OpClass[][];
}

export function buildFacts(graph: Graph): GraphFacts {
  const nodes = graph.allNodes();
  const N = nodes.length;
  const pos = new Map<Node, number>();
  for (let p = 0; p < N; p++) pos.set(nodes[p], p);
  const { values, producerList, hasBlocks, ids } = indexValues(graph, nodes);
  const vindex = new ValueIndex(ids);
  const idx = (v: Value) => { const i = ids[v.id]; return i === undefined ? -1 : i; };
  const t = valueTables(graph, values, idx, N);

  // Nodes in order: a node's inputs are described before it.
  const ins: number[] = [];
  const outs: number[] = [];
  for (let p = 0; p < N; p++) {
    const n = nodes[p];
    ins.length = 0;
    outs.length = 0;
    for (const v of n.inputs) ins.push(idx(v));
    for (const v of n.outputs) outs.push(idx(v));
    describeNode(t, p, n, ins, outs);
  }

  // Graph outputs (containers hold their elements).
  for (const v of graph.outputs) markOutput(t, idx(v));
  const { endPos, topOf, topLevel } = subtrees(nodes, pos, hasBlocks);

  const { info, vkind, scalar, weight, input, parent, holds, dataUsers, metaUsers, graphOutput, role, classes } = t;
  return {
    graph, nodes, pos, role, classes, topLevel, endPos, topOf,
    values, vindex, info, vkind, scalar, weight, input, parent, holds,
    producer: Int32Array.from(producerList), dataUsers, metaUsers, graphOutput, hasBlocks,
  };
}

/** Values in definition order (graph inputs, then each node's outputs and its blocks' inputs); ids index a dense table. */
function indexValues(graph: Graph, nodes: Node[]): { values: Value[]; producerList: number[]; hasBlocks: boolean; ids: Int32Array } {
  const values: Value[] = [];
  const producerList: number[] = [];
  let hasBlocks = false;
  let maxId = -1;
  const addValue = (v: Value, p: number) => { values.push(v); producerList.push(p); if (v.id > maxId) maxId = v.id; };
  for (const v of graph.inputs) addValue(v, -1);
  for (let p = 0; p < nodes.length; p++) {
    const n = nodes[p];
    for (const o of n.outputs) addValue(o, p);
    for (const b of n.blocks) { hasBlocks = true; for (const v of b.inputs) addValue(v, -1); }
  }
  const ids = new Int32Array(maxId + 1).fill(-1);
  for (let i = 0; i < values.length; i++) ids[values[i].id] = i;
  return { values, producerList, hasBlocks, ids };
}

/** The tables, with what each value's type and recorded info say (kind, tensor info, plain scalars, graph inputs). */
function valueTables(graph: Graph, values: Value[], idx: (v: Value) => number, N: number): Tables {
  const V = values.length;
  const t: Tables = {
    info: new Array(V), vkind: new Uint8Array(V), scalar: new Uint8Array(V), weight: new Uint8Array(V),
    input: new Uint8Array(V), parent: new Int32Array(V).fill(-1), holds: new Array(V),
    dataUsers: new Array(V), metaUsers: new Array(V), graphOutput: new Uint8Array(V),
    role: new Array(N), classes: new Array(N),
  };
  const { info, vkind, scalar, dataUsers, metaUsers } = t;
  for (let i = 0; i < V; i++) {
    const v = values[i];
    dataUsers[i] = [];
    metaUsers[i] = [];
    vkind[i] = typeKind(v);
    if (vkind[i] === VK.Tensor) {
      info[i] = tensorInfo(v);
      // Shape propagation saw no tensor here (an undefined optional output, None): nothing to count.
      if (!info[i] && valueInfo(v)) vkind[i] = VK.Plain;
    }
    if (vkind[i] === VK.Plain) scalar[i] = 1;
  }
  for (const v of graph.inputs) { const i = idx(v); if (vkind[i] === VK.Tensor) t.input[i] = 1; }
  return t;
}

/** A node's role and classes, what its outputs are (scalars, weights, aliases, containers) and its uses. */
function describeNode(t: Tables, p: number, n: Node, ins: number[], outs: number[]): void {
  const { vkind, scalar, weight, input, parent, role } = t;
  const kind = n.kind;
  t.classes[p] = NO_CLASSES;

  if (n.blocks.length) { role[p] = 'control'; recordUses(t, p, kind, ins); return; }
  const source = sourceRole(t, n, outs);
  if (source) { role[p] = source; return; }

  markShapeArithmetic(t, kind, ins, outs);
  let bookkeeping = true;
  for (const o of outs) if (!(scalar[o] === 1 || vkind[o] === VK.Object)) { bookkeeping = false; break; }
  if (bookkeeping) { role[p] = 'bookkeeping'; recordUses(t, p, kind, ins); return; }

  role[p] = CONTAINER_KINDS.has(kind) ? describeContainer(t, n, ins, outs) : aliasRole(t, n, ins, outs);
  if (role[p] === 'container') {
    for (const o of outs) {
      const par = parent[o];
      if (par >= 0) {
        weight[o] = weight[par];
        input[o] = input[par];
      }
    }
  }

  t.classes[p] = classify(t, kind, ins);
  recordUses(t, p, kind, ins);
}

/** Constants, attribute reads and NumToTensor: model data (weight) or bookkeeping; undefined for other nodes. */
function sourceRole(t: Tables, n: Node, outs: number[]): NodeRole | undefined {
  const { info, vkind, scalar, weight } = t;
  if (n.kind === 'prim::Constant') {
    const o = outs[0];
    if (o !== undefined && vkind[o] === VK.Tensor) {
      const c = n.attr('value') as { shape?: number[] } | undefined;
      const count = info[o] ? numel(info[o]!.shape) : c?.shape ? numel(c.shape) : 1;
      if (count > 1) { weight[o] = 1; return 'weight'; } else { scalar[o] = 1; return 'bookkeeping'; }
    }
    return 'bookkeeping';
  }
  if (n.kind === 'prim::GetAttr') {
    const o = outs[0];
    if (vkind[o] === VK.Tensor) { weight[o] = 1; return 'weight'; }
    return 'bookkeeping';
  }
  if (n.kind === 'prim::NumToTensor') { for (const o of outs) scalar[o] = 1; return 'bookkeeping'; }
  return undefined;
}

/** Shape arithmetic: every input plain or a scalar tensor, every tensor output at most one element. */
function markShapeArithmetic(t: Tables, kind: string, ins: number[], outs: number[]): void {
  const { info, vkind, scalar } = t;
  let allInScalar = true;
  for (const i of ins) if (!(i < 0 || scalar[i] === 1 || vkind[i] === VK.Object)) { allInScalar = false; break; }
  if (allInScalar && !CREATE_KINDS.has(kind)) {
    let tensorsSmall = true, anyTensor = false;
    for (const o of outs) {
      if (vkind[o] !== VK.Tensor) continue;
      anyTensor = true;
      const ti = info[o];
      if (ti && numel(ti.shape) > 1) tensorsSmall = false;
    }
    if (anyTensor && tensorsSmall) for (const o of outs) if (vkind[o] === VK.Tensor) scalar[o] = 1;
  }
}

/** A list/tuple/dict builder or unpacker: what each output holds, or which held value it is. */
function describeContainer(t: Tables, n: Node, ins: number[], outs: number[]): NodeRole {
  const { vkind, parent, holds } = t;
  const kind = n.kind;
  const in0 = ins.length ? ins[0] : -1;
  if (kind === 'prim::ListConstruct' || kind === 'prim::TupleConstruct' || kind === 'prim::DictConstruct') {
    const held: number[] = [];
    for (const i of ins) if (i >= 0 && (vkind[i] === VK.Tensor || vkind[i] === VK.Container)) held.push(i);
    for (const o of outs) holds[o] = held;
  } else if (in0 >= 0) {
    const held = holds[in0];
    const k = kind === 'prim::TupleIndex' || kind === 'aten::__getitem__' ? constNumber(n.inputs[1]) : undefined;
    for (let j = 0; j < outs.length; j++) {
      const o = outs[j];
      const src = held ? (held.length === 1 ? held[0] : held[k ?? j]) : in0;
      if (src === undefined) continue;
      if (vkind[o] === VK.Tensor) parent[o] = vkind[src] === VK.Tensor ? src : (holds[src]?.[0] ?? -1);
      else if (vkind[o] === VK.Container) holds[o] = [src];
    }
  }
  return 'container';
}

/** 'view' when every tensor output shares its input 0's storage (then marked so), else 'compute'. */
function aliasRole(t: Tables, n: Node, ins: number[], outs: number[]): NodeRole {
  const { info, vkind, weight, input, parent, holds } = t;
  const kind = n.kind;
  const in0 = ins.length ? ins[0] : -1;
  if (!(in0 >= 0 && vkind[in0] === VK.Tensor)) return 'compute';
  let aliases = false;
  const a = info[in0];
  const b = outs.length ? info[outs[0]] : undefined;
  if (VIEW_KINDS.has(kind)) aliases = true;
  else if (LIST_VIEW_KINDS.has(kind)) {
    for (const o of outs) if (vkind[o] === VK.Container) holds[o] = [in0];
    aliases = true;
  } else if (RESHAPE_KINDS.has(kind)) aliases = !!a && !!b && canView(a.shape, a.strides, b.shape);
  else if (CONTIGUOUS_KINDS.has(kind)) aliases = !!a && isContiguous(a.shape, a.strides);
  else if (DROPOUT_KINDS.has(kind) && kind !== 'aten::native_dropout') {
    aliases = constOf(n.inputs[2]) === false || constNumber(n.inputs[1]) === 0;
  } else if (CAST_KINDS.has(kind)) aliases = !!a && !!b && a.dtype === b.dtype;
  else if (isInPlaceKind(kind)) aliases = true;
  if (!aliases) return 'compute';
  for (const o of outs) if (vkind[o] === VK.Tensor) { parent[o] = in0; weight[o] = weight[in0]; input[o] = input[in0]; }
  return 'view';
}

/** Node p reads its tensor and container inputs: as data, or only their metadata (size, dim, ...). */
function recordUses(t: Tables, p: number, kind: string, ins: number[]): void {
  const { vkind, scalar } = t;
  for (let j = 0; j < ins.length; j++) {
    const i = ins[j];
    if (!(i >= 0 && (vkind[i] === VK.Tensor || vkind[i] === VK.Container) && scalar[i] !== 1)) continue;
    const meta = (j === 0 && METADATA_INPUT0.has(kind)) || kind === 'aten::size' || kind === 'aten::dim' || kind === 'aten::numel';
    const list = meta ? t.metaUsers[i] : t.dataUsers[i];
    if (list.length === 0 || list[list.length - 1] !== p) list.push(p);
  }
}

/** Fusion classes of a node: by kind, and for matmuls, scalings and adds by what their operands are. */
function classify(t: Tables, kind: string, ins: number[]): OpClass[] {
  const { info, vkind, scalar, weight } = t;
  const isScalarArg = (i: number | undefined): boolean => i === undefined || i < 0 || scalar[i] === 1 || vkind[i] === VK.Plain
    || (vkind[i] === VK.Tensor && !!info[i] && numel(info[i]!.shape) === 1);
  const isW = (i: number | undefined): boolean => i !== undefined && i >= 0 && weight[i] === 1;
  const fixed = FIXED_CLASSES.get(kind);
  if (fixed) return fixed;
  if (kind === 'aten::addmm' || kind === 'aten::_addmm_activation') return isW(ins[2]) ? C_LINEAR : C_MATMUL;
  if (kind === 'aten::matmul' || kind === 'aten::mm' || kind === 'aten::bmm') return isW(ins[0]) || isW(ins[1]) ? C_LINEAR : C_MATMUL;
  if (kind === 'aten::baddbmm' || kind === 'aten::addbmm') return isW(ins[1]) || isW(ins[2]) ? C_LINEAR : C_MATMUL;
  const base = baseName(kind);
  // A factor per matrix (a per-head temperature of shape (H, 1, 1)) scales too: one number per matrix.
  const perMatrix = (s: number | undefined, of: number | undefined): boolean => {
    const si = s !== undefined && s >= 0 ? info[s]?.shape : undefined, oi = of !== undefined && of >= 0 ? info[of]?.shape : undefined;
    return !!si && !!oi && si.length >= 2 && si.length <= oi.length && si[si.length - 1] === 1 && si[si.length - 2] === 1
      && oi[oi.length - 1] > 1 && oi[oi.length - 2] > 1;
  };
  if (base === 'mul' || base === 'div') {
    const x = ins[0], y = ins[1];
    if ((isScalarArg(y) || perMatrix(y, x)) && !isScalarArg(x)) return C_SCALE;
    if (base === 'mul' && (isScalarArg(x) || perMatrix(x, y)) && !isScalarArg(y)) return C_SCALE;
    return C_ELEMENTWISE;
  }
  if (base === 'add' || base === 'sub') return !isScalarArg(ins[0]) && !isScalarArg(ins[1]) ? C_ADD : C_ELEMENTWISE;
  if (base === 'masked_fill' || base === 'where') return C_MASK;
  if (isElementwiseKind(kind)) return C_ELEMENTWISE;
  return C_OTHER;
}

/**
 * The facts seen from one nested block, for fusing inside it (a scripted model's run-time checks
 * keep whole layers in prim::If branches): the block's own nodes are the top level, each node of
 * its subtree maps to its ancestor in the block, and what the block returns leaves it as a graph
 * output does. Nodes outside the block are their own ancestors: reads there are reads from outside.
 */
export function regionFacts(f: GraphFacts, block: Block): GraphFacts {
  const N = f.nodes.length;
  const topLevel: boolean[] = new Array(N);
  const topOf = new Int32Array(N);
  for (let p = 0; p < N; p++) {
    const n = f.nodes[p];
    topLevel[p] = n.owningBlock === block;
    let a: Node | null | undefined = n;
    while (a && a.owningBlock !== block) a = a.owningBlock?.owningNode;
    topOf[p] = a ? f.pos.get(a)! : p;
  }
  const graphOutput = Uint8Array.from(f.graphOutput);
  const t = { graphOutput, holds: f.holds } as Tables;
  for (const v of block.outputs) markOutput(t, f.vindex.get(v) ?? -1);
  return { ...f, topLevel, topOf, graphOutput };
}

/** A graph output, and what a container output holds. */
function markOutput(t: Tables, i: number): void {
  if (i < 0 || t.graphOutput[i]) return;
  t.graphOutput[i] = 1;
  const h = t.holds[i];
  if (h) for (const k of h) markOutput(t, k);
}

/** Subtree extents and top-level ancestors. */
function subtrees(
  nodes: Node[], pos: Map<Node, number>, hasBlocks: boolean,
): { endPos: Int32Array; topOf: Int32Array; topLevel: boolean[] } {
  const N = nodes.length;
  const endPos = new Int32Array(N);
  const topOf = new Int32Array(N);
  const topLevel: boolean[] = new Array(N);
  for (let p = 0; p < N; p++) {
    const owner = nodes[p].owningBlock?.owningNode;
    topLevel[p] = !owner;
    topOf[p] = owner ? topOf[pos.get(owner)!] : p;
    endPos[p] = p;
  }
  if (hasBlocks) {
    for (let p = 0; p < N; p++) {
      if (!nodes[p].blocks.length) continue;
      // The subtree is contiguous in allNodes order.
      let q = p + 1;
      while (q < N && isDescendant(nodes[q], nodes[p])) q++;
      endPos[p] = q - 1;
    }
  }
  return { endPos, topOf, topLevel };
}

const NO_CLASSES: OpClass[] = [];
const C_LINEAR: OpClass[] = ['linear'];
const C_MATMUL: OpClass[] = ['matmul'];
const C_SCALE: OpClass[] = ['scale', 'elementwise'];
const C_ADD: OpClass[] = ['add', 'mask', 'elementwise'];
const C_MASK: OpClass[] = ['mask', 'elementwise'];
const C_ELEMENTWISE: OpClass[] = ['elementwise'];
const C_OTHER: OpClass[] = ['other'];

/** Classes that depend on the kind alone. */
const FIXED_CLASSES: Map<string, OpClass[]> = (() => {
  const m = new Map<string, OpClass[]>();
  const put = (ks: Iterable<string>, c: OpClass[]) => { for (const k of ks) if (!m.has(k)) m.set(k, c); };
  put(ATTENTION_KINDS, ['attention']);
  put(['aten::linear', 'aten::_linear', 'mkl::_mkl_linear', 'mkldnn::_linear_pointwise', 'torchgraph::linear'], C_LINEAR);
  // oneDNN's convolution with its residual sum written into the skip connection (lib/fusion/in-place.ts) too.
  put([...CONV_KINDS, 'mkldnn::_convolution_pointwise_'], ['conv']);
  put(BATCHNORM_KINDS, ['batchnorm']);
  put(NORM_KINDS, ['norm']);
  put(SOFTMAX_KINDS, ['softmax']);
  put(DROPOUT_KINDS, ['dropout', 'elementwise']);
  put(LAYOUT_KINDS, ['layout']);
  put(CAST_KINDS, ['cast', 'elementwise']);
  put(ACT_KINDS_LIST, ['act', 'elementwise']);
  put([BIAS_GELU_KIND], ['act', 'elementwise']);
  put(REDUCTION_KINDS, ['reduction']);
  put(POOL_KINDS, ['pool']);
  put(CREATE_KINDS, ['create']);
  put(COPY_KINDS, ['copy']);
  return m;
})();

function isDescendant(n: Node, ancestor: Node): boolean {
  for (let o = n.owningBlock?.owningNode; o; o = o.owningBlock?.owningNode) if (o === ancestor) return true;
  return false;
}

/** A tensor that is neither model data nor shape arithmetic. */
export function isActivation(f: GraphFacts, i: number): boolean {
  return i >= 0 && f.vkind[i] === VK.Tensor && f.scalar[i] === 0 && f.weight[i] === 0;
}
