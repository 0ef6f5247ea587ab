// LU with partial pivoting (see factor.hpp).
//
// Algorithm: recursive LU (Toledo 1997; LAPACK's DGETRF2). The columns
// [c0, c0 + w) are split in halves: factor the left half (all rows below
// c0), solve U12 = L11^{-1} A12 (TRSM), update A22 -= L21 U12 (one matnet
// GEMM), factor the right half. Every level's update is a square-ish GEMM
// (n/2 x n/2 x n/2 at the top), so ~all of the 2/3 n^3 flops run in the
// GEMM kernel, including inside what a right-looking blocked LU would call
// its panel. Chosen over right-looking blocked LU because it has no panel
// width to tune and its GEMMs are deeper (k up to n/2, not nb).
//
// Pivoting swaps whole rows (all n columns, contiguous in row-major
// storage) the moment a pivot is chosen, so the unfactored columns to the
// right are permuted before their updates and L's finished columns to the
// left match LAPACK's convention (P A = L U) without a separate DLASWP.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "blas3/gemm_driver.hpp"
#include "blas3/trsm.hpp"
#include "core/scalar.hpp"
#include "core/thresholds.hpp"
#include "linalg/factor.hpp"

namespace matnet::detail {

namespace {

template <class T, class N>
void swap_rows(T* a, std::int64_t lda, N n, std::int64_t i, std::int64_t j) {
  if (i == j) return;
  std::swap_ranges(a + i * lda, a + i * lda + static_cast<std::int64_t>(n), a + j * lda);
}

/// Unblocked LU of columns [c0, c0 + w), rows [c0, n). When b is not null
/// its rows (n x nrhs) are swapped and eliminated along (L^{-1} P b, the
/// forward half of a solve, in the same order of operations as lu_solve).
/// The sizes n, c0, w are std::int64_t, or std::integral_constant for the
/// fixed small orders (lu_small), where the compiler unrolls every loop.
template <class T, class N, class C0, class W>
void lu_unblocked(N n, T* a, std::int64_t lda, std::int64_t* piv, C0 c0, W w,
                  std::int64_t& info, T* b = nullptr, std::int64_t ldb = 0,
                  std::int64_t nrhs = 0) {
  for (std::int64_t j = c0; j < c0 + w; ++j) {
    std::int64_t p = j;
    T best = std::abs(a[j * lda + j]);
    for (std::int64_t i = j + 1; i < n; ++i) {
      const T v = std::abs(a[i * lda + j]);
      if (v > best) best = v, p = i;
    }
    piv[j] = p;
    swap_rows(a, lda, n, j, p);
    if (b != nullptr) swap_rows(b, ldb, nrhs, j, p);
    const T pivot = a[j * lda + j];
    if (pivot == T(0)) {
      if (info == 0) info = j + 1;
      continue;  // L's column stays as is (zero below a zero pivot)
    }
    // 1 / pivot overflows for a subnormal pivot: divide then (DGETF2's sfmin).
    const bool divide = reciprocal_overflows(pivot);
    const T r = T(1) / pivot;
    const T* uj = a + j * lda;
    for (std::int64_t i = j + 1; i < n; ++i) {
      T* ai = a + i * lda;
      const T l = ai[j] = divide ? ai[j] / pivot : ai[j] * r;
      if (l == T(0)) continue;
      for (std::int64_t c = j + 1; c < c0 + w; ++c) ai[c] -= l * uj[c];
      if (b != nullptr)
        for (std::int64_t c = 0; c < nrhs; ++c) b[i * ldb + c] -= l * b[j * ldb + c];
    }
  }
}

template <std::int64_t V>
using Const = std::integral_constant<std::int64_t, V>;

/// Whole-matrix unblocked LU (and elimination of b) for n <= 8 with the
/// order known at compile time: the stacked 8 x 8 case spends its time in
/// loop control otherwise. Returns false for larger n.
template <class T>
bool lu_small(std::int64_t n, T* a, std::int64_t lda, std::int64_t* piv, std::int64_t& info,
              T* b, std::int64_t ldb, std::int64_t nrhs) {
  switch (n) {
#define MATNET_LU_SMALL(K) \
  case K: lu_unblocked(Const<K>{}, a, lda, piv, Const<0>{}, Const<K>{}, info, b, ldb, nrhs); return true;
    MATNET_LU_SMALL(1) MATNET_LU_SMALL(2) MATNET_LU_SMALL(3) MATNET_LU_SMALL(4)
    MATNET_LU_SMALL(5) MATNET_LU_SMALL(6) MATNET_LU_SMALL(7) MATNET_LU_SMALL(8)
#undef MATNET_LU_SMALL
    default: return false;
  }
}

template <class T>
void lu_recursive(std::int64_t n, T* a, std::int64_t lda, std::int64_t* piv, std::int64_t c0,
                  std::int64_t w, std::int64_t& info, int max_threads) {
  if (w <= thresholds::lu_base_cols) {
    if (!(c0 == 0 && w == n && lu_small<T>(n, a, lda, piv, info, nullptr, 0, 0)))
      lu_unblocked(n, a, lda, piv, c0, w, info);
    return;
  }
  // Left half a multiple of 8 columns where possible (GEMM-friendly k).
  const std::int64_t w1 = std::max<std::int64_t>(8, (w / 2) / 8 * 8), w2 = w - w1;
  lu_recursive(n, a, lda, piv, c0, w1, info, max_threads);
  T* a11 = a + c0 * lda + c0;
  T* a12 = a11 + w1;
  trsm_left<T>(true, false, true, w1, w2, a11, lda, a12, lda, max_threads);
  const std::int64_t rows = n - c0 - w1;
  if (rows > 0) {
    gemm_run<T>(false, false, rows, w2, w1, T(-1), a11 + w1 * lda, lda, a12, lda, T(1),
                a12 + w1 * lda, lda, nullptr, max_threads);
  }
  lu_recursive(n, a, lda, piv, c0 + w1, w2, info, max_threads);
}

}  // namespace

template <class T>
std::int64_t lu_factor(std::int64_t n, T* a, std::int64_t lda, std::int64_t* piv,
                       int max_threads) {
  std::int64_t info = 0;
  if (n > 0) lu_recursive(n, a, lda, piv, 0, n, info, max_threads);
  return info;
}

template <class T>
void lu_solve(std::int64_t n, std::int64_t nrhs, const T* lu, std::int64_t lda,
              const std::int64_t* piv, T* b, std::int64_t ldb, int max_threads) {
  if (n == 0 || nrhs == 0) return;
  for (std::int64_t i = 0; i < n; ++i) swap_rows(b, ldb, nrhs, i, piv[i]);
  trsm_left<T>(true, false, true, n, nrhs, lu, lda, b, ldb, max_threads);
  trsm_left<T>(false, false, false, n, nrhs, lu, lda, b, ldb, max_threads);
}

template <class T>
std::int64_t lu_factor_solve(std::int64_t n, std::int64_t nrhs, T* a, std::int64_t lda,
                             std::int64_t* piv, T* b, std::int64_t ldb, int max_threads) {
  if (n > thresholds::lu_base_cols) {
    const std::int64_t info = lu_factor(n, a, lda, piv, max_threads);
    if (info == 0) lu_solve(n, nrhs, a, lda, piv, b, ldb, max_threads);
    return info;
  }
  // Small (the stacked 8 x 8 case): one elimination pass carries b along,
  // then back substitution; no TRSM/GEMM calls at all.
  std::int64_t info = 0;
  if (n > 0 && !lu_small(n, a, lda, piv, info, b, ldb, nrhs))
    lu_unblocked(n, a, lda, piv, std::int64_t{0}, n, info, b, ldb, nrhs);
  if (info == 0) trsm_left<T>(false, false, false, n, nrhs, a, lda, b, ldb, 1);
  return info;
}

template std::int64_t lu_factor_solve<float>(std::int64_t, std::int64_t, float*, std::int64_t,
                                             std::int64_t*, float*, std::int64_t, int);
template std::int64_t lu_factor_solve<double>(std::int64_t, std::int64_t, double*, std::int64_t,
                                              std::int64_t*, double*, std::int64_t, int);
template std::int64_t lu_factor<float>(std::int64_t, float*, std::int64_t, std::int64_t*, int);
template std::int64_t lu_factor<double>(std::int64_t, double*, std::int64_t, std::int64_t*, int);
template void lu_solve<float>(std::int64_t, std::int64_t, const float*, std::int64_t,
                              const std::int64_t*, float*, std::int64_t, int);
template void lu_solve<double>(std::int64_t, std::int64_t, const double*, std::int64_t,
                               const std::int64_t*, double*, std::int64_t, int);

}  // namespace matnet::detail
