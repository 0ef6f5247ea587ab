// Portable GEMM microkernels (contract: ukernel.hpp), for CPUs without AVX2
// or when MATNET_ISA=generic. Plain C++ over a small accumulator array; the
// compiler vectorizes the NR loop with baseline SSE2.
#include "blas3/blocking.hpp"
#include "blas3/ukernel.hpp"

namespace matnet::detail {
namespace {

template <class T, int MR, int NR>
void gemm_ukernel_ref(std::int64_t k, T alpha, const T* a, const T* b, T beta, T* c,
                      std::int64_t ldc) {
  T acc[MR][NR] = {};
  for (std::int64_t p = 0; p < k; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[p * MR + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[p * NR + j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

}  // namespace

const GemmKernel<float>& sgemm_kernel_generic() {
  constexpr auto s = blocking::f32_generic;
  static const GemmKernel<float> kernel{s.mr, s.nr, s.mc, s.kc, s.nc,
                                        &gemm_ukernel_ref<float, s.mr, s.nr>,
                                        "sgemm_ukernel_ref_4x8",
                                        &pack_a_block<float>, &pack_b_panel<float>};
  return kernel;
}

const GemmKernel<double>& dgemm_kernel_generic() {
  constexpr auto s = blocking::f64_generic;
  static const GemmKernel<double> kernel{s.mr, s.nr, s.mc, s.kc, s.nc,
                                         &gemm_ukernel_ref<double, s.mr, s.nr>,
                                         "dgemm_ukernel_ref_4x4",
                                         &pack_a_block<double>, &pack_b_panel<double>};
  return kernel;
}

}  // namespace matnet::detail
