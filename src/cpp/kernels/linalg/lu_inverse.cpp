// The inverse from the LU factors, as LAPACK's DGETRI (see factor.hpp).
//
// P A = L U gives A^{-1} = U^{-1} L^{-1} P: invert U (recursive halving,
// n^3/3 flops), solve X L = U^{-1} for X (a right-side TRSM with the unit
// lower L, n^3 flops, all but its diagonal blocks in GEMMs), then apply P
// on the right: the row interchanges of the factorisation as column
// interchanges of X, in reverse order. 4/3 n^3 after the 2/3 n^3 of the
// LU, where the solve with B = I (what NumPy's inv runs) costs 2 n^3.
//
// Accuracy (Du Croz & Higham, "Stability of methods for matrix inversion",
// IMA J. Numer. Anal. 1992): this is their method B, whose computed X has
// a small left residual, |X A - I| <= c_n u |X| |L| |U|; the right
// residual A X - I of a solve with B = I is the one it does not bound.
#include <algorithm>
#include <utility>

#include "blas3/trsm.hpp"
#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "linalg/factor.hpp"

namespace matnet::detail {

namespace {

/// U := U^{-1} in place for a small upper triangular U, a row at a time
/// from the bottom (rows below are already inverted): row j of U^{-1} is
/// -(1 / u_jj) * u_{j,j+1:} U22^{-1}, accumulated over the inverted rows l
/// in descending order so that each u_jl is read before its slot is written.
template <class T>
void invert_upper_unblocked(std::int64_t n, T* u, std::int64_t ldu) {
  for (std::int64_t j = n - 1; j >= 0; --j) {
    T* x = u + j * ldu;
    for (std::int64_t l = n - 1; l > j; --l) {
      const T c = x[l];
      const T* xl = u + l * ldu;
      x[l] = c * xl[l];
      if (c == T(0)) continue;
      for (std::int64_t k = l + 1; k < n; ++k) x[k] += c * xl[k];
    }
    const T r = T(1) / x[j];
    x[j] = r;
    for (std::int64_t k = j + 1; k < n; ++k) x[k] *= -r;
  }
}

/// U := U^{-1} in place, U n x n upper triangular with a non-zero diagonal
/// (the strict lower triangle is not touched). Recursive halving:
/// [U11 U12; 0 U22]^{-1} = [U11^{-1}, -U11^{-1} U12 U22^{-1}; 0, U22^{-1}],
/// the off-diagonal block by two TRSMs with the blocks not yet inverted
/// (so every flop but the substitutions runs in the GEMMs of trsm_left and
/// trsm_right), then both halves recursively.
template <class T>
void invert_upper(std::int64_t n, T* u, std::int64_t ldu, int max_threads) {
  if (n <= thresholds::trtri_base_n) {
    invert_upper_unblocked(n, u, ldu);
    return;
  }
  // The first half a multiple of 8 rows (GEMM-friendly k).
  const std::int64_t h = (n / 2) / 8 * 8, h2 = n - h;
  T* u12 = u + h;
  T* u22 = u + h * ldu + h;
  trsm_left<T>(false, false, false, h, h2, u, ldu, u12, ldu, max_threads);
  trsm_right<T>(false, false, false, h, h2, u22, ldu, u12, ldu, max_threads);
  for (std::int64_t i = 0; i < h; ++i)
    for (std::int64_t k = 0; k < h2; ++k) u12[i * ldu + k] = -u12[i * ldu + k];
  invert_upper(h, u, ldu, max_threads);
  invert_upper(h2, u22, ldu, max_threads);
}

}  // namespace

template <class T>
void lu_inverse(std::int64_t n, const T* lu, std::int64_t ldlu, const std::int64_t* piv, T* x,
                std::int64_t ldx, int max_threads) {
  if (n <= 0) return;
  // The O(n^2) passes split over threads too: at n = 2048 each is a few ms
  // of a ~300 ms inverse on 2 threads.
  const int nt = threads_for(n * n, max_threads);
  parallel_split(n, nt, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t i = r0; i < r1; ++i) {
      std::fill(x + i * ldx, x + i * ldx + i, T(0));
      std::copy(lu + i * ldlu + i, lu + i * ldlu + n, x + i * ldx + i);
    }
  });
  invert_upper(n, x, ldx, max_threads);
  // X L = U^{-1}: X's strict lower triangle starts as U^{-1}'s zeros.
  trsm_right<T>(true, false, true, n, n, lu, ldlu, x, ldx, max_threads);
  // X := X P, P^T = the swaps (i, piv[i]) in order: a row of X at a time,
  // the swaps undone last to first.
  parallel_split(n, nt, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      T* xr = x + r * ldx;
      for (std::int64_t j = n - 1; j >= 0; --j)
        if (piv[j] != j) std::swap(xr[j], xr[piv[j]]);
    }
  });
}

template void lu_inverse<float>(std::int64_t, const float*, std::int64_t, const std::int64_t*,
                                float*, std::int64_t, int);
template void lu_inverse<double>(std::int64_t, const double*, std::int64_t,
                                 const std::int64_t*, double*, std::int64_t, int);

}  // namespace matnet::detail
