// Triangular solves with many right-hand sides (internal), row-major.
//
// Blocked: the diagonal blocks are solved by plain substitution loops and
// everything off the diagonal is one matnet GEMM per block (gemm_run), so
// almost all of the n^2 * nrhs flops run in the GEMM microkernel.
#pragma once

#include <cstdint>

namespace matnet::detail {

/// B := op(A)^{-1} B with A m x m triangular (lower or upper, unit diagonal
/// or not; op(A) = A, or A^T when trans), B m x n. Only the triangle named
/// is read. Row-major, leading dimensions lda and ldb. On up to max_threads.
template <class T>
void trsm_left(bool lower, bool trans, bool unit, std::int64_t m, std::int64_t n, const T* a,
               std::int64_t lda, T* b, std::int64_t ldb, int max_threads);

/// B := B op(A)^{-1} with A n x n triangular (lower or upper, unit diagonal
/// or not; op(A) = A, or A^T when trans; only the triangle named is read),
/// B m x n: the solve X op(A) = B (X L^T = B is a Cholesky panel). Row-major.
template <class T>
void trsm_right(bool lower, bool trans, bool unit, std::int64_t m, std::int64_t n, const T* a,
                std::int64_t lda, T* b, std::int64_t ldb, int max_threads);

}  // namespace matnet::detail
