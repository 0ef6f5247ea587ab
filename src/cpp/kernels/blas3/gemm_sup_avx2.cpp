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

/// C[0:R, j0:j0+cw) += sum over P rows q of B of A[r, q] * B[q, :]: the P
/// rows of B stream left to right once (loaded into registers), each row of
/// C is loaded and stored once per pass. alpha is folded into A's values.
template <class T, int R, int P>
void stream_pass(std::int64_t cw, T alpha, const T* a, std::int64_t rsa, std::int64_t csa,
                 const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  using S = Vec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V av[R][P];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) av[r][q] = S::set1(alpha * a[r * rsa + q * csa]);
  auto step = [&](auto load, auto store, std::int64_t j) {
    V bq[P];
    for (int q = 0; q < P; ++q) bq[q] = load(b + q * ldb + j);
    for (int r = 0; r < R; ++r) {
      V acc = load(c + r * ldc + j);
      for (int q = 0; q < P; ++q) acc = S::fma(av[r][q], bq[q], acc);
      store(c + r * ldc + j, acc);
    }
  };
  std::int64_t j = 0;
  for (; j + L <= cw; j += L) step([](const T* p) { return S::load(p); }, [](T* p, V v) { S::store(p, v); }, j);
  if (j < cw) {
    const __m256i m = S::mask(static_cast<int>(cw - j));
    step([m](const T* p) { return S::load(p, m); }, [m](T* p, V v) { S::store(p, m, v); }, j);
  }
}

template <class T, int P>
void stream_rows(std::int64_t m, std::int64_t cw, T alpha, const T* a, std::int64_t rsa,
                 std::int64_t csa, const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + 2 <= m; i += 2)
    stream_pass<T, 2, P>(cw, alpha, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc);
  if (i < m) stream_pass<T, 1, P>(cw, alpha, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc);
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
  // Whole rows of B (up to 16 Ki columns) per pass: long sequential runs
  // matter more than keeping C in L1. Measured (f32, 4096x4096 B from
  // memory, 1 thread, GFLOP/s, m = 2 / 4 / 8 / 16): 1 KiB to 4 KiB chunks
  // of a row 17 / 25 / 32 / 39, whole rows 21 / 30 / 45 / 50.
  constexpr std::int64_t chunk = 16384;
  for (std::int64_t j0 = 0; j0 < n; j0 += chunk) {
    const std::int64_t cw = std::min(chunk, n - j0);
    for (std::int64_t i = 0; i < m; ++i) {
      T* ci = c + i * ldc + j0;
      if (beta == T(0)) {
        std::fill(ci, ci + cw, T(0));
      } else if (beta != T(1)) {
        for (std::int64_t j = 0; j < cw; ++j) ci[j] *= beta;
      }
    }
    std::int64_t p = 0;
    for (; p + 4 <= k; p += 4)
      stream_rows<T, 4>(m, cw, alpha, a + p * csa, rsa, csa, b + p * ldb + j0, ldb, c + j0, ldc);
    for (; p < k; ++p)
      stream_rows<T, 1>(m, cw, alpha, a + p * csa, rsa, csa, b + p * ldb + j0, ldb, c + j0, ldc);
  }
}

}  // namespace

gemm_sup_fn<float> sgemm_sup_avx2() { return &gemm_sup_avx2<float>; }
gemm_sup_fn<double> dgemm_sup_avx2() { return &gemm_sup_avx2<double>; }

}  // namespace matnet::detail
