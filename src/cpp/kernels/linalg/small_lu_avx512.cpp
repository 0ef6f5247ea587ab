// The small-matrix LU kernels (small_lu.hpp) on 64-byte vectors: AVX-512 (8 double /
// 16 float lanes).
#include "linalg/small_lu_impl.hpp"

namespace matnet::detail {

const SmallLuKernels<float>& small_lu_f32_avx512() {
  static const SmallLuKernels<float> k = SmallLu<float, 64 / 4>::table("avx512");
  return k;
}

const SmallLuKernels<double>& small_lu_f64_avx512() {
  static const SmallLuKernels<double> k = SmallLu<double, 64 / 8>::table("avx512");
  return k;
}

}  // namespace matnet::detail
