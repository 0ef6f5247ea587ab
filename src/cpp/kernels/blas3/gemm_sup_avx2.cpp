// AVX2 "sup" kernels (small m, unpacked), float and double; contract in
// ukernel.hpp. Compiled with -mavx2 -mfma, reached only through the registry.
//
// Nothing is packed: each element of A is broadcast from where it lies (any
// row and column stride, so A may be transposed), B is read along its rows
// with vector loads, and an R x (NV vectors) tile of C stays in registers
// over the whole k loop. Columns go in chunks of 4 vectors (32 floats, two
// cache lines per row of B); one row group of up to 3 rows takes a chunk
// whole, larger groups (4-6 rows) take it in two halves so that their 6 x 2
// accumulators still fit in 16 ymm registers. For a B too big for the
// caches, k is blocked (kb rows of B at a time, all columns) so B's rows
// stream from memory left to right.
#include <algorithm>

#include "blas3/ukernel.hpp"
#include "core/thresholds.hpp"
#include "simd/vec_avx2.hpp"

namespace matnet::detail {
namespace {

using avx2::Vec;

template <class T, int R, int NV>
void sup_tile(std::int64_t k, T alpha, const T* a, std::int64_t rsa, std::int64_t csa, const T* b,
              std::int64_t ldb, T beta, T* c, std::int64_t ldc, int cols) {
  using S = Vec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = S::zero();
  if (cols == NV * L) {
    for (std::int64_t p = 0; p < k; ++p) {
      const T* bp = b + p * ldb;
      V bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = S::load(bp + v * L);
      const T* ap = a + p * csa;
      for (int r = 0; r < R; ++r) {
        const V av = S::set1(ap[r * rsa]);
        for (int v = 0; v < NV; ++v) acc[r][v] = S::fma(av, bv[v], acc[r][v]);
      }
    }
  } else {
    __m256i mk[NV];
    for (int v = 0; v < NV; ++v) mk[v] = S::mask(std::clamp(cols - v * L, 0, L));
    for (std::int64_t p = 0; p < k; ++p) {
      const T* bp = b + p * ldb;
      V bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = S::load(bp + v * L, mk[v]);
      const T* ap = a + p * csa;
      for (int r = 0; r < R; ++r) {
        const V av = S::set1(ap[r * rsa]);
        for (int v = 0; v < NV; ++v) acc[r][v] = S::fma(av, bv[v], acc[r][v]);
      }
    }
  }
  const V va = S::set1(alpha), vb = S::set1(beta);
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) {
      const int count = std::clamp(cols - v * L, 0, L);
      if (count == 0) break;
      T* dst = c + r * ldc + v * L;
      V res = S::mul(va, acc[r][v]);
      if (count == L) {
        if (beta != T(0)) res = S::fma(vb, S::load(dst), res);
        S::store(dst, res);
      } else {
        const __m256i m = S::mask(count);
        if (beta != T(0)) res = S::fma(vb, S::load(dst, m), res);
        S::store(dst, m, res);
      }
    }
  }
}

template <class T, int NV>
void sup_rows(int rows, std::int64_t k, T alpha, const T* a, std::int64_t rsa, std::int64_t csa,
              const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc, int cols) {
  switch (rows) {
    case 1: return sup_tile<T, 1, NV>(k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, cols);
    case 2: return sup_tile<T, 2, NV>(k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, cols);
    case 3: return sup_tile<T, 3, NV>(k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, cols);
    case 4: return sup_tile<T, 4, NV>(k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, cols);
    case 5: return sup_tile<T, 5, NV>(k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, cols);
    default: return sup_tile<T, 6, NV>(k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, cols);
  }
}

template <class T>
void gemm_sup_avx2(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                   std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb, T beta, T* c,
                   std::int64_t ldc) {
  constexpr int L = Vec<T>::lanes, W = 4 * L;
  // A B that streams from memory is taken thin k blocks at a time, so each
  // block's rows are read left to right (sequential streams the hardware
  // prefetches) and reused from L1 by the next row group; a B that lives in
  // cache is taken whole (no C round trips). thresholds::sup_stream_min_bytes.
  const bool streams = static_cast<double>(k) * static_cast<double>(ldb) * sizeof(T) >=
                       static_cast<double>(thresholds::sup_stream_min_bytes);
  const std::int64_t kb = streams ? thresholds::sup_stream_kb : k;
  for (std::int64_t p0 = 0; p0 < k; p0 += kb) {
    const std::int64_t kc = std::min(kb, k - p0);
    const T beta_eff = p0 == 0 ? beta : T(1);
    for (std::int64_t j0 = 0; j0 < n; j0 += W) {
      const int cols = static_cast<int>(std::min<std::int64_t>(W, n - j0));
      const T* bp = b + p0 * ldb + j0;
      for (std::int64_t i0 = 0; i0 < m;) {
        const std::int64_t left = m - i0;
        const T* ap = a + i0 * rsa + p0 * csa;
        T* cp = c + i0 * ldc + j0;
        // As many vectors as the columns need (narrow products: batched 8 x 8).
        const int vecs = (cols + L - 1) / L;
        if (left <= 3) {
          const int r = static_cast<int>(left);
          switch (vecs) {
            case 1: sup_rows<T, 1>(r, kc, alpha, ap, rsa, csa, bp, ldb, beta_eff, cp, ldc, cols); break;
            case 2: sup_rows<T, 2>(r, kc, alpha, ap, rsa, csa, bp, ldb, beta_eff, cp, ldc, cols); break;
            case 3: sup_rows<T, 3>(r, kc, alpha, ap, rsa, csa, bp, ldb, beta_eff, cp, ldc, cols); break;
            default: sup_rows<T, 4>(r, kc, alpha, ap, rsa, csa, bp, ldb, beta_eff, cp, ldc, cols);
          }
          break;
        }
        const int rows = static_cast<int>(std::min<std::int64_t>(6, left));
        if (vecs == 1) {
          sup_rows<T, 1>(rows, kc, alpha, ap, rsa, csa, bp, ldb, beta_eff, cp, ldc, cols);
          i0 += rows;
          continue;
        }
        sup_rows<T, 2>(rows, kc, alpha, ap, rsa, csa, bp, ldb, beta_eff, cp, ldc,
                       std::min(cols, 2 * L));
        if (cols > 2 * L) {
          sup_rows<T, 2>(rows, kc, alpha, ap, rsa, csa, bp + 2 * L, ldb, beta_eff, cp + 2 * L,
                         ldc, cols - 2 * L);
        }
        i0 += rows;
      }
    }
  }
}

}  // namespace

gemm_sup_fn<float> sgemm_sup_avx2() { return &gemm_sup_avx2<float>; }
gemm_sup_fn<double> dgemm_sup_avx2() { return &gemm_sup_avx2<double>; }

}  // namespace matnet::detail
