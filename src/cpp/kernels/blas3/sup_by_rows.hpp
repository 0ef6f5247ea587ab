// The sup GEMM computed by rows of B (internal), written once over a vector
// type S (simd/vec_avx2.hpp, simd/vec_avx512.hpp) and included by each ISA's
// sup file, which compiles it with its own flags (anonymous namespace: each
// TU keeps its own copy, so the builds never merge at link time).
//
// P rows of B per pass are loaded once into registers and multiplied into
// every row of C (two rows of C at a time, A's 2P values broadcast in
// registers). B is read row by row, left to right, which the prefetchers
// stream best, once for the whole product, whatever m. Contract: the sup
// kernel's in ukernel.hpp.
#pragma once

#include <algorithm>
#include <cstdint>

namespace matnet::detail {
namespace {

/// C[0:R, 0:cw) += sum over P rows q of B of alpha * A[r, q] * B[q, :]; each
/// row of C is loaded and stored once per pass.
template <class S, class T, int R, int P>
void sup_pass(std::int64_t cw, T alpha, const T* a, std::int64_t rsa, std::int64_t csa,
              const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  using V = typename S::V;
  constexpr int L = S::lanes;
  V av[R][P];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) av[r][q] = S::set1(alpha * a[r * rsa + q * csa]);
  std::int64_t j = 0;
  for (; j + L <= cw; j += L) {
    V bq[P];
    for (int q = 0; q < P; ++q) bq[q] = S::load(b + q * ldb + j);
    for (int r = 0; r < R; ++r) {
      V acc = S::load(c + r * ldc + j);
      for (int q = 0; q < P; ++q) acc = S::fma(av[r][q], bq[q], acc);
      S::store(c + r * ldc + j, acc);
    }
  }
  if (j < cw) {  // the same with masked loads and stores
    const auto m = S::mask(static_cast<int>(cw - j));
    V bq[P];
    for (int q = 0; q < P; ++q) bq[q] = S::load(b + q * ldb + j, m);
    for (int r = 0; r < R; ++r) {
      V acc = S::load(c + r * ldc + j, m);
      for (int q = 0; q < P; ++q) acc = S::fma(av[r][q], bq[q], acc);
      S::store(c + r * ldc + j, m, acc);
    }
  }
}

template <class S, class T, int P>
void sup_pass_rows(std::int64_t m, std::int64_t cw, T alpha, const T* a, std::int64_t rsa,
                   std::int64_t csa, const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + 2 <= m; i += 2)
    sup_pass<S, T, 2, P>(cw, alpha, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc);
  if (i < m) sup_pass<S, T, 1, P>(cw, alpha, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc);
}

/// The whole product, P rows of B per pass (then 4, then 1 for the rest of k).
template <class S, class T, int P>
void sup_by_rows(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                 std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb, T beta, T* c,
                 std::int64_t ldc) {
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
    if constexpr (P > 4) {
      for (; p + P <= k; p += P)
        sup_pass_rows<S, T, P>(m, cw, alpha, a + p * csa, rsa, csa, b + p * ldb + j0, ldb, c + j0, ldc);
    }
    for (; p + 4 <= k; p += 4)
      sup_pass_rows<S, T, 4>(m, cw, alpha, a + p * csa, rsa, csa, b + p * ldb + j0, ldb, c + j0, ldc);
    for (; p < k; ++p)
      sup_pass_rows<S, T, 1>(m, cw, alpha, a + p * csa, rsa, csa, b + p * ldb + j0, ldb, c + j0, ldc);
  }
}

}  // namespace
}  // namespace matnet::detail
