// Householder tridiagonalisation of one small symmetric matrix, and its Q^T
// (internal): the first step of eigh up to thresholds::eigh_small_max_n.
// One table per dtype and ISA, in the kernel registry (runtime/registry.hpp).
//
// The same arithmetic as the general path (tridiagonal.cpp, then forming Q
// from the reflectors), unblocked (LAPACK's DSYTD2 and DORG2R), but on one
// padded copy of the whole matrix with every loop a whole-vector loop:
// at n = 32 the general path's per-step calls through the GEMV driver and
// its portable (SSE2) row updates took ~13 us of a 37 us eigh.
//
// The kernels never throw, allocate or know of threads.
#pragma once

#include <cstdint>

namespace matnet::detail {

/// Row stride of the kernels' padded copies: whole cache lines.
template <class T>
constexpr std::int64_t small_tridiag_ld(std::int64_t n) {
  constexpr std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(T));
  return (n + line - 1) / line * line;
}

/// Elements of scratch that SmallTridiagKernels::reduce needs for order n.
template <class T>
constexpr std::int64_t small_tridiag_work(std::int64_t n) {
  return (2 * n + 6) * small_tridiag_ld<T>(n) + n;
}

template <class T>
struct SmallTridiagKernels {
  /// For the symmetric A of order 1 <= n <= thresholds::eigh_small_max_n
  /// whose lower triangle is a's (row stride lda; the upper triangle is not
  /// read): with s = eigh_scale(max |a_ij|) (factor.hpp),
  ///   Q^T (s A) Q = T, T tridiagonal: diagonal d[0, n), off-diagonal
  ///   e[0, n - 1) (e[i] couples d[i] and d[i + 1]);
  ///   when zt is not null, Q^T into zt (n x n, row stride ldz).
  /// work: small_tridiag_work<T>(n) elements, 64-byte aligned. Returns s.
  T (*reduce)(std::int64_t n, const T* a, std::int64_t lda, T* d, T* e, T* zt,
              std::int64_t ldz, T* work);
  const char* name;
};

const SmallTridiagKernels<float>& small_tridiag_f32_generic();
const SmallTridiagKernels<double>& small_tridiag_f64_generic();
const SmallTridiagKernels<float>& small_tridiag_f32_avx2();
const SmallTridiagKernels<double>& small_tridiag_f64_avx2();
const SmallTridiagKernels<float>& small_tridiag_f32_avx512();
const SmallTridiagKernels<double>& small_tridiag_f64_avx512();

}  // namespace matnet::detail
