// The Winograd transforms (winograd_kernels.hpp) compiled for the portable
// path (SSE2 at most).
#include "nn/winograd_kernels_impl.hpp"

namespace matnet::detail {

const WinogradKernels<float>& winograd_f32_generic() {
  static const WinogradKernels<float> k = Winograd<float>::table("generic");
  return k;
}

const WinogradKernels<double>& winograd_f64_generic() {
  static const WinogradKernels<double> k = Winograd<double>::table("generic");
  return k;
}

}  // namespace matnet::detail
