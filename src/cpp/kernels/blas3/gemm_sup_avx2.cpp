// AVX2 "sup" kernels (few rows of op(A), nothing packed), float and double;
// contract in ukernel.hpp. Compiled with -mavx2 -mfma, reached only through
// the registry.
//
// C is computed by rows of B, as a GEMV with A^T is: four rows of B per
// pass are loaded once into registers and multiplied into every row of C
// (two rows of C at a time, A's eight values broadcast in registers). B is
// read row by row, left to right, which the prefetchers stream best, once
// for the whole product, whatever m.
//
// Measured against the register-tiled alternative (an R x 2-4 vector tile
// of C over all of k, B read down its columns; f32, 1 thread, GFLOP/s,
// same process, m = 2 / 4 / 8 / 16): 784x256 B (in L2) 55 / 73 / 83 / 88
// vs 41 / 61 / 67 / 80; 4096x4096 B (from memory) 17 / 26 / 33 / 42 vs
// 19 / 21 / 23 / 25.
#include <algorithm>

#include "blas3/sup_by_rows.hpp"
#include "blas3/ukernel.hpp"
#include "simd/vec_avx2.hpp"

namespace matnet::detail {
namespace {

using avx2::Vec;

/// Narrow C (n <= 2 vectors, e.g. batched 8 x 8 products): an R x NV tile
/// of C in registers over all of k; B is so small that how it is read does
/// not matter, and the tile saves the C round trips of the row passes.
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
  constexpr int L = Vec<T>::lanes;
  if (n <= 2 * L && k > 0) {
    const int cols = static_cast<int>(n);
    for (std::int64_t i0 = 0; i0 < m; i0 += 6) {
      const int rows = static_cast<int>(std::min<std::int64_t>(6, m - i0));
      if (n <= L) {
        sup_rows<T, 1>(rows, k, alpha, a + i0 * rsa, rsa, csa, b, ldb, beta, c + i0 * ldc, ldc, cols);
      } else {
        sup_rows<T, 2>(rows, k, alpha, a + i0 * rsa, rsa, csa, b, ldb, beta, c + i0 * ldc, ldc, cols);
      }
    }
    return;
  }
  sup_by_rows<Vec<T>, T, 4>(m, n, k, alpha, a, rsa, csa, b, ldb, beta, c, ldc);
}

}  // namespace

gemm_sup_fn<float> sgemm_sup_avx2() { return &gemm_sup_avx2<float>; }
gemm_sup_fn<double> dgemm_sup_avx2() { return &gemm_sup_avx2<double>; }

}  // namespace matnet::detail
