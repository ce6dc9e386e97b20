// native/fused_ops_kernels.h compiled for AVX512 (CPU_CAPABILITY=AVX512 and its compiler flags are set
// for this file alone by CMakeLists.txt and binding.gyp); native/fused_ops.cc calls these only
// where libtorch itself runs its AVX512 kernels. Without the flags (not x86-64) it is empty.
#if defined(CPU_CAPABILITY_AVX512)
#include "fused_ops_kernels.h"
#include "gemm_kernel.h"

namespace tg::fused_ops {

void AddNormAvx512(const AddNormArgs& a) { AVX512::AddNorm(a); }
void BiasGeluAvx512(const BiasGeluArgs& a) { AVX512::BiasGelu(a); }
void MaxPoolAvx512(const MaxPoolArgs& a) { AVX512::MaxPool(a); }
void LinearAvx512(const LinearArgs& a) { AVX512::Linear(a); }
void Conv2dAvx512(const Conv2dArgs& a) { AVX512::Conv2d(a); }

}  // namespace tg::fused_ops
#endif
