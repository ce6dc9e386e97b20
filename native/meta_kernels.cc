// Meta (shape-only) kernels that libtorch lacks in C++: PyTorch registers these from
// Python (torch/_meta_registrations.py), so a C++-only process cannot run them on meta
// tensors. Shape propagation needs them to avoid computing on stand-in data.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace {

// LayerNorm's math path reaches native_batch_norm on the flattened input.
std::tuple<at::Tensor, at::Tensor, at::Tensor> NativeBatchNormMeta(
    const at::Tensor& input, const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
    const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, bool, double, double) {
  int64_t c = input.dim() > 1 ? input.size(1) : 1;
  return {at::empty_like(input), at::empty({c}, input.options()), at::empty({c}, input.options())};
}

// (B, L, E) query -> (B, L, E) output; weights (B, H, L, S), or (B, L, S) when averaged.
std::tuple<at::Tensor, at::Tensor> NativeMhaMeta(
    const at::Tensor& query, const at::Tensor& key, const at::Tensor&, int64_t embed_dim, int64_t num_head,
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
    bool need_weights, bool average_attn_weights, std::optional<int64_t>) {
  auto sizes = query.sizes().vec();
  sizes.back() = embed_dim;
  at::Tensor out = at::empty(sizes, query.options());
  if (!need_weights) return {out, at::Tensor()};
  int64_t b = query.dim() == 3 ? query.size(0) : 1;
  int64_t l = query.size(-2), s = key.size(-2);
  at::Tensor w = average_attn_weights ? at::empty({b, l, s}, query.options()) : at::empty({b, num_head, l, s}, query.options());
  return {out, w};
}

// Convolution on meta reaches the "overrideable" backend hook; the output size is the
// usual formula.
at::Tensor ConvolutionMeta(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>&,
                           c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                           bool transposed, c10::IntArrayRef output_padding, int64_t groups) {
  int64_t spatial = input.dim() - 2;
  std::vector<int64_t> out{input.size(0), transposed ? weight.size(1) * groups : weight.size(0)};
  auto at = [](c10::IntArrayRef a, int64_t i) { return a.size() == 1 ? a[0] : a[i]; };
  for (int64_t i = 0; i < spatial; ++i) {
    int64_t in = input.size(i + 2), k = weight.size(i + 2);
    int64_t d = at(dilation, i), p = at(padding, i), st = at(stride, i);
    out.push_back(transposed ? (in - 1) * st - 2 * p + d * (k - 1) + at(output_padding, i) + 1
                             : (in + 2 * p - d * (k - 1) - 1) / st + 1);
  }
  // The layout the CPU/CUDA backends give: channels last when the input or the weight suggests it
  // (mkldnn_conv_use_channels_last, thnn_conv_use_channels_last, cudnn_conv_suggest_memory_format).
  auto fmt = at::MemoryFormat::Contiguous;
  if (input.dim() == 4 && (input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
                           weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast)) {
    fmt = at::MemoryFormat::ChannelsLast;
  } else if (input.dim() == 5 && (input.suggest_memory_format() == at::MemoryFormat::ChannelsLast3d ||
                                  weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast3d)) {
    fmt = at::MemoryFormat::ChannelsLast3d;
  }
  return at::empty(out, input.options().memory_format(fmt));
}

// oneDNN's pointwise convolutions (mkldnn::_convolution_pointwise, plain and with a binary
// post-op), which PyTorch's inductor emits: they write channels last, whatever the input layout.
at::Tensor PointwiseConvolutionMeta(const at::Tensor& x, const at::Tensor& w, c10::IntArrayRef padding,
                                    c10::IntArrayRef stride, c10::IntArrayRef dilation) {
  at::Tensor y = ConvolutionMeta(x, w, std::nullopt, stride, padding, dilation, false, {0}, 1);
  auto fmt = x.dim() == 4 ? at::MemoryFormat::ChannelsLast : x.dim() == 5 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous;
  return at::empty(y.sizes(), x.options().memory_format(fmt));
}

at::Tensor ConvolutionPointwiseMeta(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>&,
                                    c10::IntArrayRef padding, c10::IntArrayRef stride, c10::IntArrayRef dilation, int64_t,
                                    c10::string_view, c10::List<std::optional<at::Scalar>>, std::optional<c10::string_view>) {
  return PointwiseConvolutionMeta(x, w, padding, stride, dilation);
}

at::Tensor ConvolutionPointwiseBinaryMeta(const at::Tensor& x, const at::Tensor&, const at::Tensor& w,
                                          const std::optional<at::Tensor>&, c10::IntArrayRef padding, c10::IntArrayRef stride,
                                          c10::IntArrayRef dilation, int64_t, c10::string_view, std::optional<at::Scalar>,
                                          std::optional<c10::string_view>, c10::List<std::optional<at::Scalar>>,
                                          std::optional<c10::string_view>) {
  return PointwiseConvolutionMeta(x, w, padding, stride, dilation);
}

// The same writing its sum into `other` (the skip connection), in place.
at::Tensor& ConvolutionPointwiseBinaryInPlaceMeta(at::Tensor& other, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                                  c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, int64_t, c10::string_view,
                                                  std::optional<at::Scalar>, std::optional<c10::string_view>,
                                                  c10::List<std::optional<at::Scalar>>, std::optional<c10::string_view>) {
  return other;
}

// MKL's linear on a packed weight: (..., in) -> (..., out), out from the original weight.
at::Tensor MklLinearMeta(const at::Tensor& x, const at::Tensor&, const at::Tensor& origin_weight, const std::optional<at::Tensor>&, int64_t) {
  auto sizes = x.sizes().vec();
  sizes.back() = origin_weight.size(0);
  return at::empty(sizes, x.options());
}

// oneDNN's linear on a reordered weight: (..., in) -> (..., out).
at::Tensor LinearPointwiseMeta(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>&, c10::string_view,
                               c10::List<std::optional<at::Scalar>>, std::optional<c10::string_view>) {
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  return at::empty(sizes, x.options());
}

// ReLU has no C++ meta kernel (Python registers one): without it every ReLU of a CNN's shape run
// computed on zero-filled stand-ins, and freed stand-ins of ResNet-50's activations left the
// process 54 MiB larger after one shape run.
at::Tensor ReluMeta(const at::Tensor& x) { return at::empty_like(x); }
at::Tensor& ReluMeta_(at::Tensor& x) { return x; }

// Embedding has no C++ meta kernel either: its stand-in run materialised the whole table (BERT's
// word embeddings: 94 MB) during every shape run.
at::Tensor EmbeddingMeta(const at::Tensor& weight, const at::Tensor& indices, c10::SymInt, bool, bool) {
  auto sizes = indices.sizes().vec();
  sizes.push_back(weight.size(-1));
  return at::empty(sizes, weight.options());
}

}  // namespace

TORCH_LIBRARY_IMPL(mkl, Meta, m) {
  m.impl("_mkl_linear", TORCH_FN(MklLinearMeta));
}

TORCH_LIBRARY_IMPL(mkldnn, Meta, m) {
  m.impl("_convolution_pointwise", TORCH_FN(ConvolutionPointwiseMeta));
  m.impl("_convolution_pointwise.binary", TORCH_FN(ConvolutionPointwiseBinaryMeta));
  m.impl("_convolution_pointwise_.binary", TORCH_FN(ConvolutionPointwiseBinaryInPlaceMeta));
  m.impl("_linear_pointwise", TORCH_FN(LinearPointwiseMeta));
}

TORCH_LIBRARY_IMPL(aten, Meta, m) {
  m.impl("native_batch_norm", TORCH_FN(NativeBatchNormMeta));
  m.impl("_native_multi_head_attention", TORCH_FN(NativeMhaMeta));
  m.impl("convolution_overrideable", TORCH_FN(ConvolutionMeta));
  m.impl("relu", TORCH_FN(ReluMeta));
  m.impl("relu_", TORCH_FN(ReluMeta_));
  m.impl("embedding", TORCH_FN(EmbeddingMeta));
}
