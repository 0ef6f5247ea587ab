// Cholesky factorisation A = L L^T (see factor.hpp).
//
// Algorithm: recursive (Gustavson; LAPACK's DPOTRF2). With A split at w1:
// L11 = chol(A11); L21 = A21 L11^{-T} (TRSM); A22 -= L21 L21^T; L22 =
// chol(A22). The symmetric update touches only the lower triangle: it is
// split recursively too (lower_update), the off-diagonal block of each
// level one matnet GEMM, so the total stays ~n^3/3 flops with nearly all
// of them in the GEMM kernel. Below cholesky_base_cols columns the plain
// loops (dot products along contiguous rows) are cheaper than GEMM calls.
#include <algorithm>
#include <cmath>

#include "blas2/dot.hpp"
#include "blas3/gemm_driver.hpp"
#include "blas3/trsm.hpp"
#include "core/thresholds.hpp"
#include "linalg/factor.hpp"

namespace matnet::detail {

namespace {

/// C (n x n, lower triangle) -= X X^T, X n x k.
template <class T>
void lower_update(std::int64_t n, std::int64_t k, const T* x, std::int64_t ldx, T* c,
                  std::int64_t ldc, int max_threads) {
  if (n <= thresholds::cholesky_base_cols) {
    for (std::int64_t i = 0; i < n; ++i) {
      const T* xi = x + i * ldx;
      for (std::int64_t j = 0; j <= i; ++j) {
        const T* xj = x + j * ldx;
        c[i * ldc + j] -= dot(k, xi, xj);
      }
    }
    return;
  }
  const std::int64_t n1 = n / 2, n2 = n - n1;
  lower_update(n1, k, x, ldx, c, ldc, max_threads);
  gemm_run<T>(false, true, n2, n1, k, T(-1), x + n1 * ldx, ldx, x, ldx, T(1), c + n1 * ldc, ldc,
              nullptr, max_threads);
  lower_update(n2, k, x + n1 * ldx, ldx, c + n1 * ldc + n1, ldc, max_threads);
}

/// Unblocked, row by row (left-looking): L[i, j] = (A[i, j] - L[i, :j].L[j, :j]) / L[j, j].
template <class T>
std::int64_t cholesky_unblocked(std::int64_t n, T* a, std::int64_t lda, std::int64_t offset) {
  for (std::int64_t i = 0; i < n; ++i) {
    T* li = a + i * lda;
    for (std::int64_t j = 0; j < i; ++j) {
      const T* lj = a + j * lda;
      li[j] = (li[j] - dot(j, li, lj)) / lj[j];
    }
    const T s = li[i] - dot(i, li, li);
    if (!(s > T(0))) return offset + i + 1;  // also catches NaN
    li[i] = std::sqrt(s);
  }
  return 0;
}

template <class T>
std::int64_t cholesky_recursive(std::int64_t n, T* a, std::int64_t lda, std::int64_t offset,
                                int max_threads) {
  if (n <= thresholds::cholesky_base_cols) return cholesky_unblocked(n, a, lda, offset);
  const std::int64_t n1 = std::max<std::int64_t>(8, (n / 2) / 8 * 8), n2 = n - n1;
  if (std::int64_t info = cholesky_recursive(n1, a, lda, offset, max_threads)) return info;
  T* a21 = a + n1 * lda;
  trsm_right<T>(true, true, false, n2, n1, a, lda, a21, lda, max_threads);
  lower_update<T>(n2, n1, a21, lda, a21 + n1, lda, max_threads);
  return cholesky_recursive(n2, a21 + n1, lda, offset + n1, max_threads);
}

}  // namespace

template <class T>
std::int64_t cholesky_factor(std::int64_t n, T* a, std::int64_t lda, int max_threads) {
  const std::int64_t info = cholesky_recursive(n, a, lda, 0, max_threads);
  for (std::int64_t i = 0; i < n; ++i) std::fill(a + i * lda + i + 1, a + i * lda + n, T(0));
  return info;
}

template std::int64_t cholesky_factor<float>(std::int64_t, float*, std::int64_t, int);
template std::int64_t cholesky_factor<double>(std::int64_t, double*, std::int64_t, int);

}  // namespace matnet::detail
