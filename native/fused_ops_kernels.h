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

}  // namespace tg::fused_ops::CPU_CAPABILITY
