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
import { buildFacts, type GraphFacts } from '../core/facts';
import { constOf } from '../core/constants';
import type { SdpaDims } from './flops';
import { availableParallelism, cpus } from 'os';
import {
  ATTENTION_KINDS, CONV_KINDS, canView, isChannelsLastContiguous, isContiguous, numel, stridesLikeChannelsLast,
} from '../core/ops/classes';
import type { Partition } from '../fusion/partition';
import type { GroupKind } from '../fusion/rules';
import { buildSchedule, type Schedule, type Unit } from './memory-schedule';
import { assignStorages, storageLastUse, weightBytesRead, type Storages } from './memory-liveness';
import { einsumAsMatmul } from '../transforms/einsum';

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
  const align = Math.max(1, opts.alignBytes ?? 1);
  const round = (b: number) => (align > 1 ? Math.ceil(b / align) * align : b);
  const kernel = opts.sdpaKernel ?? 'flash';
  const device = opts.device ?? (align > 1 ? 'cuda' : 'cpu');
  const cpu: CpuKernels | undefined = device === 'cpu'
    ? { threads: Math.max(1, opts.threads ?? defaultThreads()), block: Math.max(1, opts.cpuChannelBlock ?? 16) }
    : undefined;

  const sch = buildSchedule(f, part, opts.fusedKinds);
  const st = assignStorages(f, sch);
  const END = sch.order.length; // graph outputs: never freed
  const sLast = storageLastUse(f, sch, st, END);
  const weightBytes = weightBytesRead(f, st.store);
  const ws = stepWorkspaces(f, sch, part, (p) => nodeWorkspace(f, p, kernel, opts.sdpaWorkspace, cpu),
    (u, pt) => groupWorkspace(f, u, pt, kernel, opts.sdpaWorkspace, cpu), round);
  const { timeline, peak, peakStep } = sweep(f, sch, st, sLast, ws, part, round, opts.includeInputs ? st.inputBytes : 0);
  const { liveAtPeak, outputBytes } = liveAtStep(f, st, sLast, peakStep, END, round);

  return {
    mode: sch.fused ? 'fused' : 'unfused',
    peakBytes: peak, peakStep, peakLabel: timeline[peakStep]?.label ?? '', liveAtPeak: liveAtPeak.slice(0, 10),
    weightBytes, inputBytes: st.inputBytes, outputBytes, timeline, unknownTensors: st.unknownTensors,
    scheduleFallback: sch.scheduleFallback,
    options: { alignBytes: align, includeInputs: !!opts.includeInputs, sdpaKernel: kernel },
  };
}

/** Transient workspace of each step (rounded): its group's, or the largest of its nodes'. */
function stepWorkspaces(f: GraphFacts, sch: Schedule, part: Partition | undefined, ofNode: (p: number) => number,
  ofGroup: (u: Unit, part: Partition) => number, round: (b: number) => number): Float64Array {
  const { order, units } = sch;
  const ws = new Float64Array(order.length);
  for (let s = 0; s < order.length; s++) {
    const u = units[order[s]];
    if (u.group >= 0 && part) ws[s] = ofGroup(u, part);
    else for (const p of u.members) ws[s] = Math.max(ws[s], ofNode(p));
    ws[s] = ws[s] ? round(ws[s]) : 0;
  }
  return ws;
}

/** The sweep over the schedule: live bytes after each step and the highest while one runs. */
function sweep(f: GraphFacts, sch: Schedule, st: Storages, sLast: Int32Array, ws: Float64Array, part: Partition | undefined,
  round: (b: number) => number, base: number): { timeline: TimelineEntry[]; peak: number; peakStep: number } {
  const { order, units } = sch;
  const alloc = new Float64Array(order.length + 1);
  const freed = new Float64Array(order.length + 1);
  for (let s = 0; s < st.bytes.length; s++) {
    const b = round(st.bytes[s]);
    alloc[st.def[s]] += b;
    const last = Math.max(sLast[s], st.def[s]);
    freed[last] += b;
  }
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
      label: u.group >= 0 && part
        ? `group #${u.group} ${part.groups[u.group].kind}`
        : `${nodes[0].kind}${nodes[0].outputs.length ? ' -> %' + nodes[0].outputs[0].debugName : ''}`,
      allocatedBytes: alloc[s], workspaceBytes: ws[s], freedBytes: freed[s], peakBytes: during, liveBytes: live,
    };
  }
  return { timeline, peak, peakStep };
}

/** The storages live at a step, largest first, and the bytes still live at the end. */
function liveAtStep(f: GraphFacts, st: Storages, sLast: Int32Array, peakStep: number, end: number,
  round: (b: number) => number): { liveAtPeak: LiveStorage[]; outputBytes: number } {
  const S = st.bytes.length;
  const liveAtPeak: LiveStorage[] = [];
  for (let s = 0; s < S; s++) {
    if (st.def[s] <= peakStep && Math.max(sLast[s], st.def[s]) >= peakStep && st.bytes[s] > 0) {
      const v = f.values[st.root[s]];
      liveAtPeak.push({ value: '%' + v.debugName, producer: v.node?.kind ?? 'input', bytes: round(st.bytes[s]) });
    }
  }
  liveAtPeak.sort((a, b) => b.bytes - a.bytes);
  let outputBytes = 0;
  for (let s = 0; s < S; s++) if (sLast[s] >= end) outputBytes += round(st.bytes[s]);
  return { liveAtPeak, outputBytes };
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
function matmulCopies(
  a: { shape: number[]; strides: number[]; bytes: number }, b: { shape: number[]; strides: number[]; bytes: number },
): number {
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
  if (n.kind === 'mkldnn::_convolution_pointwise') return pointwiseConvWorkspace(f, n, cpu);
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
    // Output channels padded to the block, past one block to two (measured: 48 -> 64 with 3x3 and 1x1 kernels alike).
    const oBlocked = O <= B ? B : pad(O, 2 * B);
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

/**
 * oneDNN's pointwise convolution on a prepacked weight (fusion/conv-pointwise.ts): it writes its
 * channels-last output in place and first reorders an input that is not channels last; the
 * non-depthwise kernels keep the same per-thread scratchpad as the channels-last path above.
 */
function pointwiseConvWorkspace(f: GraphFacts, n: Node, cpu: CpuKernels): number {
  const at = (name: string) => {
    const v = n.arg(name);
    const i = v ? f.vindex.get(v) : undefined;
    return i === undefined ? undefined : f.info[i];
  };
  const x = at('X'), w = at('W');
  if (!x || !w || x.shape.length !== 4) return 0;
  const inCopy = isChannelsLastContiguous(x.shape, x.strides) ? 0 : x.bytes;
  const groups = Number(constOf(n.arg('groups')!) ?? 1);
  const depthwise = groups > 1 && w.shape[1] === 1;
  return inCopy + (depthwise ? 0 : 4120 * cpu.threads + 4096);
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
    const outBytes = n.outputs.reduce((k, o) => {
      const i = f.vindex.get(o);
      return k + (i !== undefined ? f.info[i]?.bytes ?? 0 : 0);
    }, 0);
    if (kind === 'aten::_transformer_encoder_layer_fwd') {
      const x = shapeAt(f, n, 0), w1 = shapeAt(f, n, 14);
      const E = Number(constOf(n.arg('embed_dim')) ?? 0), H = Number(constOf(n.arg('num_heads')) ?? 1);
      if (!x || !w1 || !E) return 0;
      const L = x.shape[x.shape.length - 2], B = numel(x.shape) / (L * E), ds = dtypeBytes(x);
      const A = B * L * E * ds;
      const normFirst = constOf(n.arg('norm_first')) === true;
      const attn = (normFirst ? A : 0) + nativeMhaPeak(A, 3 * A, B * H * L * L * ds, false);
      const ffn = 3 * A + B * L * w1.shape[0] * ds; // residual, normed input, hidden (activated in place), output
      return Math.max(0, Math.max(attn, ffn) - outBytes);
    }
    if (kind === 'aten::_native_multi_head_attention') {
      const q = shapeAt(f, n, 0), k = shapeAt(f, n, 1);
      const E = Number(constOf(n.arg('embed_dim')) ?? 0), H = Number(constOf(n.arg('num_head')) ?? 1);
      if (!q || !k || !E) return 0;
      const B = q.shape.length === 3 ? q.shape[0] : 1;
      const L = q.shape[q.shape.length - 2], S = k.shape[k.shape.length - 2];
      const ds = dtypeBytes(q);
      const peak = nativeMhaPeak(B * L * E * ds, B * (L + 2 * S) * E * ds, B * H * L * S * ds, constOf(n.arg('need_weights')) === true);
      return Math.max(0, peak - outBytes);
    }
    const q = shapeAt(f, n, 0), k = shapeAt(f, n, 1), v = shapeAt(f, n, 2);
    if (!q || !k || !v) return 0;
    const L = q.shape[q.shape.length - 2], E = q.shape[q.shape.length - 1];
    const S = k.shape[k.shape.length - 2], Ev = v.shape[v.shape.length - 1];
    // SDPA turns a bool mask into an additive one of q's dtype (measured: numel x its bytes);
    // libtorch's CPU flash kernel reads a float mask along its last dim, and one whose last dim
    // is strided (a permuted bias table, MaxViT's) is copied to contiguous first.
    const maskAt = n.inputs.indexOf(n.arg('attn_mask')!);
    const mask = maskAt >= 0 ? shapeAt(f, n, maskAt) : undefined;
    const maskCopy = !mask || !mask.shape.length ? 0
      : mask.dtype === 'bool' ? numel(mask.shape) * dtypeBytes(q)
      : kernel === 'flash' && cpu && mask.shape[mask.shape.length - 1] > 1 && mask.strides[mask.strides.length - 1] !== 1
        ? numel(mask.shape) * dtypeBytes(mask) : 0;
    return attentionWorkspace({ batch: numel(q.shape) / (L * E), L, S, E, Ev }, dtypeBytes(q), kernel, kind, hook) + maskCopy;
  }
  if (kind === 'aten::layer_norm') {
    const x = shapeAt(f, n, 0);
    const ns = constOf(n.arg('normalized_shape'));
    if (!x) return 0;
    const inner = Array.isArray(ns) ? numel(ns) : x.shape[x.shape.length - 1];
    // mean and rstd per row; a non-contiguous input (a permuted NCHW tensor: LayerNorm2d,
    // ConvNeXt's channels-last MLP) is copied to contiguous first, and the copy lives throughout.
    return 2 * (numel(x.shape) / Math.max(1, inner)) * 4 + (isContiguous(x.shape, x.strides) ? 0 : x.bytes);
  }
  if (kind === 'aten::linear' || kind === 'mkl::_mkl_linear' || kind === 'mkldnn::_linear_pointwise') {
    const x = shapeAt(f, n, 0);
    if (!x || x.shape.length <= 2) return 0;
    const k = x.shape[x.shape.length - 1];
    return canView(x.shape, x.strides, [numel(x.shape) / Math.max(1, k), k]) ? 0 : x.bytes;
  }
  if (kind === 'aten::matmul') {
    const a = shapeAt(f, n, 0), b = shapeAt(f, n, 1);
    return a && b ? matmulCopies(a, b) : 0;
  }
  if (kind === 'aten::einsum') return einsumCopies(f, n);
  return 0;
}

/**
 * torch.einsum over two operands permutes each to (batch, free, contracted) and reshapes it for
 * bmm: an operand that cannot be viewed so is copied (its result is a view of bmm's output).
 */
function einsumCopies(f: GraphFacts, n: Node): number {
  const e = einsumAsMatmul(n);
  if (!e) return 0;
  const copy = (v: typeof e.a, perm: number[]) => {
    const i = f.vindex.get(v);
    const t = i === undefined ? undefined : f.info[i];
    if (!t || t.shape.length !== perm.length) return 0;
    const shape = perm.map((d) => t.shape[d]), strides = perm.map((d) => t.strides[d]);
    return canView(shape, strides, [numel(shape.slice(0, -2)), shape[shape.length - 2], shape[shape.length - 1]]) ? 0 : t.bytes;
  };
  return copy(e.a, e.permA) + copy(e.b, e.permB);
}

function groupWorkspace(
  f: GraphFacts, u: Unit, part: Partition, kernel: 'flash' | 'math', hook: MemoryOptions['sdpaWorkspace'], cpu?: CpuKernels,
): number {
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
