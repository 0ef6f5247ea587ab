// AVX-512 "sup" kernel (few rows of op(A), nothing packed), float and double;
// contract in ukernel.hpp. Compiled with -mavx512f -mavx512vl (and AVX2/FMA),
// reached only through the registry's avx512 table after the CPUID check.
//
// The same algorithm as gemm_sup_avx2.cpp (sup_by_rows.hpp), with what
// AVX-512 adds: 32 vector registers hold eight rows of B per pass and the
// sixteen broadcast values of two rows of A, so C is loaded and stored once
// per eight rows of B instead of four, and 16-lane vectors halve the
// instruction count. Tails use mask registers.
//
// Measured (f32, 1 thread, stand-alone, GFLOP/s, m = 2 / 4 / 16 on a
// 784x256 B in L2): AVX2 kernel 75 / 68 / 78-85, this one 81 / 81 / 86-92.
// Narrow C (n <= 16) keeps the AVX2 kernel's register tile.
//
// With more rows, C in registers over blocks of B (sup_tiled.hpp) beats
// both from four rows (thresholds::sup_tiled_min_m), and this table takes up
// to sup_tiled_max_m rows on the sup path.
#include "blas3/sup_by_rows.hpp"
#include "blas3/sup_tiled.hpp"
#include "blas3/ukernel.hpp"
#include "core/thresholds.hpp"
#include "simd/vec_avx512.hpp"

namespace matnet::detail {
namespace {

template <class T>
void gemm_sup_avx512(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                     std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb, T beta, T* c,
                     std::int64_t ldc) {
  if (n <= 16) {  // a register tile of C over all of k (the AVX2 kernel's narrow path)
    if constexpr (sizeof(T) == 4) {
      sgemm_sup_avx2()(m, n, k, alpha, a, rsa, csa, b, ldb, beta, c, ldc);
    } else {
      dgemm_sup_avx2()(m, n, k, alpha, a, rsa, csa, b, ldb, beta, c, ldc);
    }
    return;
  }
  if (m >= thresholds::sup_tiled_min_m) {
    sup_tiled<avx512::Vec<T>, T>(m, n, k, alpha, a, rsa, csa, b, ldb, beta, c, ldc);
    return;
  }
  // One to three rows: by rows of B, eight per pass (C is too small for
  // its traffic to matter).
  sup_by_rows<avx512::Vec<T>, T, 8>(m, n, k, alpha, a, rsa, csa, b, ldb, beta, c, ldc);
}

}  // namespace

const GemmKernel<float>& sgemm_kernel_avx512() {
  static const GemmKernel<float> kernel = [] {
    GemmKernel<float> k = sgemm_kernel_avx2();
    k.sup = &gemm_sup_avx512<float>;
    k.sup_max_m = thresholds::sup_tiled_max_m;
    return k;
  }();
  return kernel;
}

const GemmKernel<double>& dgemm_kernel_avx512() {
  static const GemmKernel<double> kernel = [] {
    GemmKernel<double> k = dgemm_kernel_avx2();
    k.sup = &gemm_sup_avx512<double>;
    k.sup_max_m = thresholds::sup_tiled_max_m;
    return k;
  }();
  return kernel;
}

}  // namespace matnet::detail
