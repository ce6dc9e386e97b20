// torchgraph's own float32 ops on a weight packed once into the GEMM's panels (lib/fusion/linear-packed.ts
// and lib/fusion/conv-pointwise.ts emit them where they pick these kernels over oneDNN's):
//   torchgraph::pack_linear_weight(W)         (N, K) -> (ceil(N/16), K, 16), zeros past N
//   torchgraph::unpack_linear_weight(P, N)    the plain (N, K) weight back, exactly (save() uses it)
//   torchgraph::linear(x, P, b, N, attr, ...) act(x W^T + b) over x's last dim, the activation as
//                                             mkldnn::_linear_pointwise's post-op names it
//   torchgraph::pack_conv2d_weight(W)         (O, C, kh, kw) packed as the linear weight (O, kh*kw*C)
//   torchgraph::unpack_conv2d_weight(P, size) the plain (O, C, kh, kw) weight back, exactly
//   torchgraph::conv2d(x, P, b, O, kernel_size, padding, stride, attr, ...)
//                                             act(conv2d(x) + b), written channels last, for
//                                             convolutions with few input channels (image stems)
// The kernels are native/gemm_kernel.h, one copy per instruction set. x of another dtype than the
// packed weight's float32 is an error, as aten's ops'; a strided x is copied contiguous first.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "gemm_kernel.h"
#include "kernel_dispatch.h"

namespace tg::fused_ops {
namespace {

void RunLinear(const LinearArgs& a) { Run(a, TG_KERNEL_COPIES(Linear)); }
void RunConv2d(const Conv2dArgs& a) { Run(a, TG_KERNEL_COPIES(Conv2d)); }

void CheckPacked(const at::Tensor& packed, int64_t out_features, const char* op) {
  TORCH_CHECK(packed.dim() == 3 && packed.size(2) == kPanel && packed.scalar_type() == at::kFloat,
              "torchgraph::", op, ": the packed weight must be a float32 (panels, K, ", kPanel,
              ") tensor from torchgraph::pack_linear_weight, got ", packed.sizes(), " ", packed.scalar_type());
  TORCH_CHECK(out_features > 0 && (out_features + kPanel - 1) / kPanel == packed.size(0), "torchgraph::", op, ": out_features ",
              out_features, " does not fit ", packed.size(0), " panels of ", kPanel);
}

at::Tensor PackLinearWeight(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat && weight.device().is_cpu(),
              "torchgraph::pack_linear_weight: expects a float32 CPU (out_features, in_features) weight, got ", weight.sizes(), " ",
              weight.scalar_type(), " on ", weight.device());
  const int64_t n = weight.size(0), k = weight.size(1), panels = (n + kPanel - 1) / kPanel;
  at::Tensor padded = at::zeros({panels * kPanel, k}, weight.options());
  padded.narrow(0, 0, n).copy_(weight);
  // (panels, 16, K) -> (panels, K, 16)
  return padded.view({panels, kPanel, k}).transpose(1, 2).contiguous();
}

at::Tensor UnpackLinearWeight(const at::Tensor& packed, int64_t out_features) {
  CheckPacked(packed, out_features, "unpack_linear_weight");
  return packed.transpose(1, 2).reshape({packed.size(0) * kPanel, packed.size(1)}).narrow(0, 0, out_features).contiguous();
}

Activation ActivationOf(c10::string_view attr, c10::string_view algorithm, const c10::List<std::optional<at::Scalar>>& scalars,
                        float& alpha, float& beta) {
  auto scalar = [&](size_t i) {
    TORCH_CHECK(scalars.size() > i && scalars.get(i).has_value(), "torchgraph: '", attr, "' needs ", i + 1, " scalar(s)");
    return scalars.get(i)->toFloat();
  };
  if (attr == "none") return Activation::kNone;
  if (attr == "relu") return Activation::kRelu;
  if (attr == "gelu") {
    TORCH_CHECK(algorithm == "none" || algorithm == "tanh", "torchgraph: gelu's algorithm must be 'none' or 'tanh'");
    return algorithm == "tanh" ? Activation::kGeluTanh : Activation::kGeluErf;
  }
  if (attr == "swish") return Activation::kSwish;
  if (attr == "sigmoid") return Activation::kSigmoid;
  if (attr == "tanh") return Activation::kTanh;
  if (attr == "hardswish") return Activation::kHardswish;
  if (attr == "hardsigmoid") return Activation::kHardsigmoid;
  if (attr == "leaky_relu") {
    alpha = scalar(0);
    return Activation::kLeakyRelu;
  }
  if (attr == "hardtanh") {
    alpha = scalar(0);
    beta = scalar(1);
    return Activation::kHardtanh;
  }
  TORCH_CHECK(false, "torchgraph: unknown activation '", attr, "'");
}

std::vector<int64_t> OutputSize(const at::Tensor& input, int64_t out_features) {
  std::vector<int64_t> size(input.sizes().begin(), input.sizes().end());
  size.back() = out_features;
  return size;
}

void CheckOperands(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias, int64_t out_features) {
  CheckPacked(packed, out_features, "linear");
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == packed.size(1), "torchgraph::linear: input of shape ", input.sizes(),
              " does not match the weight's ", packed.size(1), " input features");
  TORCH_CHECK(input.scalar_type() == at::kFloat, "torchgraph::linear: expected a float32 input, got ", input.scalar_type());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->numel() == out_features && bias->scalar_type() == at::kFloat,
                "torchgraph::linear: the bias must be float32 of ", out_features, " elements, got ", bias->sizes());
  }
}

at::Tensor LinearCpu(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias, int64_t out_features,
                     c10::string_view attr, const c10::List<std::optional<at::Scalar>>& scalars,
                     std::optional<c10::string_view> algorithm) {
  CheckOperands(input, packed, bias, out_features);
  float alpha = 0.f, beta = 0.f;
  const Activation act = ActivationOf(attr, algorithm.value_or("none"), scalars, alpha, beta);
  at::Tensor out = at::empty(OutputSize(input, out_features), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const at::Tensor x = input.contiguous();
  const at::Tensor w = packed.contiguous();
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  RunLinear({x.const_data_ptr<float>(), w.const_data_ptr<float>(), b.defined() ? b.const_data_ptr<float>() : nullptr,
             out.mutable_data_ptr<float>(), out.numel() / out_features, x.size(-1), out_features, act, alpha, beta});
  return out;
}

// ---- conv2d: few input channels, the weight packed in the window's order ------------------------

at::Tensor PackConv2dWeight(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 4, "torchgraph::pack_conv2d_weight: expects an (out, in, kh, kw) weight, got ", weight.sizes());
  return PackLinearWeight(weight.permute({0, 2, 3, 1}).reshape({weight.size(0), -1}));
}

void CheckWeightSize(at::IntArrayRef size, const at::Tensor& packed, const char* op) {
  TORCH_CHECK(size.size() == 4 && size[0] > 0 && size[1] * size[2] * size[3] == packed.size(1), "torchgraph::", op,
              ": weight_size ", size, " does not match the packed weight's ", packed.size(1), " rows");
}

at::Tensor UnpackConv2dWeight(const at::Tensor& packed, at::IntArrayRef size) {
  CheckPacked(packed, size.empty() ? 0 : size[0], "unpack_conv2d_weight");
  CheckWeightSize(size, packed, "unpack_conv2d_weight");
  return UnpackLinearWeight(packed, size[0]).view({size[0], size[2], size[3], size[1]}).permute({0, 3, 1, 2}).contiguous();
}

struct ConvGeometry {
  int64_t kh, kw, ph, pw, sh, sw, oh, ow;
};

ConvGeometry CheckConv(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias, int64_t out_channels,
                       at::IntArrayRef kernel_size, at::IntArrayRef padding, at::IntArrayRef stride) {
  CheckPacked(packed, out_channels, "conv2d");
  TORCH_CHECK(kernel_size.size() == 2 && padding.size() == 2 && stride.size() == 2,
              "torchgraph::conv2d: kernel_size, padding and stride take two values each");
  TORCH_CHECK(kernel_size[0] > 0 && kernel_size[1] > 0 && stride[0] > 0 && stride[1] > 0 && padding[0] >= 0 && padding[1] >= 0,
              "torchgraph::conv2d: kernel_size and stride must be positive, padding not negative");
  TORCH_CHECK(input.dim() == 4 && input.size(1) * kernel_size[0] * kernel_size[1] == packed.size(1), "torchgraph::conv2d: input of shape ",
              input.sizes(), " does not match the weight's ", packed.size(1), " rows for a ", kernel_size, " kernel");
  TORCH_CHECK(input.scalar_type() == at::kFloat, "torchgraph::conv2d: expected a float32 input, got ", input.scalar_type());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->numel() == out_channels && bias->scalar_type() == at::kFloat,
                "torchgraph::conv2d: the bias must be float32 of ", out_channels, " elements, got ", bias->sizes());
  }
  ConvGeometry g{kernel_size[0], kernel_size[1], padding[0], padding[1], stride[0], stride[1], 0, 0};
  g.oh = (input.size(2) + 2 * g.ph - g.kh) / g.sh + 1;
  g.ow = (input.size(3) + 2 * g.pw - g.kw) / g.sw + 1;
  TORCH_CHECK(input.size(2) + 2 * g.ph >= g.kh && input.size(3) + 2 * g.pw >= g.kw, "torchgraph::conv2d: the ", kernel_size,
              " kernel is larger than the padded input ", input.sizes());
  return g;
}

at::Tensor Conv2dCpu(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias, int64_t out_channels,
                     at::IntArrayRef kernel_size, at::IntArrayRef padding, at::IntArrayRef stride, c10::string_view attr,
                     const c10::List<std::optional<at::Scalar>>& scalars, std::optional<c10::string_view> algorithm) {
  const ConvGeometry g = CheckConv(input, packed, bias, out_channels, kernel_size, padding, stride);
  float alpha = 0.f, beta = 0.f;
  const Activation act = ActivationOf(attr, algorithm.value_or("none"), scalars, alpha, beta);
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  at::Tensor out = at::empty({n, out_channels, g.oh, g.ow}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  // The input zero-padded and channels last, so each window row is contiguous (allocated through
  // c10 like every tensor: the measured peak and the estimate, memory-workspace.ts, count it).
  at::Tensor x = at::zeros({n, h + 2 * g.ph, w + 2 * g.pw, c}, input.options());
  x.narrow(1, g.ph, h).narrow(2, g.pw, w).copy_(input.permute({0, 2, 3, 1}));
  const at::Tensor p = packed.contiguous();
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  RunConv2d({x.const_data_ptr<float>(), p.const_data_ptr<float>(), b.defined() ? b.const_data_ptr<float>() : nullptr,
             out.mutable_data_ptr<float>(), n, x.size(1), x.size(2), c, g.oh, g.ow, out_channels, g.kh, g.kw, g.sh, g.sw, act, alpha, beta});
  return out;
}

// ---- Meta: shapes only ------------------------------------------------------------------------

at::Tensor PackLinearWeightMeta(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "torchgraph::pack_linear_weight: expects a 2-D weight");
  return at::empty({(weight.size(0) + kPanel - 1) / kPanel, weight.size(1), kPanel}, weight.options());
}

at::Tensor UnpackLinearWeightMeta(const at::Tensor& packed, int64_t out_features) {
  CheckPacked(packed, out_features, "unpack_linear_weight");
  return at::empty({out_features, packed.size(1)}, packed.options());
}

at::Tensor LinearMeta(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias, int64_t out_features,
                      c10::string_view, const c10::List<std::optional<at::Scalar>>&, std::optional<c10::string_view>) {
  CheckOperands(input, packed, bias, out_features);
  return at::empty(OutputSize(input, out_features), input.options());
}

at::Tensor PackConv2dWeightMeta(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 4, "torchgraph::pack_conv2d_weight: expects an (out, in, kh, kw) weight");
  return at::empty({(weight.size(0) + kPanel - 1) / kPanel, weight.size(1) * weight.size(2) * weight.size(3), kPanel}, weight.options());
}

at::Tensor UnpackConv2dWeightMeta(const at::Tensor& packed, at::IntArrayRef size) {
  CheckPacked(packed, size.empty() ? 0 : size[0], "unpack_conv2d_weight");
  CheckWeightSize(size, packed, "unpack_conv2d_weight");
  return at::empty(size, packed.options());
}

at::Tensor Conv2dMeta(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias, int64_t out_channels,
                      at::IntArrayRef kernel_size, at::IntArrayRef padding, at::IntArrayRef stride, c10::string_view,
                      const c10::List<std::optional<at::Scalar>>&, std::optional<c10::string_view>) {
  const ConvGeometry g = CheckConv(input, packed, bias, out_channels, kernel_size, padding, stride);
  return at::empty({input.size(0), out_channels, g.oh, g.ow}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
}

}  // namespace
}  // namespace tg::fused_ops

TORCH_LIBRARY_FRAGMENT(torchgraph, m) {
  m.def("pack_linear_weight(Tensor weight) -> Tensor");
  m.def("unpack_linear_weight(Tensor packed, int out_features) -> Tensor");
  m.def("linear(Tensor input, Tensor packed_weight, Tensor? bias, int out_features, str attr, Scalar?[] scalars, "
        "str? algorithm=None) -> Tensor");
  m.def("pack_conv2d_weight(Tensor weight) -> Tensor");
  m.def("unpack_conv2d_weight(Tensor packed, int[] weight_size) -> Tensor");
  m.def("conv2d(Tensor input, Tensor packed_weight, Tensor? bias, int out_channels, int[] kernel_size, int[] padding, int[] stride, "
        "str attr, Scalar?[] scalars, str? algorithm=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(torchgraph, CPU, m) {
  m.impl("pack_linear_weight", TORCH_FN(tg::fused_ops::PackLinearWeight));
  m.impl("unpack_linear_weight", TORCH_FN(tg::fused_ops::UnpackLinearWeight));
  m.impl("linear", TORCH_FN(tg::fused_ops::LinearCpu));
  m.impl("pack_conv2d_weight", TORCH_FN(tg::fused_ops::PackConv2dWeight));
  m.impl("unpack_conv2d_weight", TORCH_FN(tg::fused_ops::UnpackConv2dWeight));
  m.impl("conv2d", TORCH_FN(tg::fused_ops::Conv2dCpu));
}

TORCH_LIBRARY_IMPL(torchgraph, Meta, m) {
  m.impl("pack_linear_weight", TORCH_FN(tg::fused_ops::PackLinearWeightMeta));
  m.impl("unpack_linear_weight", TORCH_FN(tg::fused_ops::UnpackLinearWeightMeta));
  m.impl("linear", TORCH_FN(tg::fused_ops::LinearMeta));
  m.impl("pack_conv2d_weight", TORCH_FN(tg::fused_ops::PackConv2dWeightMeta));
  m.impl("unpack_conv2d_weight", TORCH_FN(tg::fused_ops::UnpackConv2dWeightMeta));
  m.impl("conv2d", TORCH_FN(tg::fused_ops::Conv2dMeta));
}
