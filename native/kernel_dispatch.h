// Which compiled copy of a float32 loop runs here (native/fused_ops.cc, native/packed_linear.cc):
// the AVX-512, AVX2 or baseline copy of fused_ops_kernels.h / gemm_kernel.h, by the capability
// libtorch itself chose (at::get_cpu_capability(): "AVX512", "AVX2" or "DEFAULT"; ATEN_CPU_CAPABILITY
// lowers it), so a machine where ATen stays on AVX2 does not run AVX-512 here.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <type_traits>

namespace tg::fused_ops {

enum class Isa { kBaseline, kAvx2, kAvx512 };

inline Isa CpuIsa() {
  static const Isa isa = [] {
    const std::string c = at::get_cpu_capability();
    return c == "AVX512" ? Isa::kAvx512 : c == "AVX2" ? Isa::kAvx2 : Isa::kBaseline;
  }();
  return isa;
}

// The AVX2 and AVX-512 copies exist on x86-64 only (fused_ops_avx2.cc, fused_ops_avx512.cc:
// elsewhere they are not even named, so nothing links against them); otherwise, and where
// libtorch stays on its baseline, the copy compiled in the including file runs (its namespace is
// literally CPU_CAPABILITY: the macro is not set there).
#if defined(__x86_64__) || defined(_M_X64)
#define TG_KERNEL_COPIES(name) name##Avx512, name##Avx2, CPU_CAPABILITY::name
#else
#define TG_KERNEL_COPIES(name) nullptr, nullptr, CPU_CAPABILITY::name
#endif

// The copies' type, left out of deduction (Args comes from the arguments) so nullptr passes for a missing one.
template <typename Args>
using Kernel = typename std::common_type<void (*)(const Args&)>::type;

template <typename Args>
void Run(const Args& a, Kernel<Args> avx512, Kernel<Args> avx2, Kernel<Args> baseline) {
  if (avx512 && CpuIsa() == Isa::kAvx512) return avx512(a);
  if (avx2 && CpuIsa() == Isa::kAvx2) return avx2(a);
  baseline(a);
}

}  // namespace tg::fused_ops
