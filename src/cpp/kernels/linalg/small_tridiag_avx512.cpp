// The small tridiagonalisation kernels (small_tridiag.hpp) on
// 64-byte vectors: AVX-512 (8 double / 16 float lanes).
#include "linalg/small_tridiag_impl.hpp"

namespace matnet::detail {

const SmallTridiagKernels<float>& small_tridiag_f32_avx512() {
  static const SmallTridiagKernels<float> k = SmallTridiag<float, 64 / 4>::table("avx512");
  return k;
}

const SmallTridiagKernels<double>& small_tridiag_f64_avx512() {
  static const SmallTridiagKernels<double> k = SmallTridiag<double, 64 / 8>::table("avx512");
  return k;
}

}  // namespace matnet::detail
