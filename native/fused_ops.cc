// Ops of our own where libtorch has no fused kernel, registered with torch's op registry so a
// TorchScript graph can call them (lib/fusion/add-norm.ts and bias-gelu.ts emit them):
//   torchgraph::add_layer_norm  input + residual, then layer_norm over the trailing dims, in one
//                               pass over each row; the sum too when the graph reads it later
//                               (the residual stream), as onnxruntime's SkipLayerNormalization
//   torchgraph::add_rms_norm    the same with rms_norm
//   torchgraph::bias_gelu       input + bias (over the last dim), then GELU (erf or tanh)
//   torchgraph::max_pool2d      aten::max_pool2d on a channels-last float32 input without the
//                               indices ATen computes for it (and drops) on the way
// The fast path is float32, contiguous (channels last for the pool), same-shape operands; anything else (other dtypes,
// broadcasting, strided views) runs the ATen ops the op replaces, so the result is the same.
// Each op has a Meta kernel for shape propagation (lib/torchscript/propagate-shapes.ts).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <limits>
#include <string>

#include "fused_ops_kernels.h"
#include "kernel_dispatch.h"

namespace tg::fused_ops {
namespace {

void RunAddNorm(const AddNormArgs& a) { Run(a, TG_KERNEL_COPIES(AddNorm)); }
void RunBiasGelu(const BiasGeluArgs& a) { Run(a, TG_KERNEL_COPIES(BiasGelu)); }
void RunMaxPool(const MaxPoolArgs& a) { Run(a, TG_KERNEL_COPIES(MaxPool)); }

bool IsFloatContiguous(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_neg() && !t.is_conj();
}

// Rows and row length of the fast path, or -1 rows where it does not apply.
std::pair<int64_t, int64_t> FastRows(const at::Tensor& input, const at::Tensor& residual, c10::IntArrayRef normalized_shape,
                                     const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias) {
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  if (!IsFloatContiguous(input) || !IsFloatContiguous(residual) || input.sizes() != residual.sizes()) return {-1, 0};
  if (k == 0 || input.dim() < k || input.sizes().slice(input.dim() - k) != normalized_shape) return {-1, 0};
  const int64_t n = c10::multiply_integers(normalized_shape);
  for (const auto* p : {&weight, &bias}) {
    if (p->has_value() && p->value().defined() && (!IsFloatContiguous(p->value()) || p->value().numel() != n)) return {-1, 0};
  }
  if (n == 0 || input.numel() == 0) return {-1, 0};
  return {input.numel() / n, n};
}

const float* DataOr(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->const_data_ptr<float>() : nullptr;
}

// The second result when the sum is not kept: no storage.
at::Tensor NoSum(const at::Tensor& like) { return at::empty({0}, like.options()); }

std::tuple<at::Tensor, at::Tensor> AddNormCpu(const at::Tensor& input, const at::Tensor& residual, c10::IntArrayRef normalized_shape,
                                              const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
                                              float eps, bool rms, bool return_sum) {
  auto [rows, n] = FastRows(input, residual, normalized_shape, weight, bias);
  if (rows < 0) {
    at::Tensor sum = at::add(input, residual);
    at::Tensor out = rms ? at::rms_norm(sum, normalized_shape, weight, static_cast<double>(eps))
                         : at::layer_norm(sum, normalized_shape, weight, bias, eps);
    return {out, return_sum ? sum : NoSum(input)};
  }
  at::Tensor out = at::empty_like(input, at::MemoryFormat::Contiguous);
  at::Tensor sum = return_sum ? at::empty_like(input, at::MemoryFormat::Contiguous) : NoSum(input);
  RunAddNorm({input.const_data_ptr<float>(), residual.const_data_ptr<float>(), DataOr(weight), DataOr(bias),
              out.mutable_data_ptr<float>(), return_sum ? sum.mutable_data_ptr<float>() : nullptr, rows, n, eps, rms});
  return {out, sum};
}

std::tuple<at::Tensor, at::Tensor> AddLayerNormCpu(const at::Tensor& input, const at::Tensor& residual,
                                                   c10::IntArrayRef normalized_shape, const std::optional<at::Tensor>& weight,
                                                   const std::optional<at::Tensor>& bias, double eps, bool return_sum) {
  return AddNormCpu(input, residual, normalized_shape, weight, bias, static_cast<float>(eps), false, return_sum);
}

std::tuple<at::Tensor, at::Tensor> AddRmsNormCpu(const at::Tensor& input, const at::Tensor& residual,
                                                 c10::IntArrayRef normalized_shape, const std::optional<at::Tensor>& weight,
                                                 std::optional<double> eps, bool return_sum) {
  // rms_norm's default eps is the machine epsilon of the input's dtype.
  if (!eps.has_value() && input.scalar_type() != at::kFloat) {
    at::Tensor sum = at::add(input, residual);
    return {at::rms_norm(sum, normalized_shape, weight, std::nullopt), return_sum ? sum : NoSum(input)};
  }
  const float e = eps.has_value() ? static_cast<float>(*eps) : std::numeric_limits<float>::epsilon();
  return AddNormCpu(input, residual, normalized_shape, weight, std::nullopt, e, true, return_sum);
}

at::Tensor BiasGeluCpu(const at::Tensor& input, const at::Tensor& bias, c10::string_view approximate) {
  TORCH_CHECK(approximate == "none" || approximate == "tanh", "torchgraph::bias_gelu: approximate must be 'none' or 'tanh', not '",
              approximate, "'");
  const bool fast = IsFloatContiguous(input) && IsFloatContiguous(bias) && bias.dim() == 1 && input.dim() >= 1
                    && input.size(-1) == bias.size(0) && input.numel() > 0;
  if (!fast) return at::gelu(at::add(input, bias), approximate);
  at::Tensor out = at::empty_like(input, at::MemoryFormat::Contiguous);
  const int64_t n = bias.size(0);
  RunBiasGelu({input.const_data_ptr<float>(), bias.const_data_ptr<float>(), out.mutable_data_ptr<float>(), input.numel() / n, n,
               approximate == "tanh"});
  return out;
}

// Pool parameters as aten::max_pool2d takes them: one value for both dims, or one per dim; an
// empty stride is the kernel size.
std::pair<int64_t, int64_t> PairOf(c10::IntArrayRef v, c10::IntArrayRef otherwise) {
  if (v.empty()) v = otherwise;
  return {v[0], v.size() == 1 ? v[0] : v[1]};
}

at::Tensor MaxPool2dCpu(const at::Tensor& input, c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                        c10::IntArrayRef dilation, bool ceil_mode) {
  // ATen on a meta tensor checks the arguments and gives the output's size, exactly as it would here.
  const at::Tensor shape = at::max_pool2d(at::empty(input.sizes(), input.options().device(at::kMeta)), kernel_size, stride, padding,
                                          dilation, ceil_mode);
  const bool fast = input.device().is_cpu() && input.scalar_type() == at::kFloat && input.dim() == 4 && input.numel() > 0
                    && input.is_contiguous(at::MemoryFormat::ChannelsLast) && !input.is_neg();
  if (!fast) return at::max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  at::Tensor out = at::empty(shape.sizes(), input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto [kh, kw] = PairOf(kernel_size, {});
  const auto [sh, sw] = PairOf(stride, kernel_size);
  const auto [ph, pw] = PairOf(padding, {});
  const auto [dh, dw] = PairOf(dilation, {});
  RunMaxPool({input.const_data_ptr<float>(), out.mutable_data_ptr<float>(), input.size(0), input.size(2), input.size(3), input.size(1),
              out.size(2), out.size(3), kh, kw, sh, sw, ph, pw, dh, dw});
  return out;
}

// ---- Meta: shapes only ------------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> AddNormMeta(const at::Tensor& input, const at::Tensor& residual, bool return_sum) {
  auto sizes = at::infer_size(input.sizes(), residual.sizes());
  at::Tensor out = at::empty(sizes, input.options());
  return {out, return_sum ? at::empty(sizes, input.options()) : NoSum(input)};
}

std::tuple<at::Tensor, at::Tensor> AddLayerNormMeta(const at::Tensor& input, const at::Tensor& residual, c10::IntArrayRef,
                                                    const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double,
                                                    bool return_sum) {
  return AddNormMeta(input, residual, return_sum);
}

std::tuple<at::Tensor, at::Tensor> AddRmsNormMeta(const at::Tensor& input, const at::Tensor& residual, c10::IntArrayRef,
                                                  const std::optional<at::Tensor>&, std::optional<double>, bool return_sum) {
  return AddNormMeta(input, residual, return_sum);
}

at::Tensor BiasGeluMeta(const at::Tensor& input, const at::Tensor& bias, c10::string_view) {
  return at::empty(at::infer_size(input.sizes(), bias.sizes()), input.options());
}

at::Tensor MaxPool2dMeta(const at::Tensor& input, c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                         c10::IntArrayRef dilation, bool ceil_mode) {
  at::Tensor out = at::max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  if (input.dim() == 4 && input.is_contiguous(at::MemoryFormat::ChannelsLast)) out = out.contiguous(at::MemoryFormat::ChannelsLast);
  return out;
}

}  // namespace
}  // namespace tg::fused_ops

TORCH_LIBRARY(torchgraph, m) {
  m.def("add_layer_norm(Tensor input, Tensor residual, int[] normalized_shape, Tensor? weight=None, Tensor? bias=None, "
        "float eps=1e-05, bool return_sum=False) -> (Tensor, Tensor)");
  m.def("add_rms_norm(Tensor input, Tensor residual, int[] normalized_shape, Tensor? weight=None, float? eps=None, "
        "bool return_sum=False) -> (Tensor, Tensor)");
  m.def("bias_gelu(Tensor input, Tensor bias, str approximate='none') -> Tensor");
  m.def("max_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, int[2] dilation=1, bool ceil_mode=False) "
        "-> Tensor");
}

TORCH_LIBRARY_IMPL(torchgraph, CPU, m) {
  m.impl("add_layer_norm", TORCH_FN(tg::fused_ops::AddLayerNormCpu));
  m.impl("add_rms_norm", TORCH_FN(tg::fused_ops::AddRmsNormCpu));
  m.impl("bias_gelu", TORCH_FN(tg::fused_ops::BiasGeluCpu));
  m.impl("max_pool2d", TORCH_FN(tg::fused_ops::MaxPool2dCpu));
}

TORCH_LIBRARY_IMPL(torchgraph, Meta, m) {
  m.impl("add_layer_norm", TORCH_FN(tg::fused_ops::AddLayerNormMeta));
  m.impl("add_rms_norm", TORCH_FN(tg::fused_ops::AddRmsNormMeta));
  m.impl("bias_gelu", TORCH_FN(tg::fused_ops::BiasGeluMeta));
  m.impl("max_pool2d", TORCH_FN(tg::fused_ops::MaxPool2dMeta));
}
