// Householder tridiagonalisation of a symmetric matrix (see factor.hpp).
//
// Step k: reflector v from row k (contiguous), p = tau A22 v (a GEMV),
// w = p - (tau/2)(p.v) v, A22 -= v w^T + w v^T. Done step by step
// (DSYTD2) that is two passes over A22 per step, ~4/3 n^3 level-2 flops.
//
// Blocked (LAPACK's DSYTRD/DLATRD): within a panel of nb steps the
// rank-2 updates are only recorded (V, W), row k is brought up to date
// just before its reflector is formed, and A22 v is corrected by the
// recorded updates (V (W^T v) + W (V^T v)). After the panel the trailing
// matrix takes all of them at once, A22 -= V^T W + W^T V: one GEMM.
// Half the flops move to GEMM, and the GEMV reads A22 once per step. The
// GEMV runs on one thread: split, it would cost a fork/join per step
// (~500 at n = 512), and on a loaded machine every fork/join waits for a
// descheduled thread; the GEMMs take the thread budget.
#include <algorithm>
#include <cstdint>

#include "blas2/dot.hpp"
#include "blas2/gemv_driver.hpp"
#include "blas3/gemm_driver.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "linalg/factor.hpp"
#include "runtime/registry.hpp"

namespace matnet::detail {

namespace {

/// One unblocked step k of the reduction (rank-2 update of A22 included),
/// on the calling thread. p: n elements of scratch.
template <class T>
void reduce_step(std::int64_t n, std::int64_t k, T* a, std::int64_t lda, T* d, T* e, T* tau,
                 T* p) {
  const std::int64_t r = n - k - 1;
  T* x = a + k * lda + k + 1;
  T beta;
  tau[k] = householder(r, x, std::int64_t{1}, &beta);
  d[k] = a[k * lda + k];
  e[k] = beta;
  const T t = tau[k];
  if (t == T(0)) return;
  const T x0 = x[0];
  x[0] = T(1);  // v = x[0:r] with its unit entry, for the loops below
  T* a22 = a + (k + 1) * lda + k + 1;
  // p = tau A22 v, by the registry's kernel itself: gemv_run's scope and
  // split measured ~0.5 us of a 32 x 32 eigh's ~38 (with forming Q's).
  kernels<T>().gemv->n(r, r, t, a22, lda, x, T(0), p);
  const T alpha = T(-0.5) * t * dot(r, p, x);
  for (std::int64_t i = 0; i < r; ++i) p[i] += alpha * x[i];
  for (std::int64_t i = 0; i < r; ++i) {
    T* ai = a22 + i * lda;
    const T vi = x[i], wi = p[i];
    for (std::int64_t j = 0; j < r; ++j) ai[j] -= vi * p[j] + wi * x[j];
  }
  x[0] = x0;
}

/// Steps k0 .. k0 + b - 1 as one panel, then the trailing update by GEMM.
/// w: b x n scratch (row j: w_j of step k0 + j, by global column index);
/// vwv: 3b x n scratch.
/// Leaves the unit entries of the panel's reflectors in a (a[k][k + 1] = 1;
/// nothing reads them later).
template <class T>
void reduce_panel(std::int64_t n, std::int64_t k0, std::int64_t b, T* a, std::int64_t lda, T* d,
                  T* e, T* tau, T* w, std::int64_t ldw, T* vwv, int max_threads) {
  for (std::int64_t i = 0; i < b; ++i) {
    const std::int64_t k = k0 + i;
    T* ak = a + k * lda;
    // Row k from column k: A - sum_j (v_j w_j^T + w_j v_j^T), j < i.
    for (std::int64_t j = 0; j < i; ++j) {
      const T* vj = a + (k0 + j) * lda;  // v_j by global column (unit entry stored)
      const T* wj = w + j * ldw;
      const T f = wj[k], g = vj[k];
      for (std::int64_t c = k; c < n; ++c) ak[c] -= vj[c] * f + wj[c] * g;
    }
    const std::int64_t r = n - k - 1;
    T* v = ak + k + 1;
    T beta;
    tau[k] = householder(r, v, std::int64_t{1}, &beta);
    d[k] = ak[k];
    e[k] = beta;
    v[0] = T(1);
    const T t = tau[k];
    T* p = w + i * ldw + k + 1;
    if (t == T(0)) {  // H = I: w_i = 0 keeps the recorded updates exact
      std::fill(p, p + r, T(0));
      continue;
    }
    // p = A22 v - sum_j (v_j (w_j . v) + w_j (v_j . v)) over columns k + 1 ..
    gemv_run<T>(false, r, r, T(1), a + (k + 1) * lda + k + 1, lda, v, 1, T(0), p, 1, 1);
    for (std::int64_t j = 0; j < i; ++j) {
      const T* vj = a + (k0 + j) * lda + k + 1;
      const T* wj = w + j * ldw + k + 1;
      const T sw = dot(r, wj, v), sv = dot(r, vj, v);
      for (std::int64_t c = 0; c < r; ++c) p[c] -= vj[c] * sw + wj[c] * sv;
    }
    for (std::int64_t c = 0; c < r; ++c) p[c] *= t;
    const T alpha = T(-0.5) * t * dot(r, p, v);
    for (std::int64_t c = 0; c < r; ++c) p[c] += alpha * v[c];
  }
  // A22 -= V^T W + W^T V = [V; W]^T [W; V] on the trailing rows/columns
  // k0 + b ..: one GEMM with k = 2b (one fork/join per panel), its
  // operands rows 0 .. 2b and b .. 3b of one copy [V; W; V], m wide.
  // (Recording W in place there, n wide, put the operands' rows 8 KiB
  // apart at n = 1024: eigvalsh there measured ~1.74x NumPy against ~1.6x,
  // 1 thread, loaded machine.)
  const std::int64_t c0 = k0 + b, m = n - c0;
  for (std::int64_t j = 0; j < b; ++j) {
    const T* vj = a + (k0 + j) * lda + c0;
    const T* wj = w + j * ldw + c0;
    std::copy(vj, vj + m, vwv + j * m);
    std::copy(wj, wj + m, vwv + (b + j) * m);
  }
  std::copy(vwv, vwv + b * m, vwv + 2 * b * m);
  gemm_run<T>(true, false, m, m, 2 * b, T(-1), vwv, m, vwv + b * m, m, T(1), a + c0 * lda + c0,
              lda, nullptr, max_threads);
}

}  // namespace

template <class T>
void tridiagonalize(std::int64_t n, T* a, std::int64_t lda, T* d, T* e, T* tau,
                    int max_threads) {
  if (n == 0) return;
  WorkspaceScope scope;
  const std::int64_t nb = thresholds::tridiagonal_block;
  std::int64_t k = 0;
  if (n >= thresholds::tridiagonal_blocked_min_n) {
    T* w = scope.alloc<T>(static_cast<std::size_t>(nb * n));
    T* vwv = scope.alloc<T>(static_cast<std::size_t>(3 * nb * n));
    // Panels while the trailing matrix is big enough for its GEMMs.
    for (; n - k - nb >= thresholds::tridiagonal_blocked_min_n / 2; k += nb)
      reduce_panel(n, k, nb, a, lda, d, e, tau, w, n, vwv, max_threads);
  }
  T* p = scope.alloc<T>(static_cast<std::size_t>(n));
  for (; k + 2 < n; ++k) reduce_step(n, k, a, lda, d, e, tau, p);
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * lda + n - 2];
    e[n - 2] = a[(n - 2) * lda + n - 1];
    tau[n - 2] = 0;
  }
  d[n - 1] = a[(n - 1) * lda + n - 1];
}

template void tridiagonalize<float>(std::int64_t, float*, std::int64_t, float*, float*, float*,
                                    int);
template void tridiagonalize<double>(std::int64_t, double*, std::int64_t, double*, double*,
                                     double*, int);

}  // namespace matnet::detail
