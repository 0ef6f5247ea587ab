// The small tridiagonalisation kernels (small_tridiag.hpp) on
// 16-byte vectors: SSE2, the x86-64 baseline (2 double / 4 float lanes).
#include "linalg/small_tridiag_impl.hpp"

namespace matnet::detail {

const SmallTridiagKernels<float>& small_tridiag_f32_generic() {
  static const SmallTridiagKernels<float> k = SmallTridiag<float, 16 / 4>::table("generic");
  return k;
}

const SmallTridiagKernels<double>& small_tridiag_f64_generic() {
  static const SmallTridiagKernels<double> k = SmallTridiag<double, 16 / 8>::table("generic");
  return k;
}

}  // namespace matnet::detail
