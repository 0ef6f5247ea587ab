// The Winograd transforms (winograd_kernels.hpp) compiled with -mavx2 -mfma
// (also the AVX-512 table's: GCC vectorises these loops 256 bits wide
// either way), reached only through the registry.
#include "nn/winograd_kernels_impl.hpp"

namespace matnet::detail {

const WinogradKernels<float>& winograd_f32_avx2() {
  static const WinogradKernels<float> k = Winograd<float>::table("avx2");
  return k;
}

const WinogradKernels<double>& winograd_f64_avx2() {
  static const WinogradKernels<double> k = Winograd<double>::table("avx2");
  return k;
}

}  // namespace matnet::detail
