// Blocked triangular solves (see trsm.hpp).
//
// Left side, op(A) lower (A lower, or A upper transposed): forward over
// blocks of nb rows, X_i = op(A)_ii^{-1} B_i, then B_{i+1:} -= op(A)_{i+1:,i} X_i
// as one GEMM. Upper: the same backwards. The diagonal blocks are solved a
// row of B at a time (rows are contiguous in row-major storage, so each
// step is an axpy over n columns), split over threads by columns of B.
// Right side (X op(A) = B): the same over blocks of columns; the diagonal
// blocks again blocked (GEMMs), down to narrow ones solved on transposed
// tiles of B's rows, split over threads by rows of B.
#include "blas3/trsm.hpp"

#include <algorithm>
#include <cmath>

#include "blas2/dot.hpp"
#include "blas3/gemm_driver.hpp"
#include "core/parallel.hpp"
#include "core/scalar.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"

namespace matnet::detail {

namespace {

/// op(A)(i, j) for a left solve.
template <class T>
inline T op_at(const T* a, std::int64_t lda, bool trans, std::int64_t i, std::int64_t j) {
  return trans ? a[j * lda + i] : a[i * lda + j];
}

/// Unblocked: B[:, c0:c1] := op(A)^{-1} B[:, c0:c1], op(A) m x m, lower
/// (forward) or upper (backward) as op(A) is.
template <class T>
void trsm_left_unblocked(bool op_lower, bool trans, bool unit, std::int64_t m, const T* a,
                         std::int64_t lda, T* b, std::int64_t ldb, std::int64_t c0,
                         std::int64_t c1) {
  if (c1 - c0 == 1 && ldb == 1 && !trans) {
    // One contiguous right-hand side (a solve with a vector): dot products
    // along the rows of A instead of length-1 axpys.
    for (std::int64_t s = 0; s < m; ++s) {
      const std::int64_t i = op_lower ? s : m - 1 - s;
      const std::int64_t k0 = op_lower ? 0 : i + 1, len = op_lower ? i : m - i - 1;
      const T v = b[i] - dot(len, a + i * lda + k0, b + k0);
      b[i] = unit ? v : v / a[i * lda + i];
    }
    return;
  }
  for (std::int64_t s = 0; s < m; ++s) {
    const std::int64_t i = op_lower ? s : m - 1 - s;
    T* bi = b + i * ldb;
    const std::int64_t k0 = op_lower ? 0 : i + 1, k1 = op_lower ? i : m;
    for (std::int64_t k = k0; k < k1; ++k) {
      const T f = op_at(a, lda, trans, i, k);
      if (f == T(0)) continue;
      const T* bk = b + k * ldb;
      for (std::int64_t j = c0; j < c1; ++j) bi[j] -= f * bk[j];
    }
    if (!unit) {
      // One reciprocal, then multiplies, unless 1/d overflows (a subnormal
      // diagonal): then divide, as LAPACK's DGETF2 does below sfmin.
      const T d = op_at(a, lda, trans, i, i);
      if (!reciprocal_overflows(d)) {
        const T r = T(1) / d;
        for (std::int64_t j = c0; j < c1; ++j) bi[j] *= r;
      } else {
        for (std::int64_t j = c0; j < c1; ++j) bi[j] /= d;
      }
    }
  }
}

}  // namespace

template <class T>
void trsm_left(bool lower, bool trans, bool unit, std::int64_t m, std::int64_t n, const T* a,
               std::int64_t lda, T* b, std::int64_t ldb, int max_threads) {
  if (m <= 0 || n <= 0) return;
  const bool op_lower = lower != trans;
  const std::int64_t nb = thresholds::trsm_block;
  auto diag_solve = [&](std::int64_t i0, std::int64_t w) {
    const T* aii = a + i0 * lda + i0;
    T* bi = b + i0 * ldb;
    const int nt = threads_for(w * w * n, max_threads);
    parallel_split(n, nt, 16, [&](std::int64_t c0, std::int64_t c1) {
      trsm_left_unblocked(op_lower, trans, unit, w, aii, lda, bi, ldb, c0, c1);
    });
  };
  if (m <= nb) {
    diag_solve(0, m);
    return;
  }
  for (std::int64_t s = 0; s < m; s += nb) {
    const std::int64_t w = std::min(nb, m - s);
    // Block rows [i0, i0 + w) of X, in solve order.
    const std::int64_t i0 = op_lower ? s : m - s - w;
    diag_solve(i0, w);
    // The rows still to solve: below (lower) or above (upper) this block.
    const std::int64_t r0 = op_lower ? i0 + w : 0, rows = op_lower ? m - i0 - w : i0;
    if (rows == 0) continue;
    // B[r0:r0+rows] -= op(A)[r0:r0+rows, i0:i0+w] * X[i0:i0+w].
    const T* ablk = trans ? a + i0 * lda + r0 : a + r0 * lda + i0;
    gemm_run<T>(trans, false, rows, n, w, T(-1), ablk, lda, b + i0 * ldb, ldb, T(1),
                b + r0 * ldb, ldb, nullptr, max_threads);
  }
}

namespace {

/// Where op(A)[i0:, j0:] starts in A (transposed: A[j0:, i0:]).
template <class T>
inline const T* op_block(const T* a, std::int64_t lda, bool trans, std::int64_t i0,
                         std::int64_t j0) {
  return trans ? a + j0 * lda + i0 : a + i0 * lda + j0;
}

/// Rows of B per transposed tile of trsm_right's substitution.
constexpr std::int64_t right_tile_rows = 128;

/// X op(A) = B for the w x w triangular A and m rows of B, on the calling
/// thread (op_lower: op(A) is lower triangular). Narrow blocks (up to thresholds::trsm_right_substitution_cols)
/// by substitution on tiles of right_tile_rows rows of B transposed
/// (op(A)^T X^T = B^T): a row of B is only w long, so substitution along it
/// would be axpys of ~w/2 elements; transposed, every axpy runs over the
/// tile's rows, as in trsm_left. Wider blocks as four column blocks in
/// solve order with GEMM updates in between: the substitution loops are
/// built for the baseline ISA (no FMA, 2 doubles a step; ~2 GFLOP/s), so
/// the less of the work they do the better. tile: right_tile_rows * w.
template <class T>
void trsm_right_rows(bool op_lower, bool trans, bool unit, std::int64_t m, std::int64_t w,
                     const T* a, std::int64_t lda, T* b, std::int64_t ldb, T* tile) {
  if (w <= thresholds::trsm_right_substitution_cols) {
    for (std::int64_t c0 = 0; c0 < m; c0 += right_tile_rows) {
      const std::int64_t rows = std::min(right_tile_rows, m - c0);
      T* bc = b + c0 * ldb;
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < w; ++j) tile[j * rows + r] = bc[r * ldb + j];
      trsm_left_unblocked(!op_lower, !trans, unit, w, a, lda, tile, rows, 0, rows);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < w; ++j) bc[r * ldb + j] = tile[j * rows + r];
    }
    return;
  }
  const std::int64_t nb = (w + 3) / 4;
  for (std::int64_t s = 0; s < w; s += nb) {
    const std::int64_t v = std::min(nb, w - s);
    const std::int64_t j0 = op_lower ? w - s - v : s;
    trsm_right_rows(op_lower, trans, unit, m, v, a + j0 * lda + j0, lda, b + j0, ldb, tile);
    const std::int64_t c0 = op_lower ? 0 : j0 + v, cols = op_lower ? j0 : w - j0 - v;
    if (cols > 0)
      gemm_run<T>(false, trans, m, cols, v, T(-1), b + j0, ldb, op_block(a, lda, trans, j0, c0),
                  lda, T(1), b + c0, ldb, nullptr, 1);
  }
}

}  // namespace

template <class T>
void trsm_right(bool lower, bool trans, bool unit, std::int64_t m, std::int64_t n, const T* a,
                std::int64_t lda, T* b, std::int64_t ldb, int max_threads) {
  if (m <= 0 || n <= 0) return;
  const bool op_lower = lower != trans;
  const std::int64_t nb = thresholds::trsm_block;
  WorkspaceScope scope;
  const std::int64_t tile = std::min(nb, n) * right_tile_rows;
  T* tiles = scope.alloc<T>(static_cast<std::size_t>(tile * parts_for(m, max_threads)));
  for (std::int64_t s = 0; s < n; s += nb) {
    const std::int64_t w = std::min(nb, n - s);
    // Block columns [j0, j0 + w) of X, in solve order: forward for upper
    // op(A), backward for lower.
    const std::int64_t j0 = op_lower ? n - s - w : s;
    // The rows of B are independent: one fork/join per block, each thread
    // solving its rows through the whole block (its GEMMs included).
    const int nt = threads_for(w * w * m, max_threads);
    parallel_parts(m, nt, 1, [&](int part, std::int64_t r0, std::int64_t r1) {
      trsm_right_rows(op_lower, trans, unit, r1 - r0, w, a + j0 * lda + j0, lda,
                      b + r0 * ldb + j0, ldb, tiles + part * tile);
    });
    // The columns still to solve: left (lower) or right (upper) of this block.
    const std::int64_t c0 = op_lower ? 0 : j0 + w, cols = op_lower ? j0 : n - j0 - w;
    if (cols == 0) continue;
    // B[:, c0:c0+cols] -= X[:, j0:j0+w] op(A)[j0:j0+w, c0:c0+cols].
    gemm_run<T>(false, trans, m, cols, w, T(-1), b + j0, ldb, op_block(a, lda, trans, j0, c0),
                lda, T(1), b + c0, ldb, nullptr, max_threads);
  }
}

template void trsm_left<float>(bool, bool, bool, std::int64_t, std::int64_t, const float*,
                               std::int64_t, float*, std::int64_t, int);
template void trsm_left<double>(bool, bool, bool, std::int64_t, std::int64_t, const double*,
                                std::int64_t, double*, std::int64_t, int);
template void trsm_right<float>(bool, bool, bool, std::int64_t, std::int64_t, const float*,
                                std::int64_t, float*, std::int64_t, int);
template void trsm_right<double>(bool, bool, bool, std::int64_t, std::int64_t, const double*,
                                 std::int64_t, double*, std::int64_t, int);

}  // namespace matnet::detail
