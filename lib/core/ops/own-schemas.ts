// Schemas of the ops torchgraph registers itself (native/fused_ops.cc, native/packed_linear.cc):
// torch's schema table (schemas-table.ts) cannot list them, and passes read them by name too.
// Keyed by op name, so a lowering takes its op's schema by the name it emits.
export const OWN_OP_SCHEMAS = {
  'torchgraph::add_layer_norm': 'torchgraph::add_layer_norm(Tensor input, Tensor residual, int[] normalized_shape, '
    + 'Tensor? weight=None, Tensor? bias=None, float eps=1e-05, bool return_sum=False) -> (Tensor, Tensor)',
  'torchgraph::add_rms_norm': 'torchgraph::add_rms_norm(Tensor input, Tensor residual, int[] normalized_shape, '
    + 'Tensor? weight=None, float? eps=None, bool return_sum=False) -> (Tensor, Tensor)',
  'torchgraph::bias_gelu': 'torchgraph::bias_gelu(Tensor input, Tensor bias, str approximate=\'none\') -> Tensor',
  'torchgraph::max_pool2d': 'torchgraph::max_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, '
    + 'int[2] dilation=1, bool ceil_mode=False) -> Tensor',
  'torchgraph::pack_linear_weight': 'torchgraph::pack_linear_weight(Tensor weight) -> Tensor',
  'torchgraph::unpack_linear_weight': 'torchgraph::unpack_linear_weight(Tensor packed, int out_features) -> Tensor',
  'torchgraph::linear': 'torchgraph::linear(Tensor input, Tensor packed_weight, Tensor? bias, int out_features, '
    + 'str attr, Scalar?[] scalars, str? algorithm=None) -> Tensor',
  'torchgraph::pack_conv2d_weight': 'torchgraph::pack_conv2d_weight(Tensor weight) -> Tensor',
  'torchgraph::unpack_conv2d_weight': 'torchgraph::unpack_conv2d_weight(Tensor packed, int[] weight_size) -> Tensor',
  'torchgraph::conv2d': 'torchgraph::conv2d(Tensor input, Tensor packed_weight, Tensor? bias, int out_channels, int[] kernel_size, '
    + 'int[] padding, int[] stride, str attr, Scalar?[] scalars, str? algorithm=None) -> Tensor',
} as const;

/** The residual add + norm ops: their first result is the norm, their second the sum (empty unless return_sum). */
export const ADD_NORM_KINDS: ReadonlySet<string> = new Set(['torchgraph::add_layer_norm', 'torchgraph::add_rms_norm']);
export const BIAS_GELU_KIND = 'torchgraph::bias_gelu';
export const MAX_POOL_KIND = 'torchgraph::max_pool2d';
/** A linear layer on a weight torchgraph::pack_linear_weight packed (lib/fusion/linear-packed.ts), its activation as a post-op. */
export const LINEAR_KIND = 'torchgraph::linear';
export const PACK_LINEAR_KIND = 'torchgraph::pack_linear_weight';
export const UNPACK_LINEAR_KIND = 'torchgraph::unpack_linear_weight';
/** A convolution with few input channels (an image stem) on a weight torchgraph::pack_conv2d_weight packed, written channels
 * last, its activation as a post-op (lib/fusion/conv-pointwise.ts). */
export const CONV2D_KIND = 'torchgraph::conv2d';
export const PACK_CONV2D_KIND = 'torchgraph::pack_conv2d_weight';
export const UNPACK_CONV2D_KIND = 'torchgraph::unpack_conv2d_weight';
