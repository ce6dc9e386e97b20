// native/fused_ops_kernels.h compiled for AVX2 (CPU_CAPABILITY=AVX2 and its compiler flags are set
// for this file alone by CMakeLists.txt and binding.gyp); native/fused_ops.cc calls these only
// where libtorch itself runs its AVX2 kernels. Without the flags (not x86-64) it is empty.
#if defined(CPU_CAPABILITY_AVX2)
#include "fused_ops_kernels.h"
#include "gemm_kernel.h"

namespace tg::fused_ops {

void AddNormAvx2(const AddNormArgs& a) { AVX2::AddNorm(a); }
void BiasGeluAvx2(const BiasGeluArgs& a) { AVX2::BiasGelu(a); }
void MaxPoolAvx2(const MaxPoolArgs& a) { AVX2::MaxPool(a); }
void LinearAvx2(const LinearArgs& a) { AVX2::Linear(a); }
void Conv2dAvx2(const Conv2dArgs& a) { AVX2::Conv2d(a); }

}  // namespace tg::fused_ops
#endif
