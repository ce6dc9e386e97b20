// The explicit math of multi-head attention, emitted op by op in PyTorch's order:
// Q/K/V projections, head reshapes, scale, Q @ K^T, masks, softmax, dropout, @ V, head
// merge, output projection. Semantics follow torch.nn.functional.multi_head_attention_forward
// (masks canonicalised as PyTorch does) in a batch-first (B, H, L, hd) layout.
import type { Value } from '../core/ir';
import { Emitter, SCALAR_TYPE } from './emit';

export type MaskDtype = 'bool' | 'float';

export interface MaskInput {
  value: Value;
  dtype: MaskDtype;
  rank: number;
}

/** Where q/k/v weights come from: row slices of a packed in_proj_weight, or separate ones. */
export type InProjection =
  | { packed: true; weight: Value; bias: Value | null }
  | { packed: false; q: Value; k: Value; v: Value; bias: Value | null };

export interface MhaMath {
  embedDim: number;
  numHeads: number;
  /** Inputs are (B, L, E) when true, (L, B, E) when false; ignored for unbatched inputs. */
  batchFirst: boolean;
  /** False for unbatched (L, E) inputs. */
  batched: boolean;
  inProj: InProjection;
  outWeight: Value;
  outBias: Value | null;
  biasK?: Value;
  biasV?: Value;
  addZeroAttn: boolean;
  dropout: number;
  training: boolean;
  attnMask?: MaskInput;
  keyPaddingMask?: MaskInput;
  /** A constant, or a bool known only at run time (scripted nn.Transformer computes it from the mask). */
  isCausal: boolean | Value;
  needWeights: boolean;
  averageWeights: boolean;
  /** masked_softmax semantics of the fused kernels: a float mask marks masked positions by any non-zero. */
  floatMaskIsBoolean?: boolean;
  /** Mask layout of aten::_native_multi_head_attention: 0 (L, S), 1 (B, S), 2 (B, H, L, S). */
  nativeMaskType?: number;
}

/** Heads: (B, N, E) -> (B, H, N, hd). */
function splitHeads(em: Emitter, t: Value, B: Value, N: Value, H: number, hd: number): Value {
  em.role = 'reshape';
  return em.transpose(em.view(t, [B, N, H, hd]), 1, 2);
}

/** Masking of scores (B, H, L, S) with a canonical (PyTorch MHA) mask: bool True = masked. */
function applyMask(em: Emitter, scores: Value, mask: Value, dtype: MaskDtype, floatIsBool: boolean): Value {
  em.role = 'mask';
  if (dtype === 'bool') return em.maskedFill(scores, mask, -Infinity);
  if (floatIsBool) return em.maskedFill(scores, em.op('aten::ne', mask, em.constant(0)), -Infinity);
  return em.add(scores, mask);
}

/** The (L, S) causal mask, true above the diagonal (masked), on `like`'s device. */
function causalMask(em: Emitter, like: Value, L: Value, S: Value): Value {
  return em.triu(em.newFull('aten::new_ones', like, [L, S], SCALAR_TYPE.bool), 1);
}

/** A run-time bool as a 0-dim bool tensor, for where/logical_and. */
function flagTensor(em: Emitter, flag: Value): Value {
  return em.op('aten::tensor', flag, em.none(), em.none(), em.constant(false));
}

/** where(flag, causal, mask): the causal mask in the mask's form (bool: true = masked; float: -inf) when the run-time flag is set. */
function causalIfFlag(em: Emitter, like: Value, L: Value, S: Value, flag: Value, mask: Value, dtype: MaskDtype): Value {
  em.role = 'mask';
  const causal = causalMask(em, like, L, S);
  const inForm = dtype === 'bool' ? causal : em.op('aten::where', causal, em.constant(-Infinity), em.constant(0));
  return em.op('aten::where', flagTensor(em, flag), inForm, mask);
}

/** What masks the scores get: attn_mask (or the causal mask in its place) and the key padding mask. */
interface Masks {
  attnMask: Value | undefined;
  kpm: Value | undefined;
  /** is_causal applies: the causal mask replaces attn_mask. */
  useCausal: boolean;
  /** A run-time is_causal flag choosing between the causal mask and attn_mask. */
  runtimeCausal: Value | undefined;
}

export function emitMultiheadAttention(
  em: Emitter, cfg: MhaMath, query: Value, key: Value, value: Value,
): { out: Value; weights: Value | null } {
  const E = cfg.embedDim;
  const H = cfg.numHeads;
  const hd = E / H;
  if (!Number.isInteger(hd)) throw new Error(`embed_dim ${E} is not divisible by num_heads ${H}`);

  // Layout: everything below works on batch-first (B, N, E).
  const input = toBatchFirst(em, cfg, query, key, value);
  const proj = projectQkv(em, cfg, input.q, input.k, input.v);

  em.role = 'reshape';
  const B = em.size(proj.q, 0);
  const L = em.size(proj.q, 1);

  // F.multi_head_attention_forward: is_causal is a hint that attn_mask is causal; with no key
  // padding mask and no weights wanted, the causal mask is used instead of attn_mask, otherwise
  // attn_mask is. A run-time flag picks between the two when the graph runs.
  const hintApplies = !cfg.keyPaddingMask && !cfg.needWeights;
  const useCausal = cfg.isCausal === true && hintApplies;
  const runtimeCausal = typeof cfg.isCausal === 'object' && hintApplies ? cfg.isCausal : undefined;
  const masks: Masks = { attnMask: useCausal ? undefined : cfg.attnMask?.value, kpm: input.kpm, useCausal, runtimeCausal };

  const heads = headsWithExtraKeys(em, cfg, proj.q, proj.k, proj.v, B, L, masks);
  const scores = maskedScores(em, cfg, heads.q, heads.k, B, L, heads.S, masks);
  return attendAndProject(em, cfg, scores, heads.v, B, L);
}

/** Unbatched inputs get a batch dim, sequence-first ones are transposed; the key padding mask follows. */
function toBatchFirst(
  em: Emitter, cfg: MhaMath, query: Value, key: Value, value: Value,
): { q: Value; k: Value; v: Value; kpm: Value | undefined } {
  em.role = 'reshape';
  let q = query, k = key, v = value;
  if (!cfg.batched) {
    q = em.unsqueeze(q, 0); k = em.unsqueeze(k, 0); v = em.unsqueeze(v, 0);
  } else if (!cfg.batchFirst) {
    q = em.transpose(q, 0, 1); k = em.transpose(k, 0, 1); v = em.transpose(v, 0, 1);
  }
  let kpm = cfg.keyPaddingMask?.value;
  if (kpm && !cfg.batched) kpm = em.unsqueeze(kpm, 0);
  return { q, k, v, kpm };
}

/** Projections; packed weights are row slices (views, not copies). */
function projectQkv(em: Emitter, cfg: MhaMath, q: Value, k: Value, v: Value): { q: Value; k: Value; v: Value } {
  const E = cfg.embedDim;
  const bias = (i: number) => {
    if (!cfg.inProj.bias) return null;
    em.role = ['q_proj', 'k_proj', 'v_proj'][i];
    return em.slice(cfg.inProj.bias, 0, i * E, (i + 1) * E);
  };
  const weight = (i: number) => {
    em.role = ['q_proj', 'k_proj', 'v_proj'][i];
    if (cfg.inProj.packed) return em.slice(cfg.inProj.weight, 0, i * E, (i + 1) * E);
    return [cfg.inProj.q, cfg.inProj.k, cfg.inProj.v][i];
  };
  const wq = weight(0), bq = bias(0);
  em.role = 'q_proj';
  q = em.linear(q, wq, bq);
  const wk = weight(1), bk = bias(1);
  em.role = 'k_proj';
  k = em.linear(k, wk, bk);
  const wv = weight(2), bv = bias(2);
  em.role = 'v_proj';
  v = em.linear(v, wv, bv);
  return { q, k, v };
}

/** add_bias_kv and add_zero_attn (one more key/value position each; `masks` padded to match, in place) around the head split. */
function headsWithExtraKeys(em: Emitter, cfg: MhaMath, q: Value, k: Value, v: Value, B: Value, L: Value, masks: Masks):
{ q: Value; k: Value; v: Value; S: Value } {
  const E = cfg.embedDim, H = cfg.numHeads, hd = E / H;
  if (cfg.biasK && cfg.biasV) {
    em.role = 'bias_kv';
    k = em.cat([k, em.expand(cfg.biasK, [B, 1, E])], 1);
    v = em.cat([v, em.expand(cfg.biasV, [B, 1, E])], 1);
    if (masks.attnMask) masks.attnMask = em.padLast(masks.attnMask, 1);
    if (masks.kpm) masks.kpm = em.padLast(masks.kpm, 1);
  }
  em.role = 'reshape';
  let S = em.size(k, 1);
  q = splitHeads(em, q, B, L, H, hd);
  k = splitHeads(em, k, B, S, H, hd);
  v = splitHeads(em, v, B, S, H, hd);

  if (cfg.addZeroAttn) {
    em.role = 'zero_attn';
    k = em.cat([k, em.newFull('aten::new_zeros', k, [B, H, 1, hd])], 2);
    v = em.cat([v, em.newFull('aten::new_zeros', v, [B, H, 1, hd])], 2);
    if (masks.attnMask) masks.attnMask = em.padLast(masks.attnMask, 1);
    if (masks.kpm) masks.kpm = em.padLast(masks.kpm, 1);
    em.role = 'reshape';
    S = em.size(k, 2);
  }
  return { q, k, v, S };
}

/** scale * q @ k^T, then the causal mask or attn_mask (in the scores' layout), then the key padding mask. */
function maskedScores(em: Emitter, cfg: MhaMath, q: Value, k: Value, B: Value, L: Value, S: Value, masks: Masks): Value {
  const H = cfg.numHeads, hd = cfg.embedDim / H;
  const attnDtype = cfg.attnMask?.dtype;
  em.role = 'scale';
  const qScaled = em.mulScalar(q, 1 / Math.sqrt(hd));
  em.role = 'reshape';
  const kT = em.transpose(k, -2, -1);
  em.role = 'scores';
  let scores = em.matmul(qScaled, kT);

  const floatIsBool = cfg.floatMaskIsBoolean ?? false;
  if (masks.useCausal) {
    em.role = 'mask';
    scores = em.maskedFill(scores, causalMask(em, q, L, S), -Infinity);
  } else if (masks.attnMask && attnDtype) {
    let m = masks.attnMask;
    const rank = cfg.attnMask!.rank;
    if (cfg.nativeMaskType === 1) {
      em.role = 'mask';
      m = em.view(m, [B, 1, 1, S]);
    } else if (rank === 3) {
      em.role = 'mask';
      m = em.view(m, [B, H, L, S]);
    }
    if (masks.runtimeCausal) m = causalIfFlag(em, q, L, S, masks.runtimeCausal, m, attnDtype);
    scores = applyMask(em, scores, m, attnDtype, floatIsBool);
  }
  if (masks.kpm && cfg.keyPaddingMask) {
    em.role = 'mask';
    const m = em.view(masks.kpm, [B, 1, 1, S]);
    scores = applyMask(em, scores, m, cfg.keyPaddingMask.dtype, floatIsBool);
  }
  return scores;
}

/** softmax, dropout, @ v, head merge, output projection, the input's layout back; the weights when wanted. */
function attendAndProject(em: Emitter, cfg: MhaMath, scores: Value, v: Value, B: Value, L: Value): { out: Value; weights: Value | null } {
  em.role = 'softmax';
  let attn = em.softmax(scores, -1);
  if (cfg.dropout > 0) {
    em.role = 'dropout';
    attn = em.dropout(attn, cfg.dropout, cfg.training);
  }
  em.role = 'context';
  let ctx = em.matmul(attn, v);

  em.role = 'merge';
  ctx = em.view(em.contiguous(em.transpose(ctx, 1, 2)), [B, L, cfg.embedDim]);
  em.role = 'out_proj';
  let out = em.linear(ctx, cfg.outWeight, cfg.outBias);

  em.role = 'reshape';
  if (!cfg.batched) out = em.squeeze(out, 0);
  else if (!cfg.batchFirst) out = em.transpose(out, 0, 1);

  let weights: Value | null = null;
  if (cfg.needWeights) {
    em.role = 'weights';
    weights = cfg.averageWeights ? em.mean(attn, 1) : attn;
    if (!cfg.batched) weights = em.squeeze(weights, 0);
  }
  return { out, weights };
}

/** torch.nn.functional.scaled_dot_product_attention as explicit math (its own mask semantics: bool True = attend). */
export function emitSdpa(em: Emitter, q: Value, k: Value, v: Value, opts: {
  mask?: { value: Value; dtype: MaskDtype }; dropout: number; isCausal: boolean | Value; scale: number | null; headDim: number;
}): Value {
  em.role = 'reshape';
  const L = em.size(q, -2);
  const S = em.size(k, -2);
  em.role = 'scale';
  const qScaled = em.mulScalar(q, opts.scale ?? 1 / Math.sqrt(opts.headDim));
  em.role = 'reshape';
  const kT = em.transpose(k, -2, -1);
  em.role = 'scores';
  let scores = em.matmul(qScaled, kT);
  // With attn_mask given, SDPA raises when is_causal is set: a run-time flag only matters without one.
  if (opts.isCausal === true || (typeof opts.isCausal === 'object' && !opts.mask)) {
    em.role = 'mask';
    let causal = causalMask(em, q, L, S);
    if (typeof opts.isCausal === 'object') causal = em.op('aten::logical_and', causal, flagTensor(em, opts.isCausal));
    scores = em.maskedFill(scores, causal, -Infinity);
  }
  if (opts.mask) {
    em.role = 'mask';
    scores = opts.mask.dtype === 'bool'
      ? em.maskedFill(scores, em.logicalNot(opts.mask.value), -Infinity)
      : em.add(scores, opts.mask.value);
  }
  em.role = 'softmax';
  let attn = em.softmax(scores, -1);
  if (opts.dropout > 0) {
    em.role = 'dropout';
    attn = em.dropout(attn, opts.dropout, true);
  }
  em.role = 'context';
  return em.matmul(attn, v);
}
