// The factorisations of matnet's linear algebra, one matrix at a time
// (internal). Row-major throughout: element (i, j) of X is x[i * ldx + j].
//
// Each routine is told its thread budget (max_threads) and spends it only
// in the GEMM/TRSM calls of its blocked updates; the unblocked loops run
// on the calling thread. The stacked drivers (batched.cpp) call these
// once per matrix, on one thread per matrix for small orders.
//
// Return values: 0 on success; k + 1 when step k failed (a zero pivot of
// LU, a non-positive pivot of Cholesky, an eigen/singular value that did
// not converge). None of them throws except std::bad_alloc for scratch.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace matnet::detail {

/// LU with partial pivoting, P A = L U, A n x n overwritten by L (unit,
/// strictly lower) and U. piv[i] is the row swapped with row i at step i
/// (LAPACK's IPIV, 0-based). A zero pivot does not stop the factorisation
/// (U is then singular); the first one is reported.
template <class T>
std::int64_t lu_factor(std::int64_t n, T* a, std::int64_t lda, std::int64_t* piv,
                       int max_threads);

/// B := A^{-1} B from lu_factor's output; B n x nrhs.
template <class T>
void lu_solve(std::int64_t n, std::int64_t nrhs, const T* lu, std::int64_t lda,
              const std::int64_t* piv, T* b, std::int64_t ldb, int max_threads);

/// A^{-1} into x (n x n) from lu_factor's output (lu and piv, only read;
/// U non-singular), as LAPACK's DGETRI: U^{-1}, then X L = U^{-1}, then
/// the interchanges. 4/3 n^3 flops, where lu_solve with B = I costs 2 n^3.
template <class T>
void lu_inverse(std::int64_t n, const T* lu, std::int64_t ldlu, const std::int64_t* piv, T* x,
                std::int64_t ldx, int max_threads);

/// lu_factor then lu_solve (B := A^{-1} B, unless A is singular), with the
/// elimination of B folded into the factorisation for small n.
template <class T>
std::int64_t lu_factor_solve(std::int64_t n, std::int64_t nrhs, T* a, std::int64_t lda,
                             std::int64_t* piv, T* b, std::int64_t ldb, int max_threads);

/// Cholesky A = L L^T of a symmetric positive definite A (lower triangle
/// read). A is overwritten by L, its strict upper triangle zeroed. Stops at
/// the first pivot that is not positive (or NaN) and reports it.
template <class T>
std::int64_t cholesky_factor(std::int64_t n, T* a, std::int64_t lda, int max_threads);

/// Householder reflector (LAPACK's DLARFG): for the n-vector x (stride
/// incx; x[0] = alpha) finds tau and v (v[0] = 1) with
/// (I - tau v v^T) x = (beta, 0, ..., 0). On return x[1:] holds v[1:]
/// and *beta is set; returns tau (0 when x[1:] is already zero).
template <class T>
T householder(std::int64_t n, T* x, std::int64_t incx, T* beta);

/// Householder QR, A = Q R, A m x n: R in the upper triangle, the
/// reflectors (unit leading entry implied) below the diagonal, tau of
/// length min(m, n). Blocked, compact WY (Schreiber-Van Loan): the
/// trailing update of each panel is two GEMMs.
template <class T>
void qr_factor(std::int64_t m, std::int64_t n, T* a, std::int64_t lda, T* tau,
               int max_threads);

/// C := Q C (trans false) or Q^T C, Q = H_0 H_1 ... H_{k-1} from k
/// reflectors stored as qr_factor leaves them in v (m x k; only the strict
/// lower triangle is read); C m x nc.
template <class T>
void qr_apply(bool trans, std::int64_t m, std::int64_t nc, std::int64_t k, const T* v,
              std::int64_t ldv, const T* tau, T* c, std::int64_t ldc, int max_threads);

/// The first q columns of Q (m x q, k <= q <= m) into out.
template <class T>
void qr_form_q(std::int64_t m, std::int64_t q, std::int64_t k, const T* v, std::int64_t ldv,
               const T* tau, T* out, std::int64_t ldo, int max_threads);

/// Columns [c0, c1) of that Q (m rows, c1 <= m) into the same columns of
/// out, the rest of out untouched: parts of Q formed independently.
template <class T>
void qr_form_q_columns(std::int64_t m, std::int64_t c0, std::int64_t c1, std::int64_t k,
                       const T* v, std::int64_t ldv, const T* tau, T* out, std::int64_t ldo,
                       int max_threads);

/// Reflectors stored along rows (reflector r in row r of a, its unit
/// entry at column r + 1, the rest right of it, as the tridiagonal and
/// bidiagonal reductions leave them) copied into qr_factor's column layout:
/// out is (n - 1) x k, column r = reflector r on indices 1..n-1.
template <class T>
void row_reflectors_to_columns(std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
                               T* out, std::int64_t ldo);

/// Householder tridiagonalisation Q^T A Q = T of the symmetric A (full
/// storage: both triangles read and kept consistent). d (n) and e (n - 1,
/// e[i] couples d[i] and d[i + 1]) receive T; reflector k (k < n - 2) is
/// left in row k of a from column k + 2 (its unit entry at column k + 1 is
/// implied), with tau[k]; tau[n - 2] = 0. Blocked from
/// thresholds::tridiagonal_blocked_min_n on.
template <class T>
void tridiagonalize(std::int64_t n, T* a, std::int64_t lda, T* d, T* e, T* tau,
                    int max_threads);

/// The factor eigh scales A by before reducing it, from its largest
/// |entry| amax (LAPACK's DSYEV does the same): 1 unless amax is outside
/// [sqrt(min / eps), sqrt(max eps)]. Below, the QL iteration's convergence
/// test eps (|d_m| + |d_m+1|) underflows (a matrix of subnormals never
/// converged); above, squares overflow. Eigenvectors are unchanged,
/// eigenvalues divided by it on return. static: the ISA-specific kernels
/// (small_tridiag_*.cpp) compile it too, each TU its own copy.
template <class T>
static inline T eigh_scale(T amax) {
  const T small = std::numeric_limits<T>::min() / std::numeric_limits<T>::epsilon();
  const T rmin = std::sqrt(small), rmax = std::sqrt(T(1) / small);
  if (amax > T(0) && amax < rmin) return rmin / amax;
  if (amax > rmax) return rmax / amax;
  return T(1);
}

/// Eigenvalues (ascending, into w) and, when v is not null, orthonormal
/// eigenvectors (columns of v, n x n) of the symmetric A, whose lower
/// triangle is read; A is destroyed. Householder tridiagonalisation, then
/// implicit QL with Wilkinson shifts.
template <class T>
std::int64_t eigh(std::int64_t n, T* a, std::int64_t lda, T* w, T* v, std::int64_t ldv,
                  int max_threads);

/// eigh of count matrices of order n stored one after another (a + i n^2,
/// w + i n, v + i n^2 or v null: no vectors; a is only read), on one thread, info[i] as
/// eigh's return value; matrices with skip[i] set (skip may be null) are
/// left alone. Up to thresholds::eigh_small_max_n the QL sweeps of four
/// matrices at a time run interleaved, each sqrt-divide chain in the
/// others' latency.
template <class T>
void eigh_range(std::int64_t n, std::int64_t count, const T* a, T* w, T* v, std::int64_t* info,
                const bool* skip);

/// eigh of a copy of a (n x n, contiguous, lower triangle read), so that
/// the caller's matrix is only read: the copy comes from the workspace.
template <class T>
std::int64_t eigh_of_copy(std::int64_t n, const T* a, T* w, T* v, int max_threads);

/// Singular values (descending, min(m, n) of them) and, when u and vt are
/// not null, the singular vectors: A = U diag(s) V^T with u m x (m if full
/// else min(m, n)) and vt (n if full else min(m, n)) x n. A is destroyed.
/// Householder bidiagonalisation, then implicit-shift QR on the bidiagonal
/// (Golub-Kahan-Reinsch).
template <class T>
std::int64_t svd(std::int64_t m, std::int64_t n, T* a, std::int64_t lda, T* s, T* u,
                 std::int64_t ldu, T* vt, std::int64_t ldvt, bool full, int max_threads);

}  // namespace matnet::detail
