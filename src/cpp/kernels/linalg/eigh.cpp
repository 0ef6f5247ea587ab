// Symmetric eigensolver (see factor.hpp).
//
// 1. Householder tridiagonalisation A = Q T Q^T on the full symmetric
//    matrix (its lower triangle is mirrored first). Step k: reflector from
//    row k (contiguous), p = tau A22 v (row dot products), w = p -
//    (tau/2)(p.v) v, A22 -= v w^T + w v^T. Level-2 (DSYTD2); ~4/3 n^3 flops.
// 2. Implicit QL with Wilkinson shifts on T (the EISPACK/LAPACK DSTEQR
//    iteration), the plane rotations accumulated into Z^T, whose rows
//    they combine (contiguous in row-major storage, so each rotation is
//    two streaming row updates). Backward stable: ~n eps ||A|| errors.
// 3. Eigenvectors V = Q Z, Q applied as blocks of reflectors (compact WY,
//    two GEMMs per block, householder.cpp) to Z.
// Chosen for being simple and backward stable; divide and conquer would
// be faster for the vectors at large n (the rotations are ~6 n^3 flops
// of streaming work) and is the obvious next step.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "blas2/dot.hpp"
#include "blas2/gemv_driver.hpp"
#include "core/workspace.hpp"
#include "linalg/factor.hpp"
#include "linalg/rotations.hpp"

namespace matnet::detail {

namespace {

/// Implicit QL on the tridiagonal (d, e), e[i] coupling d[i] and d[i+1].
/// When zt is not null its rows are rotated along (zt n x n, rows are
/// eigenvector components). Returns 0 or l + 1 if eigenvalue l did not
/// converge within 60 sweeps.
template <class T>
std::int64_t tridiagonal_ql(std::int64_t n, T* d, T* e, T* zt, std::int64_t ldz) {
  const T eps = std::numeric_limits<T>::epsilon();
  if (n > 0) e[n - 1] = 0;
  RowRotations<T> rot(zt, n, n, ldz);  // applied in batches, at the latest on return
  for (std::int64_t l = 0; l < n; ++l) {
    int iter = 0;
    std::int64_t m;
    do {
      for (m = l; m < n - 1; ++m) {
        const T dd = std::abs(d[m]) + std::abs(d[m + 1]);
        if (std::abs(e[m]) <= eps * dd) break;
      }
      if (m != l) {
        if (iter++ == 60) return l + 1;
        T g = (d[l + 1] - d[l]) / (T(2) * e[l]);
        T r = fast_hypot(g, T(1));
        g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
        T s = 1, c = 1, p = 0;
        std::int64_t i;
        for (i = m - 1; i >= l; --i) {
          T f = s * e[i];
          const T b = c * e[i];
          e[i + 1] = (r = fast_hypot(f, g));
          if (r == T(0)) {  // underflow: deflate and restart
            d[i + 1] -= p;
            e[m] = 0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + T(2) * c * b;
          d[i + 1] = g + (p = s * r);
          g = c * r - b;
          // (z_{i+1}, z_i) := (c z_{i+1} + s z_i, c z_i - s z_{i+1})
          rot.rotate(i + 1, i, c, s);
        }
        if (r == T(0) && i >= l) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m != l);
  }
  return 0;
}

}  // namespace

template <class T>
std::int64_t eigh(std::int64_t n, T* a, std::int64_t lda, T* w, T* v, std::int64_t ldv,
                  int max_threads) {
  if (n == 0) return 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i + 1; j < n; ++j) a[i * lda + j] = a[j * lda + i];
  WorkspaceScope scope;
  T* d = scope.alloc<T>(static_cast<std::size_t>(n));
  T* e = scope.alloc<T>(static_cast<std::size_t>(n));
  T* tau = scope.alloc<T>(static_cast<std::size_t>(n));
  T* p = scope.alloc<T>(static_cast<std::size_t>(n));
  // Tridiagonalisation; reflector k lives in row k from column k + 1.
  for (std::int64_t k = 0; k + 2 < n; ++k) {
    const std::int64_t r = n - k - 1;
    T* x = a + k * lda + k + 1;
    T beta;
    tau[k] = householder(r, x, std::int64_t{1}, &beta);
    d[k] = a[k * lda + k];
    e[k] = beta;
    const T t = tau[k];
    if (t == T(0)) continue;
    const T x0 = x[0];
    x[0] = T(1);  // v = x[0:r] with its unit entry, for the loops below
    T* a22 = a + (k + 1) * lda + k + 1;
    gemv_run<T>(false, r, r, t, a22, lda, x, 1, T(0), p, 1, max_threads);  // p = tau A22 v
    const T pv = dot(r, p, x);
    const T alpha = T(-0.5) * t * pv;
    for (std::int64_t i = 0; i < r; ++i) p[i] += alpha * x[i];
    for (std::int64_t i = 0; i < r; ++i) {
      T* ai = a22 + i * lda;
      const T vi = x[i], wi = p[i];
      for (std::int64_t j = 0; j < r; ++j) ai[j] -= vi * p[j] + wi * x[j];
    }
    x[0] = x0;
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * lda + n - 2];
    e[n - 2] = a[(n - 2) * lda + n - 1];
    tau[n - 2] = 0;
  }
  d[n - 1] = a[(n - 1) * lda + n - 1];

  T* zt = nullptr;
  if (v != nullptr) {
    zt = scope.alloc<T>(static_cast<std::size_t>(n * n));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) zt[i * n + j] = i == j ? T(1) : T(0);
  }
  if (std::int64_t info = tridiagonal_ql(n, d, e, zt, n)) return info;

  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t x, std::int64_t y) { return d[x] < d[y]; });
  for (std::int64_t j = 0; j < n; ++j) w[j] = d[order[j]];
  if (v == nullptr) return 0;
  // V = Q Z: Z (columns = eigenvectors, sorted) then Q's reflectors.
  for (std::int64_t j = 0; j < n; ++j) {
    const T* zj = zt + order[j] * n;
    for (std::int64_t i = 0; i < n; ++i) v[i * ldv + j] = zj[i];
  }
  if (n > 2) {
    T* vr = scope.alloc<T>(static_cast<std::size_t>((n - 1) * (n - 2)));
    row_reflectors_to_columns(n, n - 2, a, lda, vr, n - 2);
    qr_apply(false, n - 1, n, n - 2, vr, n - 2, tau, v + ldv, ldv, max_threads);
  }
  return 0;
}

template std::int64_t eigh<float>(std::int64_t, float*, std::int64_t, float*, float*,
                                  std::int64_t, int);
template std::int64_t eigh<double>(std::int64_t, double*, std::int64_t, double*, double*,
                                   std::int64_t, int);

}  // namespace matnet::detail
