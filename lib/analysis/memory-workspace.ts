// The memory model's per-node workspace rules: what an op allocates and frees inside itself while it
// runs (attention kernels, CPU convolutions, pooling indices, norm statistics, matmul/einsum copies).
// memory.ts adds these to each step of its liveness sweep.
import { CONV2D_KIND } from '../core/ops/own-schemas';
import type { Node } from '../core/ir';
import type { GraphFacts } from '../core/facts';
import { constOf } from '../core/constants';
import type { SdpaDims } from './flops';
import { availableParallelism, cpus } from 'os';
import {
  ATTENTION_KINDS, CONV_KINDS, canView, isChannelsLastContiguous, isContiguous, numel, stridesLikeChannelsLast,
} from '../core/ops/classes';
import type { Partition } from '../fusion/partition';
import type { Unit } from './memory-schedule';
import { einsumAsMatmul } from '../transforms/einsum';

export interface SdpaWorkspaceQuery extends SdpaDims {
  dtypeBytes: number;
  /** The op kind, or 'fused' for a fused attention core group. */
  source: string;
}

/** Extra bytes an attention kernel allocates (MemoryOptions.sdpaWorkspace). */
export type SdpaWorkspaceHook = (q: SdpaWorkspaceQuery) => number;

function dtypeBytes(t: { bytes: number; shape: number[] } | undefined): number {
  if (!t) return 4;
  const n = numel(t.shape);
  return n > 0 ? t.bytes / n : 4;
}

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
  hook: SdpaWorkspaceHook | undefined): number {
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

export interface CpuKernels {
  /** Intra-op threads. */
  threads: number;
  /** oneDNN's channel block (16 on AVX-512). */
  block: number;
}

export function defaultThreads(): number {
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
  if (n.kind === CONV2D_KIND) return packedConvWorkspace(f, n);
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

/** torchgraph::conv2d (native/packed_linear.cc): its input zero-padded and channels last, for the op's duration. */
function packedConvWorkspace(f: GraphFacts, n: Node): number {
  const v = n.arg('input');
  const i = v ? f.vindex.get(v) : undefined;
  const x = i === undefined ? undefined : f.info[i];
  const padding = constOf(n.arg('padding')!);
  if (!x || x.shape.length !== 4 || !Array.isArray(padding)) return 0;
  const [ph, pw] = padding.map(Number);
  const [N, C, H, W] = x.shape;
  return N * (H + 2 * ph) * (W + 2 * pw) * C * 4;
}

export function nodeWorkspace(
  f: GraphFacts, p: number, kernel: 'flash' | 'math', hook: SdpaWorkspaceHook | undefined, cpu?: CpuKernels,
): number {
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
  if (kind === 'torchgraph::linear') {
    // A strided x is copied contiguous first (native/packed_linear.cc); the GEMM's own scratch
    // (a row block of x, about 0.4 MiB a thread) is outside torch's allocator, as oneDNN's is.
    const x = shapeAt(f, n, 0);
    return !x || isContiguous(x.shape, x.strides) ? 0 : x.bytes;
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

export function groupWorkspace(
  f: GraphFacts, u: Unit, part: Partition, kernel: 'flash' | 'math', hook: SdpaWorkspaceHook | undefined, cpu?: CpuKernels,
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
