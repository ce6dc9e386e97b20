// What each aten op is to the analyses: its fusion classes, whether its output aliases an input
// (storage shared, nothing allocated), whether a use of an input reads only metadata, and the
// small tensor-geometry helpers (numel, contiguity, "can this reshape be a view?").
//
// Classes are sets because one op can play several parts: aten::add of two activations is a
// residual add, a mask and an elementwise op; the rules decide which part it plays.

import { outOfPlaceKind } from '../ir/node';
import { viewStrides } from '../strides';
import { ADD_NORM_KINDS, CONV2D_KIND, MAX_POOL_KIND } from './own-schemas';

export type OpClass =
  | 'matmul'      // activation x activation: matmul, bmm, mm, baddbmm
  | 'linear'      // activation x weight: linear, addmm, matmul/mm whose other operand is a weight
  | 'conv'
  | 'batchnorm'
  | 'norm'        // layer_norm, group_norm, instance_norm, rms_norm
  | 'softmax'
  | 'dropout'
  | 'act'         // relu, gelu, silu, ...
  | 'scale'       // mul / div by a scalar
  | 'mask'        // masked_fill, where, add of a (float, -inf) mask tensor
  | 'add'         // add / sub of two tensors
  | 'elementwise'
  | 'cast'        // to, type_as, float(), ...
  | 'layout'      // view, reshape, transpose, permute, contiguous, select, slice, ...
  | 'attention'   // opaque attention ops: scaled_dot_product_attention, _native_multi_head_attention
  | 'reduction'
  | 'pool'
  | 'create'      // new_ones, zeros_like, arange, ... (allocate, no input data)
  | 'copy'        // cat, stack, clone, repeat: data movement
  | 'other';

const op = (k: string) => `aten::${k}`;
const kinds = (...ks: string[]) => ks.map(op);

export const CONV_KINDS = new Set([...kinds('_convolution', 'convolution', 'conv1d', 'conv2d', 'conv3d',
  'conv_transpose1d', 'conv_transpose2d', 'conv_transpose3d', 'mkldnn_convolution', 'cudnn_convolution', '_convolution_mode'),
'mkldnn::_convolution_pointwise', CONV2D_KIND]);
/** Convolutions that write channels last whatever their input's layout, on a prepacked weight (lib/fusion/conv-pointwise.ts). */
export const POINTWISE_CONV_KINDS: ReadonlySet<string> = new Set(['mkldnn::_convolution_pointwise', CONV2D_KIND]);
export const BATCHNORM_KINDS = new Set(kinds('batch_norm', '_batch_norm_impl_index', 'native_batch_norm',
  '_native_batch_norm_legit_no_training'));
export const NORM_KINDS = new Set([...kinds('layer_norm', 'native_layer_norm', 'group_norm', 'native_group_norm', 'instance_norm',
  'rms_norm', '_fused_rms_norm'), ...ADD_NORM_KINDS]);
export const SOFTMAX_KINDS = new Set(kinds('softmax', '_softmax', '_safe_softmax', 'log_softmax', '_log_softmax'));
export const DROPOUT_KINDS = new Set(kinds('dropout', 'feature_dropout', 'alpha_dropout', 'feature_alpha_dropout', 'native_dropout',
  'dropout_', 'feature_dropout_', 'alpha_dropout_'));
/** Opaque ops that contain the Q/K/V projections as well as the core: PyTorch's fast paths. */
export const PROJECTING_ATTENTION_KINDS: ReadonlySet<string> = new Set(kinds('_native_multi_head_attention',
  '_transformer_encoder_layer_fwd'));
/** The attention ops the decomposition writes out (transforms/decompose-attention.ts): the fast paths and SDPA. */
export const DECOMPOSED_ATTENTION_KINDS: ReadonlySet<string> = new Set([...PROJECTING_ATTENTION_KINDS, op('scaled_dot_product_attention')]);
/** Every attention op (the 'attention' class): those, and the SDPA backends a traced or exported graph may call. */
export const ATTENTION_KINDS: ReadonlySet<string> = new Set([...DECOMPOSED_ATTENTION_KINDS, ...kinds('_scaled_dot_product_attention_math',
  '_scaled_dot_product_flash_attention', '_scaled_dot_product_flash_attention_for_cpu', '_scaled_dot_product_efficient_attention',
  '_scaled_dot_product_cudnn_attention')]);

/** Per-element cost of activations, in basic operations (exp, erf, tanh count as one). */
export const ACT_COST: Record<string, number> = {
  relu: 1, relu6: 1, leaky_relu: 2, hardtanh: 1, threshold: 1, elu: 4, selu: 5, celu: 4,
  sigmoid: 4, tanh: 1, silu: 5, mish: 6, softplus: 3, hardswish: 4, hardsigmoid: 3, glu: 5, prelu: 2,
  gelu: 5, // x * 0.5 * (1 + erf(x / sqrt 2)); approximate='tanh' costs 9
};
export const ACT_KINDS_LIST: readonly string[] = Object.keys(ACT_COST).flatMap((k) => [op(k), op(k + '_')]);
const ACT_KINDS = new Set(ACT_KINDS_LIST);

/** Elementwise ops and their per-output-element cost. */
export const ELEMENTWISE_COST: Record<string, number> = {
  add: 1, sub: 1, mul: 1, div: 1, rsub: 1, neg: 1, abs: 1, exp: 1, log: 1, log1p: 1, expm1: 1, sqrt: 1, rsqrt: 1,
  reciprocal: 1, square: 1, pow: 1, sin: 1, cos: 1, erf: 1, erfc: 1, floor: 1, ceil: 1, round: 1, trunc: 1, sign: 1,
  clamp: 2, clamp_min: 1, clamp_max: 1, clip: 2, maximum: 1, minimum: 1, fmod: 1, remainder: 1, floor_divide: 1,
  where: 1, masked_fill: 1, lerp: 3, addcmul: 3, addcdiv: 3, eq: 1, ne: 1, lt: 1, le: 1, gt: 1, ge: 1,
  logical_not: 1, logical_and: 1, logical_or: 1, logical_xor: 1, bitwise_not: 1, bitwise_and: 1, bitwise_or: 1,
  __and__: 1, __or__: 1, __xor__: 1, isnan: 1, isinf: 1, nan_to_num: 1, triu: 1, tril: 1, fill: 0, zero: 0,
};
const ELEMENTWISE_KINDS = new Set(Object.keys(ELEMENTWISE_COST).flatMap((k) => [op(k), op(k + '_')]));

export const CAST_KINDS = new Set(kinds('to', 'type_as', 'float', 'double', 'half', 'bfloat16', 'int', 'long', 'bool', '_to_copy'));
export const REDUCTION_KINDS = new Set(kinds('sum', 'mean', 'amax', 'amin', 'max', 'min', 'var', 'std', 'var_mean', 'std_mean',
  'norm', 'linalg_vector_norm', 'logsumexp', 'argmax', 'argmin', 'prod', 'cumsum', 'cumprod', 'all', 'any', 'count_nonzero'));
export const POOL_KINDS = new Set([...kinds('max_pool1d', 'max_pool2d', 'max_pool3d', 'avg_pool1d', 'avg_pool2d', 'avg_pool3d',
  'adaptive_avg_pool1d', 'adaptive_avg_pool2d', 'adaptive_avg_pool3d', 'adaptive_max_pool1d', 'adaptive_max_pool2d',
  'max_pool2d_with_indices'), MAX_POOL_KIND]);
export const CREATE_KINDS = new Set(kinds('new_ones', 'new_zeros', 'new_full', 'new_empty', 'zeros_like', 'ones_like', 'empty_like',
  'full_like', 'rand_like', 'randn_like', 'zeros', 'ones', 'empty', 'full', 'arange', 'rand', 'randn', 'tensor', 'scalar_tensor',
  'eye', 'linspace'));
export const COPY_KINDS = new Set(kinds('cat', 'concat', 'stack', 'clone', 'repeat', 'repeat_interleave', 'constant_pad_nd', 'pad',
  'index_select', 'gather', 'index', 'embedding', 'roll', 'flip', 'masked_select', 'copy_', 'unflatten_dense_tensors'));

/** Views: the output always shares the input's storage. */
export const VIEW_KINDS = new Set(kinds('view', '_unsafe_view', 'squeeze', 'unsqueeze', 'expand', 'expand_as', 'permute', 'transpose',
  't', 'select', 'slice', 'narrow', 'unflatten', 'view_as', 'detach', 'alias', 'as_strided', 'diagonal', 'movedim', 'moveaxis',
  'swapaxes', 'swapdims', 'unfold', 'numpy_T', 'mT', 'mH', 'adjoint', 'real', 'view_as_real', 'view_as_complex', '_reshape_alias',
  'squeeze_', 'unsqueeze_', 't_', 'transpose_', 'detach_', 'lift_fresh'));
/** Views returning a list of tensors sharing the input's storage. */
export const LIST_VIEW_KINDS = new Set(kinds('chunk', 'split', 'split_with_sizes', 'unbind', 'tensor_split', 'unsafe_chunk',
  'unsafe_split', 'unsafe_split_with_sizes', 'hsplit', 'vsplit'));
/** A view when the geometry allows, else a copy. */
export const RESHAPE_KINDS = new Set(kinds('reshape', 'flatten', 'reshape_as'));
export const CONTIGUOUS_KINDS = new Set(kinds('contiguous'));

export const LAYOUT_KINDS = new Set([...VIEW_KINDS, ...LIST_VIEW_KINDS, ...RESHAPE_KINDS, ...CONTIGUOUS_KINDS]);

/** prim ops that build or take apart containers of tensors. */
export const CONTAINER_KINDS = new Set(['prim::ListConstruct', 'prim::TupleConstruct', 'prim::ListUnpack', 'prim::TupleUnpack',
  'prim::TupleIndex', 'aten::__getitem__', 'prim::unchecked_cast', 'aten::list', 'prim::DictConstruct', 'aten::__isnot__']);

/** Ops whose tensor input at position 0 is read only for its metadata (shape, dtype, device). */
export const METADATA_INPUT0 = new Set([...kinds('size', 'dim', 'numel', 'new_ones', 'new_zeros', 'new_full', 'new_empty',
  'zeros_like', 'ones_like', 'empty_like', 'full_like', 'rand_like', 'randn_like', 'is_contiguous', 'is_floating_point', 'len',
  'sym_size', 'stride'), 'prim::device', 'prim::dtype', 'prim::layout', 'prim::is_cuda', 'prim::shape', 'prim::requires_grad']);

export function isElementwiseKind(kind: string): boolean { return ELEMENTWISE_KINDS.has(kind); }
export function isActKind(kind: string): boolean { return ACT_KINDS.has(kind); }

/** The bare op name: "aten::relu_" -> "relu" (in-place underscore dropped, dunders kept). */
export function baseName(kind: string): string {
  const name = outOfPlaceKind(kind);
  return name.slice(name.indexOf('::') + 2);
}

// ---- tensor geometry --------------------------------------------------------------------------

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Dense in `order` (innermost dim first), ignoring size-1 dims (their strides are arbitrary); an empty tensor is. */
function isDenseInOrder(shape: readonly number[], strides: readonly number[], order: readonly number[]): boolean {
  let expected = 1;
  for (const d of order) {
    if (shape[d] === 1) continue;
    if (shape[d] === 0) return true;
    if (strides[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** Row-major contiguity, ignoring size-1 dims (their strides are arbitrary). */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  return isDenseInOrder(shape, strides, shape.map((_, i) => shape.length - 1 - i));
}

/**
 * Channels-last contiguity of a 4-D (NHWC) or 5-D (NDHWC) tensor, ignoring size-1 dims: what
 * `is_contiguous(memory_format=channels_last)` answers (so `contiguous(channels_last)` does not copy).
 */
export function isChannelsLastContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  if (shape.length !== 4 && shape.length !== 5) return false;
  return isDenseInOrder(shape, strides, shape.length === 4 ? [1, 3, 2, 0] : [1, 4, 3, 2, 0]);
}

/**
 * c10's is_channels_last_strides_2d/3d: strides ordered like channels last (C innermost, then
 * W, H, (D), N), with c10's tie-breaks for size-1 dims; what suggest_memory_format() reads.
 */
export function stridesLikeChannelsLast(shape: readonly number[], strides: readonly number[]): boolean {
  if (shape.length !== 4 && shape.length !== 5) return false;
  if (strides[1] === 0) return false;
  const order = shape.length === 4 ? [1, 3, 2, 0] : [1, 4, 3, 2, 0];
  let min = 0;
  for (const d of order) {
    if (shape[d] === 0) return false;
    if (strides[d] < min) return false;
    if (d === 0 && min === strides[1]) return false;
    min = strides[d];
    if (shape[d] > 1) min *= shape[d];
  }
  return true;
}

/** Whether a tensor of `shape`/`strides` can be viewed as `newShape` without a copy (ATen's rule for reshape: core/strides.ts). */
export function canView(shape: readonly number[], strides: readonly number[], newShape: readonly number[]): boolean {
  return viewStrides(shape, strides, newShape) !== null;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
