// matnet/linalg.hpp - dense linear algebra on matnet's own GEMM: LU,
// Cholesky, QR, symmetric eigensolver, SVD, and what is built from them.
//
// Every function works on a stack of `batch` matrices stored one after
// another, each C-contiguous and row-major (a NumPy array of shape
// (batch, rows, cols)); pass batch = 1 for one matrix. Small matrices
// (order <= 96) run one matrix per thread, larger ones one after another,
// each on every thread (get_num_threads()). T is float or double; all
// arithmetic is done in T.
//
// info (batch entries) reports, per matrix:
//    0    success;
//   -1    the input held NaN or Inf (nothing was computed for it; its
//         outputs are unspecified);
//   k+1   step k failed: the k-th pivot of LU was exactly zero (singular),
//         the k-th leading minor was not positive (Cholesky), or the QR
//         iteration of eigh/svd did not converge.
// Errors: matnet::invalid_argument for negative sizes or null pointers;
// std::bad_alloc when scratch cannot be allocated.
//
// Accuracy (what tests/test_linalg.py checks, LAPACK's test ratios):
// ||A - P L U|| / (n ||A|| eps) < 30, ||B - A X|| / (||A|| ||X|| eps) < 30,
// ||A - Q R|| / (m ||A|| eps) < 30 and ||I - Q^T Q|| / (m eps) < 30,
// ||A - V diag(w) V^T|| / (n ||A|| eps) < 60, ||A - U S V^T|| /
// (max(m, n) ||A|| eps) < 50.
#pragma once

#include <cstdint>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet::linalg {

/// LU with partial pivoting, P A = L U: a (batch x n x n) is overwritten by
/// L (unit diagonal implied, strictly lower) and U; piv (batch x n) gets
/// LAPACK's pivots, 0-based (row i was swapped with row piv[i] at step i).
/// A zero pivot does not stop the factorisation; info reports the first.
template <class T>
MATNET_API void lu_factor(std::int64_t batch, std::int64_t n, T* a, std::int64_t* piv,
                          std::int64_t* info);

/// Solves A X = B: a (batch x n x n) is read only, b (batch x n x nrhs) is
/// overwritten by X. A singular A (info > 0) leaves b unspecified.
template <class T>
MATNET_API void solve(std::int64_t batch, std::int64_t n, std::int64_t nrhs, const T* a, T* b,
                      std::int64_t* info);

/// Determinants through LU: det, and sign and log|det| (slogdet; sign 0
/// and logabsdet -inf for a singular matrix, which is not an error here:
/// info stays 0 for it). a is read only.
template <class T>
MATNET_API void det(std::int64_t batch, std::int64_t n, const T* a, T* det, T* sign, T* logabsdet,
                    std::int64_t* info);

/// Inverses: out (batch x n x n) = A^{-1} (LU, then LAPACK DGETRI's
/// inverse from the factors; small orders solve with I); a is read only.
/// A failed matrix (info != 0) leaves its block of out unspecified.
template <class T>
MATNET_API void inv(std::int64_t batch, std::int64_t n, const T* a, T* out, std::int64_t* info);

/// Cholesky A = L L^T of symmetric positive definite matrices: only the
/// lower triangle of a is read; a is overwritten by L (upper triangle
/// zeroed).
template <class T>
MATNET_API void cholesky(std::int64_t batch, std::int64_t n, T* a, std::int64_t* info);

/// Householder QR, A = Q R: a (batch x m x n) is overwritten by R (its
/// strict lower triangle zeroed). When q is not null it receives the
/// first q_cols (min(m, n) <= q_cols <= m) columns of Q, batch x m x q_cols.
template <class T>
MATNET_API void qr(std::int64_t batch, std::int64_t m, std::int64_t n, T* a, T* q,
                   std::int64_t q_cols, std::int64_t* info);

/// Symmetric eigendecomposition A = V diag(w) V^T: only the lower triangle
/// of a is read (a is not modified); w (batch x n) ascending; v (batch x n x
/// n, eigenvectors in columns) when not null.
template <class T>
MATNET_API void eigh(std::int64_t batch, std::int64_t n, const T* a, T* w, T* v,
                     std::int64_t* info);

/// Singular value decomposition A = U diag(s) V^T (a batch x m x n,
/// destroyed): s (batch x min(m, n)) descending; when u and vt are not
/// null, u batch x m x (full ? m : k) and vt batch x (full ? n : k) x n,
/// k = min(m, n). A^T A is never formed.
template <class T>
MATNET_API void svd(std::int64_t batch, std::int64_t m, std::int64_t n, T* a, T* s, T* u,
                    T* vt, bool full_matrices, std::int64_t* info);

}  // namespace matnet::linalg
