// What native/fused_ops.cc hands the float32 loops (fused_ops_kernels.h): contiguous rows of n
// elements, and one entry point per instruction set the loops are compiled for.
#pragma once

#include <cstdint>

namespace tg::fused_ops {

// sum = x + r; out = LayerNorm(sum) (mean removed, divided by the standard deviation) or RMSNorm
// (divided by the root mean square), times w and plus b where given. `sum` null: not kept.
struct AddNormArgs {
  const float* x; const float* r; const float* w; const float* b;
  float* out; float* sum;
  int64_t rows, n;
  float eps;
  bool rms;
};

// out = GELU(x + bias), bias broadcast over the rows; `tanh`: the tanh approximation.
struct BiasGeluArgs {
  const float* x; const float* bias; float* out;
  int64_t rows, n;
  bool tanh;
};

// Max pooling of a channels-last (N, H, W, C) float32 tensor into (N, OH, OW, C), without the
// indices ATen's max_pool2d computes and throws away; NaN propagates as in ATen. The window of
// output (oy, ox) starts at oy * sh - ph (dilated by dh), clipped to the input.
struct MaxPoolArgs {
  const float* x; float* out;
  int64_t n, h, w, c, oh, ow;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// Output features per packed weight panel (native/gemm_kernel.h): the packed weight of an (N, K)
// linear weight is (ceil(N / 16), K, 16), panel p holding features 16p..16p+15 for each k, zeros past N.
constexpr int64_t kPanel = 16;

// The activation torchgraph::linear applies to its output (oneDNN's post-op names, lib/fusion/onednn-post-ops.ts).
enum class Activation { kNone, kRelu, kGeluErf, kGeluTanh, kSwish, kSigmoid, kTanh, kLeakyRelu, kHardtanh, kHardswish, kHardsigmoid };

// out (m, n) = act(x (m, k) W^T + bias), W packed as above; alpha: leaky ReLU's slope or hardtanh's min, beta: its max.
struct LinearArgs {
  const float* x; const float* packed; const float* bias; float* out;
  int64_t m, k, n;
  Activation act;
  float alpha, beta;
};

// out (n, oh, ow, o), channels last, = act(conv2d(x) + bias) with x zero-padded already and laid
// out (n, hp, wp, c), the weight (o, c, kh, kw) packed as a linear weight of (o, kh * kw * c), that
// is in x's order: an output pixel's window row is kw * c contiguous floats of x (no im2col copy).
struct Conv2dArgs {
  const float* x; const float* packed; const float* bias; float* out;
  int64_t n, hp, wp, c, oh, ow, o, kh, kw, sh, sw;
  Activation act;
  float alpha, beta;
};

void AddNormAvx2(const AddNormArgs& a);
void AddNormAvx512(const AddNormArgs& a);
void BiasGeluAvx2(const BiasGeluArgs& a);
void BiasGeluAvx512(const BiasGeluArgs& a);
void MaxPoolAvx2(const MaxPoolArgs& a);
void MaxPoolAvx512(const MaxPoolArgs& a);
void LinearAvx2(const LinearArgs& a);
void LinearAvx512(const LinearArgs& a);
void Conv2dAvx2(const Conv2dArgs& a);
void Conv2dAvx512(const Conv2dArgs& a);

}  // namespace tg::fused_ops
