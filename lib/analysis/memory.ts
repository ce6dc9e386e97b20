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
// Those per-op workspace rules live in memory-workspace.ts; the schedule in memory-schedule.ts and
// the storages' lifetimes in memory-liveness.ts; this file sweeps the schedule for the peak.
// On CPU (libtorch 2.13) this reproduces the measured peaks of ViT-B/16, mha_demo and a
// 2048-token attention block byte for byte (test/integration/analysis.test.ts), and those of
// MobileNet/EfficientNet-, ConvNeXt- and ResNet-style CNNs (test/integration/cnn-memory.test.ts).
import type { Graph, Node } from '../core/ir';
import { buildFacts, type GraphFacts } from '../core/facts';
import type { Partition } from '../fusion/partition';
import type { GroupKind } from '../fusion/rules';
import { buildSchedule, type Schedule, type Unit } from './memory-schedule';
import { assignStorages, storageLastUse, weightBytesRead, type Storages } from './memory-liveness';
import { defaultThreads, groupWorkspace, nodeWorkspace, type CpuKernels, type SdpaWorkspaceQuery } from './memory-workspace';

export { cpuFlashAttentionWorkspace, type SdpaWorkspaceQuery } from './memory-workspace';

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
   * oneDNN's channel block on this CPU: 16 with AVX-512 (the default), 8 with AVX2 (the pipeline
   * passes it from runtimeInfo().cpuCapability). Blocked layouts (nChw16c, nChw8c) pad channels
   * up to a multiple of it.
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
