// The small tridiagonalisation kernels (small_tridiag.hpp) on
// 32-byte vectors: AVX2 (4 double / 8 float lanes).
#include "linalg/small_tridiag_impl.hpp"

namespace matnet::detail {

const SmallTridiagKernels<float>& small_tridiag_f32_avx2() {
  static const SmallTridiagKernels<float> k = SmallTridiag<float, 32 / 4>::table("avx2");
  return k;
}

const SmallTridiagKernels<double>& small_tridiag_f64_avx2() {
  static const SmallTridiagKernels<double> k = SmallTridiag<double, 32 / 8>::table("avx2");
  return k;
}

}  // namespace matnet::detail
