// The small-matrix LU kernels (small_lu.hpp) on 16-byte vectors: SSE2, the
// x86-64 baseline (2 double / 4 float lanes).
#include "linalg/small_lu_impl.hpp"

namespace matnet::detail {

const SmallLuKernels<float>& small_lu_f32_generic() {
  static const SmallLuKernels<float> k = SmallLu<float, 16 / 4>::table("generic");
  return k;
}

const SmallLuKernels<double>& small_lu_f64_generic() {
  static const SmallLuKernels<double> k = SmallLu<double, 16 / 8>::table("generic");
  return k;
}

}  // namespace matnet::detail
