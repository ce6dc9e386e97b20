// torchgraph's own float32 linear layer on a weight packed once (lib/fusion/linear-packed.ts emits
// them where it picks this GEMM over oneDNN's):
//   torchgraph::pack_linear_weight(W)         (N, K) -> (ceil(N/16), K, 16), zeros past N
//   torchgraph::unpack_linear_weight(P, N)    the plain (N, K) weight back, exactly (save() uses it)
//   torchgraph::linear(x, P, b, N, attr, ...) act(x W^T + b) over x's last dim, the activation as
//                                             mkldnn::_linear_pointwise's post-op names it
// The GEMM is native/gemm_kernel.h, one copy per instruction set. x of another dtype than the
// packed weight's float32 is an error, as aten::linear's; a strided x is copied contiguous first.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "gemm_kernel.h"
#include "kernel_dispatch.h"

namespace tg::fused_ops {
namespace {

void RunLinear(const LinearArgs& a) { Run(a, TG_KERNEL_COPIES(Linear)); }

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
    TORCH_CHECK(scalars.size() > i && scalars.get(i).has_value(), "torchgraph::linear: '", attr, "' needs ", i + 1, " scalar(s)");
    return scalars.get(i)->toFloat();
  };
  if (attr == "none") return Activation::kNone;
  if (attr == "relu") return Activation::kRelu;
  if (attr == "gelu") {
    TORCH_CHECK(algorithm == "none" || algorithm == "tanh", "torchgraph::linear: gelu's algorithm must be 'none' or 'tanh'");
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
  TORCH_CHECK(false, "torchgraph::linear: unknown activation '", attr, "'");
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

}  // namespace
}  // namespace tg::fused_ops

TORCH_LIBRARY_FRAGMENT(torchgraph, m) {
  m.def("pack_linear_weight(Tensor weight) -> Tensor");
  m.def("unpack_linear_weight(Tensor packed, int out_features) -> Tensor");
  m.def("linear(Tensor input, Tensor packed_weight, Tensor? bias, int out_features, str attr, Scalar?[] scalars, "
        "str? algorithm=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(torchgraph, CPU, m) {
  m.impl("pack_linear_weight", TORCH_FN(tg::fused_ops::PackLinearWeight));
  m.impl("unpack_linear_weight", TORCH_FN(tg::fused_ops::UnpackLinearWeight));
  m.impl("linear", TORCH_FN(tg::fused_ops::LinearCpu));
}

TORCH_LIBRARY_IMPL(torchgraph, Meta, m) {
  m.impl("pack_linear_weight", TORCH_FN(tg::fused_ops::PackLinearWeightMeta));
  m.impl("unpack_linear_weight", TORCH_FN(tg::fused_ops::UnpackLinearWeightMeta));
  m.impl("linear", TORCH_FN(tg::fused_ops::LinearMeta));
}
