// The small-matrix LU kernels (small_lu.hpp) on 32-byte vectors: AVX2 (4 double /
// 8 float lanes).
#include "linalg/small_lu_impl.hpp"

namespace matnet::detail {

const SmallLuKernels<float>& small_lu_f32_avx2() {
  static const SmallLuKernels<float> k = SmallLu<float, 32 / 4>::table("avx2");
  return k;
}

const SmallLuKernels<double>& small_lu_f64_avx2() {
  static const SmallLuKernels<double> k = SmallLu<double, 32 / 8>::table("avx2");
  return k;
}

}  // namespace matnet::detail
