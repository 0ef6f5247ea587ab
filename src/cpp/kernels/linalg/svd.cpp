// Singular value decomposition (see factor.hpp).
//
// 1. m >= n (else the SVD of A^T, with U and V swapped). Householder
//    bidiagonalisation A = Q B P^T, B upper bidiagonal: a left reflector
//    on column k (stored below the diagonal, QR layout), then a right one
//    on row k (stored right of the superdiagonal). Level-2 (DGEBD2).
// 2. Implicit-shift QR on B (Golub-Kahan-Reinsch, as in EISPACK's SVD):
//    split where a superdiagonal entry is negligible against ||B||, chase
//    out a negligible diagonal entry, else one shifted QR sweep with the
//    shift from the trailing 2 x 2. Its rotations go into X^T and Y^T
//    (rows rotated, contiguous), B = X S Y^T.
// 3. U = Q [X 0; 0 I], V = P Y, with Q and P applied as blocks of
//    reflectors (two GEMMs per block).
// A^T A is never formed, so small singular values keep their absolute
// accuracy (~eps ||A||): the backward error ||A - U S V^T|| is O(eps ||A||).
// One-sided Jacobi would be simpler still but needs O(n^3) per sweep and
// ~10 sweeps; divide and conquer (LAPACK's DBDSDC) would be faster for
// the vectors at large n.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "blas2/dot.hpp"
#include "blas2/gemv_driver.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "linalg/factor.hpp"
#include "linalg/rotations.hpp"
#include "linalg/sort_vectors.hpp"

namespace matnet::detail {

namespace {

/// x (rows x cols, leading dimension ldx) := I.
template <class T>
void set_identity(std::int64_t rows, std::int64_t cols, T* x, std::int64_t ldx) {
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) x[i * ldx + j] = i == j ? T(1) : T(0);
}

/// Diagonalises the upper bidiagonal with diagonal w[0..n) and
/// superdiagonal rv[1..n) (rv[i] couples w[i-1] and w[i]; rv[0] = 0).
/// xt and yt (n x n, leading dimension ldr, or null) collect the left and
/// right rotations, in batches split over max_threads threads.
template <class T>
std::int64_t bidiagonal_qr(std::int64_t n, T* w, T* rv, T* xt, T* yt, std::int64_t ldr,
                           int max_threads) {
  const T eps = std::numeric_limits<T>::epsilon();
  T anorm = 0;
  for (std::int64_t i = 0; i < n; ++i) anorm = std::max(anorm, std::abs(w[i]) + std::abs(rv[i]));
  const T tol = eps * anorm;
  RowRotations<T> xrot(xt, n, n, ldr, max_threads), yrot(yt, n, n, ldr, max_threads);
  for (std::int64_t k = n - 1; k >= 0; --k) {
    for (int its = 0;; ++its) {
      bool cancel = true;
      std::int64_t l;
      for (l = k; l >= 0; --l) {  // rv[0] = 0 stops this at l = 0
        if (std::abs(rv[l]) <= tol) {
          cancel = false;
          break;
        }
        if (std::abs(w[l - 1]) <= tol) break;
      }
      if (cancel) {  // w[l-1] negligible: zero rv[l] by rotations from the left
        const std::int64_t nm = l - 1;
        T c = 0, s = 1;
        for (std::int64_t i = l; i <= k; ++i) {
          const T f = s * rv[i];
          rv[i] = c * rv[i];
          if (std::abs(f) <= tol) break;
          const T g = w[i];
          const T h = fast_hypot(f, g);
          w[i] = h;
          c = g / h;
          s = -f / h;
          xrot.rotate(nm, i, c, s);
        }
      }
      T z = w[k];
      if (l == k) {  // converged
        if (z < T(0)) {
          w[k] = -z;
          yrot.negate(k);
        }
        break;
      }
      if (its == 75) return k + 1;
      // Shift from the bottom 2 x 2 minor.
      T x = w[l];
      std::int64_t nm = k - 1;
      T y = w[nm];
      T g = rv[nm];
      T h = rv[k];
      T f = ((y - z) * (y + z) + (g - h) * (g + h)) / (T(2) * h * y);
      g = fast_hypot(f, T(1));
      f = ((x - z) * (x + z) + h * ((y / (f + std::copysign(g, f))) - h)) / x;
      // The QR sweep.
      T c = 1, s = 1;
      for (std::int64_t j = l; j <= nm; ++j) {
        const std::int64_t i = j + 1;
        g = rv[i];
        y = w[i];
        h = s * g;
        g = c * g;
        z = fast_hypot(f, h);
        rv[j] = z;
        c = f / z;
        s = h / z;
        f = x * c + g * s;
        g = g * c - x * s;
        h = y * s;
        y *= c;
        yrot.rotate(j, i, c, s);
        z = fast_hypot(f, h);
        w[j] = z;
        if (z != T(0)) {
          c = f / z;
          s = h / z;
        }
        f = c * g + s * y;
        x = c * y - s * g;
        xrot.rotate(j, i, c, s);
      }
      rv[l] = 0;
      rv[k] = f;
      w[k] = x;
    }
  }
  return 0;
}

/// m >= n.
template <class T>
std::int64_t svd_tall(std::int64_t m, std::int64_t n, T* a, std::int64_t lda, T* s, T* u,
                      std::int64_t ldu, T* vt, std::int64_t ldvt, bool full, int max_threads) {
  WorkspaceScope scope;
  T* tauq = scope.alloc<T>(static_cast<std::size_t>(n));
  T* taup = scope.alloc<T>(static_cast<std::size_t>(n));
  T* rv = scope.alloc<T>(static_cast<std::size_t>(n));
  T* work = scope.alloc<T>(static_cast<std::size_t>(m));  // m >= n: rows or columns
  rv[0] = 0;  // rv[k + 1] is B[k, k + 1]
  for (std::int64_t k = 0; k < n; ++k) {
    T beta;
    T* col = a + k * lda + k;
    tauq[k] = householder(m - k, col, lda, &beta);
    s[k] = beta;
    if (tauq[k] != T(0) && k + 1 < n) {  // rows k..m-1, columns k+1..n-1
      T* c = col + 1;
      for (std::int64_t j = 0; j < n - k - 1; ++j) work[j] = c[j];
      for (std::int64_t i = 1; i < m - k; ++i) {
        const T vi = col[i * lda];
        const T* ci = c + i * lda;
        for (std::int64_t j = 0; j < n - k - 1; ++j) work[j] += vi * ci[j];
      }
      for (std::int64_t j = 0; j < n - k - 1; ++j) c[j] -= tauq[k] * work[j];
      for (std::int64_t i = 1; i < m - k; ++i) {
        const T f = tauq[k] * col[i * lda];
        T* ci = c + i * lda;
        for (std::int64_t j = 0; j < n - k - 1; ++j) ci[j] -= f * work[j];
      }
    }
    if (k + 1 < n) {
      T* row = a + k * lda + k + 1;
      const std::int64_t len = n - k - 1;
      taup[k] = householder(len, row, std::int64_t{1}, &beta);
      rv[k + 1] = beta;
      if (taup[k] != T(0)) {  // rows k+1..m-1 times (I - tau v v^T)
        const T r0 = row[0];
        row[0] = T(1);
        // work = tau A[k+1:, k+1:] v (GEMV), then A[k+1:, k+1:] -= work v^T.
        gemv_run<T>(false, m - k - 1, len, taup[k], a + (k + 1) * lda + k + 1, lda, row, 1, T(0),
                    work, 1, max_threads);
        for (std::int64_t i = k + 1; i < m; ++i) {
          T* ai = a + i * lda + k + 1;
          const T f = work[i - k - 1];
          for (std::int64_t j = 0; j < len; ++j) ai[j] -= f * row[j];
        }
        row[0] = r0;
      }
    } else {
      taup[k] = 0;
    }
  }
  const bool vectors = u != nullptr;
  T* xt = nullptr;
  T* yt = nullptr;
  const std::int64_t ldr = rotation_ld<T>(n);  // off 4 KiB strides (see rotation_ld)
  if (vectors) {
    xt = scope.alloc<T>(static_cast<std::size_t>(n * ldr));
    yt = scope.alloc<T>(static_cast<std::size_t>(n * ldr));
    for (std::int64_t i = 0; i < n * ldr; ++i) xt[i] = yt[i] = T(0);
    for (std::int64_t i = 0; i < n; ++i) xt[i * ldr + i] = yt[i * ldr + i] = T(1);
  }
  const int rot_threads = n >= thresholds::spectral_parallel_min_n ? max_threads : 1;
  if (std::int64_t info = bidiagonal_qr(n, s, rv, xt, yt, ldr, rot_threads)) return info;
  std::int64_t* order = scope.alloc<std::int64_t>(static_cast<std::size_t>(n));
  sorted_order(n, s, std::greater<T>(), order);  // descending
  for (std::int64_t j = 0; j < n; ++j) work[j] = s[order[j]];
  std::copy(work, work + n, s);
  if (!vectors) return 0;
  // U = Q [X 0; 0 I]: X's column j is row order[j] of X^T.
  const std::int64_t uc = full ? m : n;
  set_identity(m, uc, u, ldu);
  gather_transpose(n, n, xt, ldr, order, u, ldu);
  qr_apply(false, m, uc, n, a, lda, tauq, u, ldu, max_threads);
  // V = P Y with P = diag(1, P'), P' from the row reflectors; then V^T.
  T* vmat = scope.alloc<T>(static_cast<std::size_t>(n * n));
  gather_transpose(n, n, yt, ldr, order, vmat, n);
  if (n > 2) {
    T* vr = scope.alloc<T>(static_cast<std::size_t>((n - 1) * (n - 2)));
    row_reflectors_to_columns(n, n - 2, a, lda, vr, n - 2);
    qr_apply(false, n - 1, n, n - 2, vr, n - 2, taup, vmat + n, n, max_threads);
  }
  gather_transpose(n, n, vmat, n, nullptr, vt, ldvt);
  return 0;
}

}  // namespace

template <class T>
std::int64_t svd(std::int64_t m, std::int64_t n, T* a, std::int64_t lda, T* s, T* u,
                 std::int64_t ldu, T* vt, std::int64_t ldvt, bool full, int max_threads) {
  if (m == 0 || n == 0) {
    // Empty: U and V^T are identities of their (full) sizes.
    if (u != nullptr && full) set_identity(m, m, u, ldu);
    if (vt != nullptr && full) set_identity(n, n, vt, ldvt);
    return 0;
  }
  if (m >= n) return svd_tall(m, n, a, lda, s, u, ldu, vt, ldvt, full, max_threads);
  // A^T = U' S V'^T  =>  A = V' S U'^T: U = V'^T^T... computed into the
  // transposes: U' (n x q) goes to vt as its transpose, V'^T (m x m) to u.
  WorkspaceScope scope;
  T* at = scope.alloc<T>(static_cast<std::size_t>(n * m));
  gather_transpose(n, m, a, lda, nullptr, at, m);
  if (u == nullptr) return svd_tall<T>(n, m, at, m, s, nullptr, 0, nullptr, 0, full, max_threads);
  const std::int64_t q = full ? n : m;
  T* u2 = scope.alloc<T>(static_cast<std::size_t>(n * q));
  T* vt2 = scope.alloc<T>(static_cast<std::size_t>(m * m));
  if (std::int64_t info = svd_tall(n, m, at, m, s, u2, q, vt2, m, full, max_threads)) return info;
  gather_transpose(m, m, vt2, m, nullptr, u, ldu);
  gather_transpose(q, n, u2, q, nullptr, vt, ldvt);
  return 0;
}

template std::int64_t svd<float>(std::int64_t, std::int64_t, float*, std::int64_t, float*, float*,
                                 std::int64_t, float*, std::int64_t, bool, int);
template std::int64_t svd<double>(std::int64_t, std::int64_t, double*, std::int64_t, double*,
                                  double*, std::int64_t, double*, std::int64_t, bool, int);

}  // namespace matnet::detail
