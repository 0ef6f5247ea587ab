// Householder reflectors, blocked QR and the application of Q (see factor.hpp).
//
// Blocking: compact WY (Schreiber & Van Loan 1989). A panel of w
// reflectors H_0 ... H_{w-1} equals I - V T V^T with V the unit lower
// trapezoidal matrix of the vectors and T w x w upper triangular (LAPACK's
// DLARFT). Applying it to C is W = V^T C, W = T W (or T^T W), C -= V W:
// two GEMMs with k = w, and a w x w triangular product. The panel itself
// is factored column by column (rows are contiguous, so each reflector is
// applied as a row-wise accumulation w = v^T C and a rank-1 update).
#include <algorithm>
#include <cmath>
#include <limits>

#include "blas3/gemm_driver.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "linalg/factor.hpp"

namespace matnet::detail {

template <class T>
T householder(std::int64_t n, T* x, std::int64_t incx, T* beta) {
  const T alpha = x[0];
  *beta = alpha;
  if (n <= 1) return T(0);
  // ||x[1:]||, scaled so that squares neither overflow nor underflow.
  T amax = 0;
  for (std::int64_t i = 1; i < n; ++i) amax = std::max(amax, std::abs(x[i * incx]));
  if (amax == T(0)) return T(0);
  T ss = 0;
  for (std::int64_t i = 1; i < n; ++i) {
    const T t = x[i * incx] / amax;
    ss += t * t;
  }
  const T xnorm = amax * std::sqrt(ss);
  const T b = -std::copysign(std::hypot(alpha, xnorm), alpha);
  const T tau = (b - alpha) / b;
  const T scale = T(1) / (alpha - b);
  for (std::int64_t i = 1; i < n; ++i) x[i * incx] *= scale;
  *beta = b;
  return tau;
}

namespace {

/// C := (I - tau v v^T) C, C rows x cols, v = (1, v1[0], v1[incv], ...).
/// work: cols elements.
template <class T>
void reflect_left(std::int64_t rows, std::int64_t cols, const T* v1, std::int64_t incv, T tau,
                  T* c, std::int64_t ldc, T* work) {
  if (tau == T(0) || cols == 0) return;
  std::copy(c, c + cols, work);
  for (std::int64_t i = 1; i < rows; ++i) {
    const T vi = v1[(i - 1) * incv];
    const T* ci = c + i * ldc;
    for (std::int64_t j = 0; j < cols; ++j) work[j] += vi * ci[j];
  }
  for (std::int64_t j = 0; j < cols; ++j) c[j] -= tau * work[j];
  for (std::int64_t i = 1; i < rows; ++i) {
    const T f = tau * v1[(i - 1) * incv];
    T* ci = c + i * ldc;
    for (std::int64_t j = 0; j < cols; ++j) ci[j] -= f * work[j];
  }
}

/// Reflector j of a column-stored set: its entries below the unit one.
template <class T>
const T* below(const T* v, std::int64_t ldv, std::int64_t j) {
  return v + (j + 1) * ldv + j;
}

/// Unblocked: C := H_j C (or the sequence) for reflectors [j0, j1) in the
/// order of trans; C's rows are those of v, columns [c0, nc).
template <class T>
void apply_unblocked(bool trans, std::int64_t m, std::int64_t c0, std::int64_t nc,
                     std::int64_t j0, std::int64_t j1, const T* v, std::int64_t ldv,
                     const T* tau, T* c, std::int64_t ldc, T* work) {
  for (std::int64_t s = j0; s < j1; ++s) {
    const std::int64_t j = trans ? s : j1 - 1 + j0 - s;
    reflect_left(m - j, nc - c0, below(v, ldv, j), ldv, tau[j], c + j * ldc + c0, ldc, work);
  }
}

/// The block of w reflectors starting at v (rows x w, strict lower part):
/// C (rows x nc) := (I - V T V^T) C, or with T^T when trans.
template <class T>
void apply_block(bool trans, std::int64_t rows, std::int64_t nc, std::int64_t w, const T* v,
                 std::int64_t ldv, const T* tau, T* c, std::int64_t ldc, int max_threads) {
  if (nc == 0 || rows == 0) return;
  WorkspaceScope scope;
  T* vb = scope.alloc<T>(static_cast<std::size_t>(rows * w));
  T* t = scope.alloc<T>(static_cast<std::size_t>(w * w));
  T* wk = scope.alloc<T>(static_cast<std::size_t>(w * nc));
  // V explicit: unit diagonal, zeros above.
  for (std::int64_t i = 0; i < rows; ++i) {
    T* vi = vb + i * w;
    for (std::int64_t j = 0; j < w; ++j)
      vi[j] = j < i ? v[i * ldv + j] : (j == i ? T(1) : T(0));
  }
  // T (DLARFT, forward, columnwise) from G = V^T V.
  gemm_run<T>(true, false, w, w, rows, T(1), vb, w, vb, w, T(0), t, w, nullptr, 1);
  for (std::int64_t j = 0; j < w; ++j) {
    // Column j: T[0:j, j] = -tau_j T[0:j, 0:j] G[0:j, j]; G's column j is
    // read before it is overwritten (row i only uses G[p, j] for p >= i).
    for (std::int64_t i = 0; i < j; ++i) {
      T s = 0;
      for (std::int64_t p = i; p < j; ++p) s += t[i * w + p] * t[p * w + j];
      t[i * w + j] = -tau[j] * s;
    }
    t[j * w + j] = tau[j];
    for (std::int64_t i = j + 1; i < w; ++i) t[i * w + j] = 0;
  }
  gemm_run<T>(true, false, w, nc, rows, T(1), vb, w, c, ldc, T(0), wk, nc, nullptr, max_threads);
  if (trans) {  // W := T^T W, row i = sum_{p <= i} T[p, i] W[p]: bottom up, in place
    for (std::int64_t i = w - 1; i >= 0; --i) {
      T* wi = wk + i * nc;
      const T d = t[i * w + i];
      for (std::int64_t j = 0; j < nc; ++j) wi[j] *= d;
      for (std::int64_t p = 0; p < i; ++p) {
        const T f = t[p * w + i];
        const T* wp = wk + p * nc;
        for (std::int64_t j = 0; j < nc; ++j) wi[j] += f * wp[j];
      }
    }
  } else {  // W := T W, row i = sum_{p >= i} T[i, p] W[p]: top down, in place
    for (std::int64_t i = 0; i < w; ++i) {
      T* wi = wk + i * nc;
      const T d = t[i * w + i];
      for (std::int64_t j = 0; j < nc; ++j) wi[j] *= d;
      for (std::int64_t p = i + 1; p < w; ++p) {
        const T f = t[i * w + p];
        const T* wp = wk + p * nc;
        for (std::int64_t j = 0; j < nc; ++j) wi[j] += f * wp[j];
      }
    }
  }
  gemm_run<T>(false, false, rows, nc, w, T(-1), vb, w, wk, nc, T(1), c, ldc, nullptr,
              max_threads);
}

/// Blocking pays once the reflectors and C are big enough for GEMM.
inline bool use_blocked(std::int64_t m, std::int64_t nc, std::int64_t k) {
  return k > 8 && m * nc >= 64 * 64;
}

}  // namespace

template <class T>
void qr_factor(std::int64_t m, std::int64_t n, T* a, std::int64_t lda, T* tau,
               int max_threads) {
  const std::int64_t kmin = std::min(m, n);
  if (kmin == 0) return;
  WorkspaceScope scope;
  T* work = scope.alloc<T>(static_cast<std::size_t>(n));
  const std::int64_t nb = use_blocked(m, n, kmin) ? thresholds::qr_block : kmin;
  for (std::int64_t j0 = 0; j0 < kmin; j0 += nb) {
    const std::int64_t w = std::min(nb, kmin - j0);
    for (std::int64_t j = j0; j < j0 + w; ++j) {  // the panel, unblocked
      T beta;
      tau[j] = householder(m - j, a + j * lda + j, lda, &beta);
      a[j * lda + j] = beta;
      reflect_left(m - j, j0 + w - j - 1, a + (j + 1) * lda + j, lda, tau[j],
                   a + j * lda + j + 1, lda, work);
    }
    if (j0 + w < n) {
      apply_block(true, m - j0, n - j0 - w, w, a + j0 * lda + j0, lda, tau + j0,
                  a + j0 * lda + j0 + w, lda, max_threads);
    }
  }
}

template <class T>
void qr_apply(bool trans, std::int64_t m, std::int64_t nc, std::int64_t k, const T* v,
              std::int64_t ldv, const T* tau, T* c, std::int64_t ldc, int max_threads) {
  if (k == 0 || nc == 0) return;
  if (!use_blocked(m, nc, k)) {
    WorkspaceScope scope;
    T* work = scope.alloc<T>(static_cast<std::size_t>(nc));
    apply_unblocked(trans, m, 0, nc, 0, k, v, ldv, tau, c, ldc, work);
    return;
  }
  const std::int64_t nb = thresholds::qr_block, blocks = (k + nb - 1) / nb;
  for (std::int64_t s = 0; s < blocks; ++s) {
    const std::int64_t b = trans ? s : blocks - 1 - s;
    const std::int64_t j0 = b * nb, w = std::min(nb, k - j0);
    apply_block(trans, m - j0, nc, w, v + j0 * ldv + j0, ldv, tau + j0, c + j0 * ldc, ldc,
                max_threads);
  }
}

template <class T>
void qr_form_q_columns(std::int64_t m, std::int64_t c0, std::int64_t c1, std::int64_t k,
                       const T* v, std::int64_t ldv, const T* tau, T* out, std::int64_t ldo,
                       int max_threads) {
  for (std::int64_t i = 0; i < m; ++i) {
    std::fill(out + i * ldo + c0, out + i * ldo + c1, T(0));
    if (i >= c0 && i < c1) out[i * ldo + i] = T(1);
  }
  const std::int64_t kc = std::min(k, c1);  // reflectors j >= c1 only touch columns >= j
  if (kc == 0 || c0 >= c1) return;
  // Backwards, H_0 (H_1 (... I)): when reflector j is applied, the columns
  // left of j are still those of I and it leaves them alone, so only
  // columns [max(j, c0), c1) are touched (LAPACK's DORGQR does the same).
  if (!use_blocked(m, c1 - c0, k)) {
    WorkspaceScope scope;
    T* work = scope.alloc<T>(static_cast<std::size_t>(c1 - c0));
    for (std::int64_t j = kc - 1; j >= 0; --j)
      apply_unblocked(false, m, std::max(j, c0), c1, j, j + 1, v, ldv, tau, out, ldo, work);
    return;
  }
  const std::int64_t nb = thresholds::qr_block;
  for (std::int64_t j0 = (kc - 1) / nb * nb; j0 >= 0; j0 -= nb) {
    const std::int64_t w = std::min(nb, k - j0), cs = std::max(c0, j0);
    apply_block(false, m - j0, c1 - cs, w, v + j0 * ldv + j0, ldv, tau + j0,
                out + j0 * ldo + cs, ldo, max_threads);
  }
}

template <class T>
void qr_form_q(std::int64_t m, std::int64_t q, std::int64_t k, const T* v, std::int64_t ldv,
               const T* tau, T* out, std::int64_t ldo, int max_threads) {
  qr_form_q_columns(m, 0, q, k, v, ldv, tau, out, ldo, max_threads);
}

template <class T>
void row_reflectors_to_columns(std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
                               T* out, std::int64_t ldo) {
  // In tiles: a's columns are read, and a whole column would touch a cache
  // line per element.
  constexpr std::int64_t tile = 32;
  for (std::int64_t r0 = 0; r0 + 1 < n; r0 += tile)
    for (std::int64_t c0 = 0; c0 < k; c0 += tile)
      for (std::int64_t r = r0; r < std::min(n - 1, r0 + tile); ++r) {
        T* o = out + r * ldo;
        for (std::int64_t c = c0; c < std::min(k, c0 + tile); ++c)
          o[c] = c < r ? a[c * lda + r + 1] : T(0);
      }
}

#define MATNET_HOUSEHOLDER_INSTANTIATE(T)                                                      \
  template T householder<T>(std::int64_t, T*, std::int64_t, T*);                                \
  template void qr_factor<T>(std::int64_t, std::int64_t, T*, std::int64_t, T*, int);            \
  template void qr_apply<T>(bool, std::int64_t, std::int64_t, std::int64_t, const T*,           \
                            std::int64_t, const T*, T*, std::int64_t, int);                     \
  template void qr_form_q<T>(std::int64_t, std::int64_t, std::int64_t, const T*, std::int64_t, \
                             const T*, T*, std::int64_t, int);                                  \
  template void qr_form_q_columns<T>(std::int64_t, std::int64_t, std::int64_t, std::int64_t,   \
                                     const T*, std::int64_t, const T*, T*, std::int64_t, int); \
  template void row_reflectors_to_columns<T>(std::int64_t, std::int64_t, const T*,             \
                                             std::int64_t, T*, std::int64_t);
MATNET_HOUSEHOLDER_INSTANTIATE(float)
MATNET_HOUSEHOLDER_INSTANTIATE(double)
#undef MATNET_HOUSEHOLDER_INSTANTIATE

}  // namespace matnet::detail
