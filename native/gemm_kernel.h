// The float32 GEMM behind torchgraph::linear and torchgraph::conv2d (native/packed_linear.cc): y = act(x W^T + b) with W
// packed once into panels of 16 output features (kPanel), each panel K rows of 16 contiguous
// floats, zero-padded past N. Written over at::vec::Vectorized<float> and compiled once per
// instruction set like fused_ops_kernels.h (fused_ops_avx2.cc, fused_ops_avx512.cc include it).
//
// Why our own: on AVX2 machines oneDNN's f32 inner product ran at 72-76 GFLOP/s per core here
// against about 89 for onnxruntime's MLAS, and ViT/BERT/GPT-2 spend over 90% in these GEMMs.
// Blocking, for a 32 KiB L1 and a 512 KiB L2: a tile of kRows(Vec) x 16 outputs is kept in
// registers (6 x 2 ymm on AVX2, 12 accumulators on every width); the x rows of an kRowBlock x
// kDepth slice are copied once, k-major per tile row group, so the tile reads them as one stream;
// each weight panel's kDepth x 16 slice stays in L1 while every row group of the slice runs over
// it. Threads split the panels (each its own columns of y, so no two threads write one line).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fused_ops_kernels_api.h"

namespace tg::fused_ops::CPU_CAPABILITY {

namespace gemm {

using Vec = at::vec::Vectorized<float>;

constexpr int64_t kVecs = kPanel / Vec::size();  // vectors per tile row
constexpr int64_t kRows = 12 / kVecs;              // tile rows: 12 accumulators
constexpr int64_t kDepth = 512;                    // K per pass over the weights
// Up to this K, one pass: a second short pass (768 = 512 + 256) reloads and stores every y tile
// again for a third of the work (+2-3% on 197 x 768 x 3072 in `npm run bench -- --gemm` on AVX2;
// at K = 3072 the depth per pass, 512 to 3072, measured the same).
constexpr int64_t kWholeDepth = 768;
constexpr int64_t kRowBlock = 192;                 // x rows copied per pass (a multiple of kRows)

// The activation, as ATen computes it (`a`: LinearArgs or Conv2dArgs, their act, alpha and beta).
template <typename A>
inline Vec Activate(Vec x, const A& a) {
  const Vec zero(0.f), one(1.f), three(3.f), six(6.f);
  switch (a.act) {
    case Activation::kNone: return x;
    case Activation::kRelu: return at::vec::clamp_min(x, zero);
    case Activation::kGeluErf: return x * Vec(0.5f) * (one + (x * Vec(static_cast<float>(M_SQRT1_2))).erf());
    case Activation::kGeluTanh: {
      const Vec beta(static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5)), kappa(0.044715f);
      return Vec(0.5f) * x * (one + (beta * at::vec::fmadd(kappa * x * x, x, x)).tanh());
    }
    case Activation::kSwish: return x / (one + x.neg().exp());
    case Activation::kSigmoid: return one / (one + x.neg().exp());
    case Activation::kTanh: return x.tanh();
    case Activation::kLeakyRelu: return Vec::blendv(x * Vec(a.alpha), x, x > zero);
    case Activation::kHardtanh: return at::vec::clamp(x, Vec(a.alpha), Vec(a.beta));
    case Activation::kHardswish: return x * at::vec::clamp(x + three, zero, six) / six;
    case Activation::kHardsigmoid: return at::vec::clamp(x + three, zero, six) / six;
  }
  return x;
}

// The activation on n floats in place (the tile just stored, still in L1).
inline void ActivateRow(float* y, int64_t n, const LinearArgs& a) {
  int64_t d = 0;
  for (; d + Vec::size() <= n; d += Vec::size()) Activate(Vec::loadu(y + d), a).store(y + d);
  if (d < n) Activate(Vec::loadu(y + d, n - d), a).store(y + d, n - d);
}

// R rows x kPanel outputs over depth kc: xp holds the rows k-major (xp[k * R + r]), w the panel's
// slice (w[k * kPanel + c]). `init` is the bias panel on the first pass (null: zero), else the
// tile accumulates onto y.
template <int64_t R>
inline void Tile(int64_t kc, const float* xp, const float* w, float* y, int64_t ldy, bool first, const float* init) {
  Vec acc[R][kVecs];
#pragma GCC unroll 16
  for (int64_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVecs; ++v) {
      acc[r][v] = !first ? Vec::loadu(y + r * ldy + v * Vec::size()) : init ? Vec::loadu(init + v * Vec::size()) : Vec(0.f);
    }
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    Vec b[kVecs];
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVecs; ++v) b[v] = Vec::loadu(w + k * kPanel + v * Vec::size());
#pragma GCC unroll 16
    for (int64_t r = 0; r < R; ++r) {
      const Vec x(xp[k * R + r]);
#pragma GCC unroll 4
      for (int64_t v = 0; v < kVecs; ++v) acc[r][v] = at::vec::fmadd(x, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVecs; ++v) acc[r][v].store(y + r * ldy + v * Vec::size());
  }
}

template <int64_t R>
inline void TileOf(int64_t rows, int64_t kc, const float* xp, const float* w, float* y, int64_t ldy, bool first, const float* init) {
  if constexpr (R > 0) {
    if (rows == R) return Tile<R>(kc, xp, w, y, ldy, first, init);
    return TileOf<R - 1>(rows, kc, xp, w, y, ldy, first, init);
  }
}

// R output pixels of one output row x kPanel output channels: pixel r's window starts at
// x + r * ldr, each of its kh rows (rowStride apart) kwc contiguous floats, read where they are;
// w the panel (kh * kwc rows of kPanel). The tile starts at the bias and is activated when stored.
template <int64_t R>
inline void ConvTile(const float* x, int64_t ldr, int64_t rowStride, int64_t kh, int64_t kwc, const float* w, float* y, int64_t ldy,
                     const float* init, const Conv2dArgs& a) {
  Vec acc[R][kVecs];
#pragma GCC unroll 16
  for (int64_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVecs; ++v) acc[r][v] = Vec::loadu(init + v * Vec::size());
  }
  for (int64_t i = 0; i < kh; ++i) {
    const float* xi = x + i * rowStride;
    const float* wi = w + i * kwc * kPanel;
#pragma GCC unroll 4
    for (int64_t k = 0; k < kwc; ++k) {
      Vec b[kVecs];
#pragma GCC unroll 4
      for (int64_t v = 0; v < kVecs; ++v) b[v] = Vec::loadu(wi + k * kPanel + v * Vec::size());
#pragma GCC unroll 16
      for (int64_t r = 0; r < R; ++r) {
        const Vec xv(xi[r * ldr + k]);
#pragma GCC unroll 4
        for (int64_t v = 0; v < kVecs; ++v) acc[r][v] = at::vec::fmadd(xv, b[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVecs; ++v) Activate(acc[r][v], a).store(y + r * ldy + v * Vec::size());
  }
}

template <int64_t R>
inline void ConvTileOf(int64_t rows, const float* x, int64_t ldr, int64_t rowStride, int64_t kh, int64_t kwc, const float* w, float* y,
                       int64_t ldy, const float* init, const Conv2dArgs& a) {
  if constexpr (R > 0) {
    if (rows == R) return ConvTile<R>(x, ldr, rowStride, kh, kwc, w, y, ldy, init, a);
    return ConvTileOf<R - 1>(rows, x, ldr, rowStride, kh, kwc, w, y, ldy, init, a);
  }
}

#if defined(CPU_CAPABILITY_AVX2)
// 8 k's of the 6 rows at x (ldx apart) into d k-major (d[k * 6 + r]), by an 8 x 8 transpose in
// registers (rows 6 and 7 zero). Each k's 8 floats are stored whole, ascending: the next store
// overwrites the 2 past its 6, and the last writes 2 floats past d[47] (the caller's slack, or
// what it writes next).
inline void Transpose6x8(const float* x, int64_t ldx, float* d) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 r0 = _mm256_loadu_ps(x), r1 = _mm256_loadu_ps(x + ldx), r2 = _mm256_loadu_ps(x + 2 * ldx);
  const __m256 r3 = _mm256_loadu_ps(x + 3 * ldx), r4 = _mm256_loadu_ps(x + 4 * ldx), r5 = _mm256_loadu_ps(x + 5 * ldx);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(zero, zero), t7 = _mm256_unpackhi_ps(zero, zero);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(d, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(d + 6, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(d + 12, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(d + 18, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(d + 30, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(d + 36, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(d + 42, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

// Floats CopyRows may write past xp's rows * kc (Transpose6x8's last store).
constexpr int64_t kCopySlack = 8;

// x[r0 : r0 + rows, k0 : k0 + kc] into xp, each group of kRows rows k-major.
inline void CopyRows(const float* x, int64_t ldx, int64_t rows, int64_t kc, float* xp) {
  for (int64_t g = 0; g < rows; g += kRows) {
    const int64_t n = std::min(kRows, rows - g);
    float* d = xp + g * kc;
#if defined(CPU_CAPABILITY_AVX2)
    // Whole groups 8 k's at a time in registers (the scalar copy was 5-9% of a 197 x 3072 x 768 GEMM).
    if constexpr (kRows == 6) {
      if (n == 6) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) Transpose6x8(x + g * ldx + k, ldx, d + k * 6);
        for (; k < kc; ++k) {
          for (int64_t r = 0; r < 6; ++r) d[k * 6 + r] = x[(g + r) * ldx + k];
        }
        continue;
      }
    }
#endif
    for (int64_t r = 0; r < n; ++r) {
      const float* s = x + (g + r) * ldx;
      for (int64_t k = 0; k < kc; ++k) d[k * n + r] = s[k];
    }
  }
}

}  // namespace gemm

inline void Linear(const LinearArgs& a) {
  using namespace gemm;
  if (a.k == 0) {  // no products: each row is the bias (or zeros), activated
    for (int64_t r = 0; r < a.m; ++r) {
      float* y = a.out + r * a.n;
      for (int64_t c = 0; c < a.n; ++c) y[c] = a.bias ? a.bias[c] : 0.f;
      if (a.act != Activation::kNone) ActivateRow(y, a.n, a);
    }
    return;
  }
  const int64_t panels = (a.n + kPanel - 1) / kPanel, full = a.n / kPanel;
  // The bias padded to whole panels, so a panel reads 16 values; the last partial panel's
  // outputs go through a scratch column block (rows x 16) and are copied out at the end.
  std::vector<float> bias;
  if (a.bias) {
    bias.assign(panels * kPanel, 0.f);
    std::copy(a.bias, a.bias + a.n, bias.begin());
  }
  const int64_t depth = a.k <= kWholeDepth ? a.k : kDepth;
  // Each thread a run of panels; one thread where the GEMM is too small to split (about 2^20 MACs).
  const int64_t grain = a.m * a.k * a.n < (int64_t{1} << 20) ? panels : 1;
  at::parallel_for(0, panels, grain, [&](int64_t p0, int64_t p1) {
    std::vector<float> xp(kRowBlock * depth + kCopySlack);
    std::vector<float> tail(p1 > full ? a.m * kPanel : 0);
    for (int64_t k0 = 0; k0 < a.k; k0 += depth) {
      const int64_t kc = std::min(depth, a.k - k0);
      const bool first = k0 == 0, last = k0 + kc == a.k;
      for (int64_t r0 = 0; r0 < a.m; r0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, a.m - r0);
        CopyRows(a.x + r0 * a.k + k0, a.k, rows, kc, xp.data());
        for (int64_t p = p0; p < p1; ++p) {
          const float* w = a.packed + (p * a.k + k0) * kPanel;
          const float* init = a.bias ? bias.data() + p * kPanel : nullptr;
          const bool partial = p >= full;
          float* y = partial ? tail.data() + r0 * kPanel : a.out + r0 * a.n + p * kPanel;
          const int64_t ldy = partial ? kPanel : a.n;
          for (int64_t g = 0; g < rows; g += kRows) {
            TileOf<kRows>(std::min(kRows, rows - g), kc, xp.data() + g * kc, w, y + g * ldy, ldy, first, init);
          }
          if (last && !partial && a.act != Activation::kNone) {
            for (int64_t r = 0; r < rows; ++r) ActivateRow(y + r * ldy, kPanel, a);
          }
        }
      }
    }
    if (!tail.empty()) {
      const int64_t c0 = full * kPanel, width = a.n - c0;
      for (int64_t r = 0; r < a.m; ++r) {
        std::copy(tail.data() + r * kPanel, tail.data() + r * kPanel + width, a.out + r * a.n + c0);
        if (a.act != Activation::kNone) ActivateRow(a.out + r * a.n + c0, width, a);
      }
    }
  });
}

// Threads split the output rows (n * oh); each row runs panel by panel (a panel's kh * kw * c x 16
// weights stay in L1: 9.4 KiB for a 7 x 7 RGB stem) over groups of kRows pixels.
inline void Conv2d(const Conv2dArgs& a) {
  using namespace gemm;
  const int64_t panels = (a.o + kPanel - 1) / kPanel, full = a.o / kPanel;
  const int64_t kwc = a.kw * a.c, k = a.kh * kwc, ldr = a.sw * a.c, rowStride = a.wp * a.c;
  std::vector<float> bias(panels * kPanel, 0.f);
  if (a.bias) std::copy(a.bias, a.bias + a.o, bias.begin());
  const int64_t grain = a.ow * a.o * k < (int64_t{1} << 16) ? 16 : 1;
  at::parallel_for(0, a.n * a.oh, grain, [&](int64_t row0, int64_t row1) {
    float tail[kRows * kPanel];
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t img = row / a.oh, oy = row % a.oh;
      const float* x = a.x + (img * a.hp + oy * a.sh) * rowStride;
      float* out = a.out + row * a.ow * a.o;
      for (int64_t p = 0; p < panels; ++p) {
        const float* w = a.packed + p * k * kPanel;
        const float* init = bias.data() + p * kPanel;
        const bool partial = p >= full;
        for (int64_t j = 0; j < a.ow; j += kRows) {
          const int64_t rows = std::min(kRows, a.ow - j);
          float* y = partial ? tail : out + j * a.o + p * kPanel;
          ConvTileOf<kRows>(rows, x + j * ldr, ldr, rowStride, a.kh, kwc, w, y, partial ? kPanel : a.o, init, a);
          if (partial) {
            for (int64_t r = 0; r < rows; ++r) std::copy(tail + r * kPanel, tail + r * kPanel + (a.o - full * kPanel), out + (j + r) * a.o + p * kPanel);
          }
        }
      }
    }
  });
}

}  // namespace tg::fused_ops::CPU_CAPABILITY
