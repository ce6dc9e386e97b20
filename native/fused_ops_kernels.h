// The float32 loops behind native/fused_ops.cc, written once over at::vec::Vectorized<float> and
// compiled once per instruction set: fused_ops.cc includes this as the baseline (x86-64's SSE2),
// fused_ops_avx2.cc and fused_ops_avx512.cc with CPU_CAPABILITY set to AVX2 / AVX512 and the
// matching compiler flags (CMakeLists.txt, binding.gyp), as ATen builds its own CPU kernels. Each
// copy lives in the namespace CPU_CAPABILITY names, so the copies never clash; fused_ops.cc picks
// one at run time from the capability libtorch itself chose (at::get_cpu_capability()).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "fused_ops_kernels_api.h"

namespace tg::fused_ops::CPU_CAPABILITY {

using Vec = at::vec::Vectorized<float>;

// Rows of about ATen's grain (at::internal::GRAIN_SIZE, 32768 elements) per task: a small tensor
// runs on the calling thread.
inline int64_t RowGrain(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n)); }

inline float SumOf(Vec acc) { return at::vec::vec_reduce_all<float>([](Vec& a, Vec& b) { return a + b; }, acc); }

// One row: s = x + r (written to `s`), then the norm of s into `out` (`s` may be `out`, as it is
// when the sum is not kept: the last pass reads each element before overwriting it).
inline void AddNormRow(const float* x, const float* r, const float* w, const float* b, float* s, float* out,
                       int64_t n, float eps, bool rms) {
  const int64_t vn = n - n % Vec::size();
  Vec acc(0.f), acc2(0.f);
  int64_t d = 0;
  for (; d < vn; d += Vec::size()) {
    Vec v = Vec::loadu(x + d) + Vec::loadu(r + d);
    v.store(s + d);
    acc = acc + v;
    acc2 = at::vec::fmadd(v, v, acc2);
  }
  float total = SumOf(acc), squares = SumOf(acc2);
  for (; d < n; ++d) {
    s[d] = x[d] + r[d];
    total += s[d];
    squares += s[d] * s[d];
  }
  float mean = 0.f, rstd;
  if (rms) {
    rstd = 1.f / std::sqrt(squares / static_cast<float>(n) + eps);
  } else {
    // The variance from a second pass over the row (in L1 by now): E[s^2] - mean^2 cancels badly.
    mean = total / static_cast<float>(n);
    Vec m(mean), var(0.f);
    for (d = 0; d < vn; d += Vec::size()) {
      Vec c = Vec::loadu(s + d) - m;
      var = at::vec::fmadd(c, c, var);
    }
    float v = SumOf(var);
    for (; d < n; ++d) v += (s[d] - mean) * (s[d] - mean);
    rstd = 1.f / std::sqrt(v / static_cast<float>(n) + eps);
  }
  // out = (s - mean) * rstd * w + b, as (s * rstd - mean * rstd) * w + b.
  const Vec scale(rstd), shift(-mean * rstd);
  for (d = 0; d < vn; d += Vec::size()) {
    Vec y = at::vec::fmadd(Vec::loadu(s + d), scale, shift);
    if (w) y = y * Vec::loadu(w + d);
    if (b) y = y + Vec::loadu(b + d);
    y.store(out + d);
  }
  for (; d < n; ++d) {
    float y = s[d] * rstd - mean * rstd;
    if (w) y *= w[d];
    if (b) y += b[d];
    out[d] = y;
  }
}

inline void AddNorm(const AddNormArgs& a) {
  at::parallel_for(0, a.rows, RowGrain(a.n), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t o = i * a.n;
      AddNormRow(a.x + o, a.r + o, a.w, a.b, (a.sum ? a.sum : a.out) + o, a.out + o, a.n, a.eps, a.rms);
    }
  });
}

// ATen's GELU (aten/src/ATen/native/cpu/Activation.cpp): x/2 (1 + erf(x / sqrt 2)), or with
// approximate='tanh' x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline Vec GeluVec(Vec x, bool tanh) {
  const Vec half(0.5f), one(1.f);
  if (tanh) {
    const Vec beta(static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5)), kappa(0.044715f);
    Vec inner = beta * at::vec::fmadd(kappa * x * x, x, x);
    return half * x * (one + inner.tanh());
  }
  return x * half * (one + (x * Vec(static_cast<float>(M_SQRT1_2))).erf());
}

inline void BiasGelu(const BiasGeluArgs& a) {
  const int64_t vn = a.n - a.n % Vec::size();
  at::parallel_for(0, a.rows, RowGrain(a.n), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* x = a.x + i * a.n;
      float* y = a.out + i * a.n;
      int64_t d = 0;
      for (; d < vn; d += Vec::size()) GeluVec(Vec::loadu(x + d) + Vec::loadu(a.bias + d), a.tanh).store(y + d);
      if (d < a.n) {
        const int64_t left = a.n - d;
        GeluVec(Vec::loadu(x + d, left) + Vec::loadu(a.bias + d, left), a.tanh).store(y + d, left);
      }
    }
  });
}

// The window of output position o along one dim: its first input index at or after 0 (stepping
// by the dilation from the padded start) and its end, clipped to the input, as ATen's pooling.
inline std::pair<int64_t, int64_t> WindowOf(int64_t o, int64_t stride, int64_t pad, int64_t dilation, int64_t k, int64_t size) {
  int64_t start = o * stride - pad;
  const int64_t stop = std::min(start + (k - 1) * dilation + 1, size);
  while (start < 0) start += dilation;
  return {start, stop};
}

// Up to `count` channels of one output pixel: the max over the window, one vector at a time.
inline void MaxPoolChannels(const float* img, float* o, int64_t count, int64_t wc, int64_t c, std::pair<int64_t, int64_t> ys,
                            std::pair<int64_t, int64_t> xs, int64_t dh, int64_t dw) {
  const Vec lowest(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < count; j += Vec::size()) {
    const int64_t lanes = std::min<int64_t>(Vec::size(), count - j);
    Vec m = lowest;
    for (int64_t y = ys.first; y < ys.second; y += dh) {
      for (int64_t x = xs.first; x < xs.second; x += dw) m = at::vec::maximum(m, Vec::loadu(img + y * wc + x * c + j, lanes));
    }
    m.store(o + j, lanes);
  }
}

// at::vec::maximum propagates NaN, as ATen's `val > max || isnan(val)`. Channels go four vectors
// at a time (ResNet's 64 in one block), each window element read once per block.
inline void MaxPool(const MaxPoolArgs& a) {
  constexpr int64_t kBlock = 4 * Vec::size();
  const int64_t wc = a.w * a.c;
  at::parallel_for(0, a.n * a.oh, RowGrain(a.ow * a.c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* img = a.x + (row / a.oh) * a.h * wc;
      const auto ys = WindowOf(row % a.oh, a.sh, a.ph, a.dh, a.kh, a.h);
      for (int64_t ox = 0; ox < a.ow; ++ox) {
        const auto xs = WindowOf(ox, a.sw, a.pw, a.dw, a.kw, a.w);
        float* o = a.out + (row * a.ow + ox) * a.c;
        int64_t d = 0;
        for (; d + kBlock <= a.c; d += kBlock) {
          Vec m0(-std::numeric_limits<float>::infinity()), m1 = m0, m2 = m0, m3 = m0;
          for (int64_t y = ys.first; y < ys.second; y += a.dh) {
            for (int64_t x = xs.first; x < xs.second; x += a.dw) {
              const float* p = img + y * wc + x * a.c + d;
              m0 = at::vec::maximum(m0, Vec::loadu(p));
              m1 = at::vec::maximum(m1, Vec::loadu(p + Vec::size()));
              m2 = at::vec::maximum(m2, Vec::loadu(p + 2 * Vec::size()));
              m3 = at::vec::maximum(m3, Vec::loadu(p + 3 * Vec::size()));
            }
          }
          m0.store(o + d);
          m1.store(o + d + Vec::size());
          m2.store(o + d + 2 * Vec::size());
          m3.store(o + d + 3 * Vec::size());
        }
        if (d < a.c) MaxPoolChannels(img + d, o + d, a.c - d, wc, a.c, ys, xs, a.dh, a.dw);
      }
    }
  });
}

}  // namespace tg::fused_ops::CPU_CAPABILITY
