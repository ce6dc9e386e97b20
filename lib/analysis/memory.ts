// Peak activation memory by liveness over the execution order.
//
// The model follows what the TorchScript interpreter and the allocator do:
//   - nodes run in graph order (the fused graph: groups contracted to one kernel each, in a
//     topological order that keeps the original order where it can);
//   - a tensor's storage is allocated when its producer runs and freed right after its last
//     reader runs (graph outputs stay alive); views (view, reshape when possible, transpose,
//     select, slice, contiguous of a contiguous tensor, eval-mode dropout, in-place ops, ...)
//     share their base's storage, so storage is counted, not per-view bytes;
//   - weights (prim::GetAttr and tensor constants, and views of them) are counted separately;
//     graph inputs belong to the caller and are not counted unless includeInputs;
//   - shape arithmetic (size, int, NumToTensor scalars) is ignored;
//   - transient workspace an op allocates and frees inside itself is counted while it runs:
//     layer_norm's mean/rstd, the copies matmul/linear make of operands that cannot be viewed
//     in the batched/flattened form, and the attention kernels' working set (see below);
//   - in the fused graph a group's internal values never exist; its outputs are written
//     directly (a parallel projection group writes one packed tensor that lives until the last
//     of q/k/v is read); a fused attention core, like SDPA's flash/memory-efficient kernels,
//     holds only its output and the per-row log-sum-exp (batch*heads*L floats): O(L*hd), not
//     O(L*S), per head;
//   - libtorch's CPU _native_multi_head_attention and _transformer_encoder_layer_fwd do not use
//     the flash kernel: they are modelled allocation by allocation (scores materialised);
//   - so are the CPU convolutions (cpuConvWorkspace: oneDNN's blocked copies of input, weight and
//     output, its scratchpads, or the fallback's im2col buffer; by backend, layout and threads),
//     max pooling's int64 indices, batch norm's per-channel statistics and layer norm's copy of a
//     non-contiguous (permuted NCHW) input.
// On CPU (libtorch 2.13) this reproduces the measured peaks of ViT-B/16, mha_demo and a
// 2048-token attention block byte for byte (test/integration/analysis.test.ts), and those of
// MobileNet/EfficientNet-, ConvNeXt- and ResNet-style CNNs (test/integration/cnn-memory.test.ts).
import type { Graph, Node } from '../core/ir';
import { buildFacts, constOf, VK, type GraphFacts } from '../core/facts';
import type { SdpaDims } from './flops';
import { availableParallelism, cpus } from 'os';
import { ATTENTION_KINDS, CONV_KINDS, canView, isChannelsLastContiguous, isContiguous, numel, stridesLikeChannelsLast } from '../core/ops/classes';
import type { Partition } from '../fusion/partition';
import type { GroupKind } from '../fusion/rules';

export interface SdpaWorkspaceQuery extends SdpaDims {
  dtypeBytes: number;
  /** The op kind, or 'fused' for a fused attention core group. */
  source: string;
}

export interface MemoryOptions {
  /** Estimate the fused graph of this partition (made from the same graph). */
  partition?: Partition;
  /** Round every allocation up to a multiple of this (CUDA's caching allocator: 512). Default 1. */
  alignBytes?: number;
  /** Count the graph inputs (held by the caller) in the live bytes. Default false. */
  includeInputs?: boolean;
  /**
   * How attention kernels hold their working set: 'flash' (default; flash/memory-efficient
   * kernels: output + log-sum-exp) or 'math' (scores and probabilities materialised).
   */
  sdpaKernel?: 'flash' | 'math';
  /**
   * Extra bytes an attention kernel allocates (per-thread tiles, ...): a calibration hook for the
   * runtime. cpuFlashAttentionWorkspace(threads) models libtorch's CPU flash kernel.
   */
  sdpaWorkspace?: (q: SdpaWorkspaceQuery) => number;
  /**
   * The device whose kernels' own scratch is modelled: 'cpu' (libtorch's CPU build: oneDNN
   * convolution reorders and scratchpads, the fallback convolution's im2col buffer) or 'cuda'
   * (none of those; cuDNN's workspace is not modelled). Device-independent scratch (max-pool
   * indices, batch norm's statistics, layer norm's contiguous copy) is counted on both.
   * Default: 'cuda' when alignBytes > 1 (how the pipeline asks for CUDA estimates), else 'cpu'.
   */
  device?: 'cpu' | 'cuda';
  /**
   * libtorch's intra-op thread count (at::get_num_threads(); runtimeInfo().threads): oneDNN
   * keeps per-thread scratch, and 1x1 convolutions take oneDNN only when multi-threaded.
   * Default: os.availableParallelism().
   */
  threads?: number;
  /**
   * oneDNN's channel block on this CPU: 16 with AVX-512 (the default), 8 with AVX2. Blocked
   * layouts (nChw16c) pad channels up to a multiple of it.
   */
  cpuChannelBlock?: number;
  /**
   * Fused mode: only groups of these kinds run as one kernel (the ones the runtime lowers); the
   * others run op by op. Default: every group.
   */
  fusedKinds?: readonly GroupKind[];
  /** @internal */
  facts?: GraphFacts;
}

export interface TimelineEntry {
  /** Position in the schedule. */
  step: number;
  /** The nodes run at this step (a group's members, or one node with its nested blocks). */
  nodes: Node[];
  /** The group id when the step runs a fusion group. */
  group?: number;
  label: string;
  allocatedBytes: number;
  workspaceBytes: number;
  freedBytes: number;
  /** Highest live bytes while this step runs (allocations and workspace before frees). */
  peakBytes: number;
  /** Live bytes after the step, once its dead inputs are freed. */
  liveBytes: number;
}

export interface LiveStorage {
  /** The value that owns the storage (its producer's output). */
  value: string;
  producer: string;
  bytes: number;
}

export interface MemoryEstimate {
  mode: 'unfused' | 'fused';
  /** Peak of live activation storage (plus workspace) while running, in bytes. */
  peakBytes: number;
  peakStep: number;
  peakLabel: string;
  /** The largest storages live at the peak. */
  liveAtPeak: LiveStorage[];
  /** Bytes of distinct weight storages the graph reads. */
  weightBytes: number;
  /** Bytes of the graph's tensor inputs (not in peakBytes unless includeInputs). */
  inputBytes: number;
  /** Bytes still live at the end (outputs). */
  outputBytes: number;
  timeline: TimelineEntry[];
  /** Tensors without shape information (counted as 0 bytes). */
  unknownTensors: number;
  /** True when the fused schedule had to fall back to group position order (should not happen). */
  scheduleFallback: boolean;
  options: { alignBytes: number; includeInputs: boolean; sdpaKernel: 'flash' | 'math' };
}

interface Unit { members: number[]; group: number; key: number }

const NONE = -1, WEIGHT = -2, INPUT = -3;

function dtypeBytes(t: { bytes: number; shape: number[] } | undefined): number {
  if (!t) return 4;
  const n = numel(t.shape);
  return n > 0 ? t.bytes / n : 4;
}

/** Estimate peak memory of the graph (unfused), or of its fused form when opts.partition is given. */
export function estimateMemory(graphOrFacts: Graph | GraphFacts, opts: MemoryOptions = {}): MemoryEstimate {
  const given = 'role' in graphOrFacts ? graphOrFacts : undefined;
  const graph = given ? given.graph : (graphOrFacts as Graph);
  const part = opts.partition;
  if (part && part.graph !== graph) throw new Error('estimateMemory: the partition was made from another graph');
  // Positions must agree with the partition's: use its facts (partition again after rewriting the graph).
  const f: GraphFacts = part ? part.facts : (opts.facts ?? given ?? buildFacts(graph));
  const fused = !!part;
  const align = Math.max(1, opts.alignBytes ?? 1);
  const round = (b: number) => (align > 1 ? Math.ceil(b / align) * align : b);
  const kernel = opts.sdpaKernel ?? 'flash';
  const device = opts.device ?? (align > 1 ? 'cuda' : 'cpu');
  const cpu: CpuKernels | undefined = device === 'cpu'
    ? { threads: Math.max(1, opts.threads ?? defaultThreads()), block: Math.max(1, opts.cpuChannelBlock ?? 16) }
    : undefined;
  const N = f.nodes.length;

  // Group of each node (fused mode), by position.
  const groupOfPos = new Int32Array(N).fill(-1);
  const groupRule: string[] = [];
  if (part) {
    for (const g of part.groups) {
      if (opts.fusedKinds && !opts.fusedKinds.includes(g.kind)) continue;
      groupRule[g.id] = g.rule;
      for (const n of g.nodes) { const p = f.pos.get(n); if (p !== undefined) groupOfPos[p] = g.id; }
    }
  }

  // Units: groups and top-level nodes (nested nodes run inside their top-level owner's unit).
  const units: Unit[] = [];
  const unitOf = new Int32Array(N).fill(-1);
  const groupUnit = new Map<number, number>();
  for (let p = 0; p < N; p++) {
    const top = f.topOf[p];
    if (top !== p) { unitOf[p] = unitOf[top]; units[unitOf[top]].members.push(p); continue; }
    const g = groupOfPos[p];
    if (g >= 0) {
      let u = groupUnit.get(g);
      if (u === undefined) { u = units.length; groupUnit.set(g, u); units.push({ members: [], group: g, key: p }); }
      unitOf[p] = u;
      units[u].members.push(p);
    } else {
      unitOf[p] = units.length;
      units.push({ members: [p], group: -1, key: p });
    }
  }
  const U = units.length;

  // A value read only inside its producer's group never materialises (fused mode).
  const internal = (i: number): boolean => {
    const q = f.producer[i];
    if (!fused || q < 0) return false;
    const g = groupOfPos[q];
    if (g < 0 || f.graphOutput[i]) return false;
    for (const u of f.dataUsers[i]) if (groupOfPos[f.topOf[u]] !== g) return false;
    return true;
  };

  // Schedule.
  let order: number[];
  let scheduleFallback = false;
  if (!fused) {
    order = units.map((_, u) => u);
  } else {
    const succ: number[][] = Array.from({ length: U }, () => []);
    const indeg = new Int32Array(U);
    const addEdge = (a: number, b: number) => { if (a !== b) { succ[a].push(b); indeg[b]++; } };
    for (let i = 0; i < f.values.length; i++) {
      const q = f.producer[i];
      if (q < 0) continue;
      const from = unitOf[q];
      for (const u of f.dataUsers[i]) addEdge(from, unitOf[u]);
      if (f.metaUsers[i].length && !internal(i)) for (const u of f.metaUsers[i]) addEdge(from, unitOf[u]);
    }
    order = [];
    const heap: number[] = [];
    const less = (a: number, b: number) => units[a].key < units[b].key;
    const push = (u: number) => {
      heap.push(u);
      for (let k = heap.length - 1; k > 0;) { const up = (k - 1) >> 1; if (!less(heap[k], heap[up])) break; [heap[k], heap[up]] = [heap[up], heap[k]]; k = up; }
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length) {
        heap[0] = last;
        for (let k = 0; ;) {
          const l = 2 * k + 1, r = l + 1;
          let m = k;
          if (l < heap.length && less(heap[l], heap[m])) m = l;
          if (r < heap.length && less(heap[r], heap[m])) m = r;
          if (m === k) break;
          [heap[k], heap[m]] = [heap[m], heap[k]];
          k = m;
        }
      }
      return top;
    };
    for (let u = 0; u < U; u++) if (indeg[u] === 0) push(u);
    while (heap.length) {
      const u = pop();
      order.push(u);
      for (const v of succ[u]) if (--indeg[v] === 0) push(v);
    }
    if (order.length < U) {
      scheduleFallback = true;
      const done = new Set(order);
      for (let u = 0; u < U; u++) if (!done.has(u)) order.push(u);
    }
  }
  const stepOf = new Int32Array(U);
  order.forEach((u, s) => { stepOf[u] = s; });
  const stepOfPos = (p: number) => stepOf[unitOf[p]];

  // Storages.
  const V = f.values.length;
  const store = new Int32Array(V).fill(NONE);
  const sBytes: number[] = [];
  const sDef: number[] = [];
  const sRoot: number[] = [];
  const sCap: number[] = [];
  const groupStore = new Map<string, number>();
  let unknownTensors = 0;
  let inputBytes = 0;
  const inputRoots = new Set<number>();
  const newStorage = (bytes: number, def: number, root: number, cap = Infinity) => {
    sBytes.push(bytes); sDef.push(def); sRoot.push(root); sCap.push(cap);
    return sBytes.length - 1;
  };
  for (let i = 0; i < V; i++) {
    if (f.vkind[i] !== VK.Tensor || f.scalar[i]) continue;
    if (f.weight[i]) { store[i] = WEIGHT; continue; }
    if (f.input[i]) {
      store[i] = INPUT;
      let r = i;
      while (f.parent[r] >= 0) r = f.parent[r];
      if (!inputRoots.has(r)) { inputRoots.add(r); inputBytes += f.info[r]?.storageBytes ?? 0; }
      continue;
    }
    const q = f.producer[i];
    if (q < 0) continue; // block inputs: loop-carried values live inside their owner's unit
    const t = f.info[i];
    if (!t) unknownTensors++;
    const g = fused ? groupOfPos[q] : -1;
    if (g >= 0) {
      if (internal(i)) continue;
      // A group output: written by the kernel, unless it is a view of something from outside.
      let r = i;
      while (f.parent[r] >= 0 && f.producer[f.parent[r]] >= 0 && groupOfPos[f.producer[f.parent[r]]] === g) r = f.parent[r];
      if (f.parent[r] >= 0) { store[i] = store[f.parent[r]]; continue; }
      const packed = groupRule[g] === 'parallel_projection';
      const key = packed ? `${g}` : `${g}:${r}`;
      let s = groupStore.get(key);
      if (s === undefined) {
        s = newStorage(0, stepOfPos(q), r, packed ? Infinity : (f.info[r]?.storageBytes ?? Infinity));
        groupStore.set(key, s);
      }
      sBytes[s] = Math.min(sCap[s], sBytes[s] + (t?.bytes ?? 0));
      store[i] = s;
      continue;
    }
    if (f.parent[i] >= 0) { store[i] = store[f.parent[i]]; continue; }
    store[i] = newStorage(t?.storageBytes ?? t?.bytes ?? 0, stepOfPos(q), i);
  }
  const S = sBytes.length;

  // Last use of every value, then of every storage.
  const END = order.length; // graph outputs: never freed
  const lastOf = new Int32Array(V).fill(-1);
  for (let i = V - 1; i >= 0; i--) {
    let last = lastOf[i];
    if (f.graphOutput[i]) last = END;
    const own = f.producer[i] >= 0 ? stepOfPos(f.producer[i]) : -1;
    for (const u of f.dataUsers[i]) last = Math.max(last, stepOfPos(u));
    if (!(fused && internal(i))) for (const u of f.metaUsers[i]) last = Math.max(last, stepOfPos(u));
    last = Math.max(last, own);
    lastOf[i] = last;
    const h = f.holds[i];
    if (h) for (const e of h) lastOf[e] = Math.max(lastOf[e], last);
  }
  const sLast = new Int32Array(S).fill(-1);
  for (let i = 0; i < V; i++) { const s = store[i]; if (s >= 0) sLast[s] = Math.max(sLast[s], lastOf[i]); }

  // Weights read.
  const weightRoots = new Set<number>();
  for (let i = 0; i < V; i++) {
    if (store[i] !== WEIGHT || (f.dataUsers[i].length === 0 && f.metaUsers[i].length === 0)) continue;
    let r = i;
    while (f.parent[r] >= 0) r = f.parent[r];
    weightRoots.add(r);
  }
  let weightBytes = 0;
  for (const r of weightRoots) weightBytes += f.info[r]?.storageBytes ?? 0;

  // Workspace per step.
  const ws = new Float64Array(order.length);
  for (let s = 0; s < order.length; s++) {
    const u = units[order[s]];
    if (u.group >= 0 && part) ws[s] = groupWorkspace(f, u, part, kernel, opts.sdpaWorkspace, cpu);
    else for (const p of u.members) ws[s] = Math.max(ws[s], nodeWorkspace(f, p, kernel, opts.sdpaWorkspace, cpu));
    ws[s] = ws[s] ? round(ws[s]) : 0;
  }

  // Sweep.
  const alloc = new Float64Array(order.length + 1);
  const freed = new Float64Array(order.length + 1);
  for (let s = 0; s < S; s++) {
    const b = round(sBytes[s]);
    alloc[sDef[s]] += b;
    const last = Math.max(sLast[s], sDef[s]);
    freed[last] += b;
  }
  const base = opts.includeInputs ? inputBytes : 0;
  let live = base;
  let peak = base, peakStep = 0;
  const timeline: TimelineEntry[] = new Array(order.length);
  for (let s = 0; s < order.length; s++) {
    const u = units[order[s]];
    const during = live + alloc[s] + ws[s];
    if (during > peak) { peak = during; peakStep = s; }
    live += alloc[s] - freed[s];
    const nodes = u.members.map((p) => f.nodes[p]);
    timeline[s] = {
      step: s, nodes, group: u.group >= 0 ? u.group : undefined,
      label: u.group >= 0 && part ? `group #${u.group} ${part.groups[u.group].kind}` : `${nodes[0].kind}${nodes[0].outputs.length ? ' -> %' + nodes[0].outputs[0].debugName : ''}`,
      allocatedBytes: alloc[s], workspaceBytes: ws[s], freedBytes: freed[s], peakBytes: during, liveBytes: live,
    };
  }

  const liveAtPeak: LiveStorage[] = [];
  for (let s = 0; s < S; s++) {
    if (sDef[s] <= peakStep && Math.max(sLast[s], sDef[s]) >= peakStep && sBytes[s] > 0) {
      const v = f.values[sRoot[s]];
      liveAtPeak.push({ value: '%' + v.debugName, producer: v.node?.kind ?? 'input', bytes: round(sBytes[s]) });
    }
  }
  liveAtPeak.sort((a, b) => b.bytes - a.bytes);
  let outputBytes = 0;
  for (let s = 0; s < S; s++) if (sLast[s] >= END) outputBytes += round(sBytes[s]);

  return {
    mode: fused ? 'fused' : 'unfused',
    peakBytes: peak, peakStep, peakLabel: timeline[peakStep]?.label ?? '', liveAtPeak: liveAtPeak.slice(0, 10),
    weightBytes, inputBytes, outputBytes, timeline, unknownTensors, scheduleFallback,
    options: { alignBytes: align, includeInputs: !!opts.includeInputs, sdpaKernel: kernel },
  };
}

// ---- workspace models ----------------------------------------------------------------------------

/**
 * Scratch of libtorch's CPU flash-attention kernel, for MemoryOptions.sdpaWorkspace: per
 * thread, a qSplit x kvSplit float32 score tile, the row max and sum, and a qSplit x Ev float32
 * accumulator (plus a reduced-precision tile for 16-bit inputs); qSplit is 32, 64 (L >= 192) or
 * 256 (L >= 768), kvSplit 512, both capped by the sequence lengths. `threads`: libtorch's
 * intra-op thread count. Matches the measured peak of mha_demo's fused graph on CPU exactly.
 */
export function cpuFlashAttentionWorkspace(threads: number): (q: SdpaWorkspaceQuery) => number {
  return (q) => {
    const qs = Math.min(q.L >= 768 ? 256 : q.L >= 192 ? 64 : 32, q.L);
    const kvs = Math.min(512, q.S);
    const perThread = (qs * kvs + 2 * qs + qs * q.Ev) * 4 + (q.dtypeBytes < 4 ? qs * kvs * q.dtypeBytes : 0);
    return q.source === 'aten::_native_multi_head_attention' ? 0 : threads * perThread;
  };
}

function attentionWorkspace(d: SdpaDims, dsize: number, kernel: 'flash' | 'math', source: string,
  hook: MemoryOptions['sdpaWorkspace']): number {
  const base = kernel === 'math'
    ? 2 * d.batch * d.L * d.S * dsize // scores and probabilities
    : d.batch * d.L * 4; // float32 log-sum-exp per row
  return base + (hook ? hook({ ...d, dtypeBytes: dsize, source }) : 0);
}

function shapeAt(f: GraphFacts, n: Node, k: number, out = false) {
  const v = out ? n.outputs[k] : n.inputs[k];
  const i = v ? f.vindex.get(v) : undefined;
  return i === undefined ? undefined : f.info[i];
}

/** Copies matmul makes of operands it cannot view in its folded/batched form. */
function matmulCopies(a: { shape: number[]; strides: number[]; bytes: number }, b: { shape: number[]; strides: number[]; bytes: number }): number {
  const da = a.shape.length, db = b.shape.length;
  if (da < 3 && db < 3) return 0;
  if (da >= 3 && db <= 2) {
    const k = a.shape[da - 1];
    return canView(a.shape, a.strides, [numel(a.shape) / Math.max(1, k), k]) ? 0 : a.bytes;
  }
  const batchA = da >= 2 ? a.shape.slice(0, -2) : [];
  const batchB = db >= 2 ? b.shape.slice(0, -2) : [];
  const n = Math.max(batchA.length, batchB.length);
  const batch: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = batchA[batchA.length - n + i] ?? 1, y = batchB[batchB.length - n + i] ?? 1;
    batch.push(x === 1 ? y : x);
  }
  const B = numel(batch);
  const copy = (t: { shape: number[]; strides: number[]; bytes: number }) => {
    if (t.shape.length < 2) return 0;
    const rc = t.shape.slice(-2);
    const tb = t.shape.slice(0, -2);
    const ts = t.strides.slice(0, -2);
    const shape = [...batch, ...rc];
    const strides = batch.map((d, i) => {
      const j = i - (n - tb.length);
      return j >= 0 && tb[j] === d ? ts[j] : 0;
    }).concat(t.strides.slice(-2));
    if (canView(shape, strides, [B, rc[0], rc[1]])) return 0;
    const n0 = numel(t.shape);
    return n0 ? (t.bytes / n0) * B * rc[0] * rc[1] : 0;
  };
  return copy(a) + copy(b);
}

/**
 * Peak inside libtorch's CPU _native_multi_head_attention: the packed projection and its
 * head-split copy (2 qkv); then q/k/v and the scores; then q/k/v, the head-merge copy, the
 * output, and the scores when the weights are returned. A = B*L*E bytes, S = B*H*L*S bytes.
 * Matches the measured peaks of mha_demo (weights returned) and of L=2048 (not) exactly.
 */
function nativeMhaPeak(A: number, qkv: number, scores: number, needWeights: boolean): number {
  return Math.max(2 * qkv, qkv + scores, qkv + 2 * A + (needWeights ? scores : 0));
}

// ---- CPU convolution (libtorch 2.13's CPU build, oneDNN on x86) ---------------------------------

interface CpuKernels {
  /** Intra-op threads. */
  threads: number;
  /** oneDNN's channel block (16 on AVX-512). */
  block: number;
}

function defaultThreads(): number {
  return typeof availableParallelism === 'function' ? availableParallelism() : Math.max(1, cpus().length);
}

const notOne = (v: number | boolean | string | null | number[] | undefined) =>
  Array.isArray(v) ? v.some((x) => x !== 1) : typeof v === 'number' ? v !== 1 : false;

/**
 * What a CPU convolution allocates besides its output, and for how long, as measured allocation
 * by allocation through the c10 CPU allocator (which oneDNN's scratch goes through too). The
 * backend follows ATen's choice (ConvParams::use_mkldnn): oneDNN for float32 unless the call is
 * batch 1, ungrouped, with a kernel not larger than 3x3 on a small input (or a 1x1 kernel,
 * single-threaded, batch < 16), which take the fallback (slow_conv2d). Either backend first
 * copies an input that is not contiguous in its memory format (channels last when the input or
 * the weight is laid out so, else NCHW); the channels-last path also copies a weight that is not.
 *  - oneDNN, NCHW: the input is reordered to a blocked layout (nChw16c, channels padded to the
 *    block) unless the kernel is larger than 1x1 with fewer than 16 input channels and no groups
 *    (oneDNN's "first convolution" reads NCHW directly); the weight is reordered (padded); the
 *    output is computed in a blocked buffer, then the input and weight copies are freed, the NCHW
 *    output allocated and the blocked one reordered into it and freed. A bias whose length is not
 *    a multiple of the block is padded too; a strided 1x1 convolution keeps a per-thread
 *    unit-stride copy of its input tile (oneDNN's "rtus" scratch).
 *  - oneDNN, channels last: the output is written in place; the weight is reordered (plus a
 *    per-thread scratchpad when not depthwise).
 *  - slow_conv2d: the im2col buffer (batch x C*k x output positions), unless 1x1, unit stride,
 *    no padding.
 * Returns the bytes live during the op beyond the output (and the op's inputs).
 */
function cpuConvWorkspace(f: GraphFacts, n: Node, cpu: CpuKernels): number {
  // Arguments by schema name (input and weight lead every convolution schema; the first is
  // `self` in mkldnn_convolution's). A transposed convolution is not modelled.
  const transposed = n.arg('transposed');
  if ((transposed && constOf(transposed) !== false) || /transpose/.test(n.kind)) return 0;
  const x = shapeAt(f, n, 0), w = shapeAt(f, n, 1), y = shapeAt(f, n, 0, true);
  if (!x || !w || !y || x.shape.length < 3 || w.shape.length !== x.shape.length) return 0;
  if (x.dtype !== 'float32' && x.dtype !== 'float64') return 0;
  const ds = dtypeBytes(x);
  const N = x.shape[0], C = x.shape[1], O = w.shape[0];
  const groups = Math.max(1, Math.round(C / Math.max(1, w.shape[1])));
  const kernel = w.shape.slice(2), K = numel(kernel);
  const inSpatial = numel(x.shape.slice(2)), outSpatial = numel(y.shape.slice(2));
  const stride = n.arg('stride'), dilation = n.arg('dilation');
  const strided = !!stride && notOne(constOf(stride));
  const dilated = !!dilation && notOne(constOf(dilation));
  const kw = kernel[kernel.length - 1], kh = kernel.length >= 2 ? kernel[kernel.length - 2] : 1;
  // ATen's use_mkldnn (the 4-D numel it tests is N*C*H*W, or N*C*1*W for 1-D convolutions).
  const inNumel4 = x.shape.length === 5 ? N * C * x.shape[2] * x.shape[3] : numel(x.shape);
  const mkldnn = x.dtype === 'float32'
    && (strided || dilated || N >= 16 || kw !== 1 || kh !== 1 || cpu.threads > 1)
    && (groups > 1 || (kw > 3 && kh > 3) || N > 1 || inNumel4 > 20480);
  // suggest_memory_format() of the input or the weight (a contiguous 1x1 weight is not channels last).
  const cl = x.shape.length >= 4 && (stridesLikeChannelsLast(x.shape, x.strides) || stridesLikeChannelsLast(w.shape, w.strides));
  const inCopy = (cl ? isChannelsLastContiguous(x.shape, x.strides) : isContiguous(x.shape, x.strides)) ? 0 : numel(x.shape) * ds;
  const wCopy = cl && !isChannelsLastContiguous(w.shape, w.strides) ? numel(w.shape) * ds : 0;
  if (!mkldnn) {
    const columns = K !== 1 || strided || outSpatial !== inSpatial;
    return inCopy + wCopy + (columns ? N * C * K * outSpatial * ds : 0);
  }
  const B = cpu.block;
  const pad = (c: number, b = B) => Math.ceil(c / b) * b;
  const depthwise = groups > 1 && w.shape[1] === 1;
  if (cl) {
    if (depthwise) return inCopy + pad(O) * K * 4;
    const scratch = 4120 * cpu.threads + 4096;
    const oBlocked = K === 1 ? (O <= B ? B : pad(O, 2 * B)) : pad(O);
    return inCopy + wCopy + scratch + oBlocked * w.shape[1] * K * 4;
  }
  const inReorder = K === 1 || C >= B || groups > 1 ? N * pad(C) * inSpatial * 4 : 0;
  const wReorder = pad(O) * (groups > 1 ? w.shape[1] : inReorder ? pad(C) : C) * K * 4;
  const outBlocked = N * pad(O) * outSpatial * 4;
  // A bias: shape propagation saw a tensor there, or (scripted modules read `self.bias` as an
  // Optional GetAttr it records nothing for) it is not known to be None: nn.Conv2d's default.
  const b = n.arg('bias');
  const bi = b ? f.vindex.get(b) : undefined;
  const hasBias = (bi !== undefined && !!f.info[bi]) || (!!b && b.type.kind !== 'None' && constOf(b) !== null);
  const bReorder = hasBias && O % B !== 0 ? pad(O) * 4 + 128 : 0;
  const rtus = K === 1 && strided ? cpu.threads * pad(C) * outSpatial * 4 + 128 : 0;
  const out = numel(y.shape) * 4;
  return inCopy + Math.max(rtus + bReorder + inReorder + wReorder + outBlocked - out, outBlocked);
}

function nodeWorkspace(f: GraphFacts, p: number, kernel: 'flash' | 'math', hook: MemoryOptions['sdpaWorkspace'], cpu?: CpuKernels): number {
  if (f.role[p] !== 'compute') return 0;
  const n = f.nodes[p];
  const kind = n.kind;
  if (CONV_KINDS.has(kind)) return cpu ? cpuConvWorkspace(f, n, cpu) : 0;
  if (kind === 'aten::batch_norm') {
    // native_batch_norm's save_mean and save_invstd (C values each, in the accumulation type),
    // allocated after the output and dropped by batch_norm.
    const x = shapeAt(f, n, 0);
    return x && x.shape.length >= 2 ? 2 * x.shape[1] * Math.max(4, dtypeBytes(x)) : 0;
  }
  if (kind === 'aten::max_pool2d' || kind === 'aten::max_pool3d') {
    // Both run max_pool{2,3}d_with_indices and drop the int64 indices (max_pool1d has its own kernel).
    const y = shapeAt(f, n, 0, true);
    return y ? numel(y.shape) * 8 : 0;
  }
  if (ATTENTION_KINDS.has(kind)) {
    // The opaque ops' CPU path (bmm + softmax, not flash), allocation by allocation; what the op
    // returns is counted as its outputs, the rest is workspace.
    const outBytes = n.outputs.reduce((k, o) => { const i = f.vindex.get(o); return k + (i !== undefined ? f.info[i]?.bytes ?? 0 : 0); }, 0);
    if (kind === 'aten::_transformer_encoder_layer_fwd') {
      const x = shapeAt(f, n, 0), w1 = shapeAt(f, n, 14);
      const E = Number(constOf(n.inputs[1]) ?? 0), H = Number(constOf(n.inputs[2]) ?? 1);
      if (!x || !w1 || !E) return 0;
      const L = x.shape[x.shape.length - 2], B = numel(x.shape) / (L * E), ds = dtypeBytes(x);
      const A = B * L * E * ds;
      const normFirst = constOf(n.inputs[8]) === true;
      const attn = (normFirst ? A : 0) + nativeMhaPeak(A, 3 * A, B * H * L * L * ds, false);
      const ffn = 3 * A + B * L * w1.shape[0] * ds; // residual, normed input, hidden (activated in place), output
      return Math.max(0, Math.max(attn, ffn) - outBytes);
    }
    if (kind === 'aten::_native_multi_head_attention') {
      const q = shapeAt(f, n, 0), k = shapeAt(f, n, 1);
      const E = Number(constOf(n.inputs[3]) ?? 0), H = Number(constOf(n.inputs[4]) ?? 1);
      if (!q || !k || !E) return 0;
      const B = q.shape.length === 3 ? q.shape[0] : 1;
      const L = q.shape[q.shape.length - 2], S = k.shape[k.shape.length - 2];
      const ds = dtypeBytes(q);
      const peak = nativeMhaPeak(B * L * E * ds, B * (L + 2 * S) * E * ds, B * H * L * S * ds, constOf(n.inputs[10]) === true);
      return Math.max(0, peak - outBytes);
    }
    const q = shapeAt(f, n, 0), k = shapeAt(f, n, 1), v = shapeAt(f, n, 2);
    if (!q || !k || !v) return 0;
    const L = q.shape[q.shape.length - 2], E = q.shape[q.shape.length - 1], S = k.shape[k.shape.length - 2], Ev = v.shape[v.shape.length - 1];
    return attentionWorkspace({ batch: numel(q.shape) / (L * E), L, S, E, Ev }, dtypeBytes(q), kernel, kind, hook);
  }
  if (kind === 'aten::layer_norm') {
    const x = shapeAt(f, n, 0);
    const ns = constOf(n.inputs[1]);
    if (!x) return 0;
    const inner = Array.isArray(ns) ? numel(ns) : x.shape[x.shape.length - 1];
    // mean and rstd per row; a non-contiguous input (a permuted NCHW tensor: LayerNorm2d,
    // ConvNeXt's channels-last MLP) is copied to contiguous first, and the copy lives throughout.
    return 2 * (numel(x.shape) / Math.max(1, inner)) * 4 + (isContiguous(x.shape, x.strides) ? 0 : x.bytes);
  }
  if (kind === 'aten::linear') {
    const x = shapeAt(f, n, 0);
    if (!x || x.shape.length <= 2) return 0;
    const k = x.shape[x.shape.length - 1];
    return canView(x.shape, x.strides, [numel(x.shape) / Math.max(1, k), k]) ? 0 : x.bytes;
  }
  if (kind === 'aten::matmul') {
    const a = shapeAt(f, n, 0), b = shapeAt(f, n, 1);
    return a && b ? matmulCopies(a, b) : 0;
  }
  return 0;
}

function groupWorkspace(f: GraphFacts, u: Unit, part: Partition, kernel: 'flash' | 'math', hook: MemoryOptions['sdpaWorkspace'], cpu?: CpuKernels): number {
  const g = part.groups[u.group];
  if (g.kind !== 'attention') return 0;
  // An opaque attention op (with its head merge): the op's own working set.
  const op = u.members.find((p) => ATTENTION_KINDS.has(f.nodes[p].kind));
  if (op !== undefined) return nodeWorkspace(f, op, kernel, hook, cpu);
  const scores = g.nodes[g.roles.indexOf('scores')];
  const context = g.nodes[g.roles.indexOf('context')];
  if (!scores || !context) return 0;
  const s = shapeAt(f, scores, 0, true), q = shapeAt(f, scores, 0), v = shapeAt(f, context, 1);
  if (!s || !q || !v) return 0;
  const L = s.shape[s.shape.length - 2], S = s.shape[s.shape.length - 1];
  return attentionWorkspace({ batch: numel(s.shape) / (L * S), L, S, E: q.shape[q.shape.length - 1], Ev: v.shape[v.shape.length - 1] },
    dtypeBytes(s), kernel, 'fused', hook);
}
