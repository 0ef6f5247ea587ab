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

/// sup_pass on a staging buffer for C whose rows hold nw whole vectors,
/// window w taking B's columns [w L - head, (w + 1) L - head), of which only
/// [0, cw) exist: B's loads are masked at the two edges, C's never are.
template <class S, class T, int R, int P>
void sup_pass_staged(std::int64_t nw, std::int64_t head, std::int64_t cw, T alpha, const T* a,
                     std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb, T* s,
                     std::int64_t lds) {
  using V = typename S::V;
  constexpr int L = S::lanes;
  V av[R][P];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) av[r][q] = S::set1(alpha * a[r * rsa + q * csa]);
  const T* bw = b - head;  // window w's first lane; outside B only where masked
  for (std::int64_t w = 0; w < nw; ++w) {
    const std::int64_t j = w * L;
    V bq[P];
    if (j >= head && j + L <= head + cw) {
      for (int q = 0; q < P; ++q) bq[q] = S::load(bw + q * ldb + j);
    } else {
      const auto m = S::mask(static_cast<int>(std::max<std::int64_t>(head - j, 0)),
                             static_cast<int>(std::min<std::int64_t>(head + cw - j, L)));
      for (int q = 0; q < P; ++q) bq[q] = S::load(bw + q * ldb + j, m);
    }
    for (int r = 0; r < R; ++r) {
      V acc = S::load(s + r * lds + j);
      for (int q = 0; q < P; ++q) acc = S::fma(av[r][q], bq[q], acc);
      S::store(s + r * lds + j, acc);
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

template <class S, class T, int P>
void sup_pass_rows_staged(std::int64_t m, std::int64_t nw, std::int64_t head, std::int64_t cw,
                          T alpha, const T* a, std::int64_t rsa, std::int64_t csa, const T* b,
                          std::int64_t ldb, T* s, std::int64_t lds) {
  std::int64_t i = 0;
  for (; i + 2 <= m; i += 2)
    sup_pass_staged<S, T, 2, P>(nw, head, cw, alpha, a + i * rsa, rsa, csa, b, ldb, s + i * lds, lds);
  if (i < m)
    sup_pass_staged<S, T, 1, P>(nw, head, cw, alpha, a + i * rsa, rsa, csa, b, ldb, s + i * lds, lds);
}

/// Rows and columns of C that sup_by_rows_staged takes: 32 KiB of stack.
inline constexpr std::int64_t sup_stage_max_rows = 4;
inline constexpr std::int64_t sup_stage_bytes_per_row = 8192;

/// The whole product on a column grid aligned to B's vectors, C staged in
/// an aligned buffer (m <= sup_stage_max_rows, whole rows of B in one
/// stage). Why: NumPy places a large array 16 bytes past a page boundary,
/// so every 64-byte load of B straddles two cache lines, and a ragged C
/// needs masked stores, which AMD cores run slowly; here B's loads are
/// whole and aligned but at the two edges (masked loads, which are cheap),
/// C's loads and stores are all whole and aligned, and C is written once
/// at the end. Measured (f32, AVX-512, 784x256 B in L2 at +16 bytes, 1
/// thread, us, direct / staged): m = 1 9.2 / 8.1, m = 2 10.3 / 8.7, m = 3
/// 16.5 / 15.3; with B aligned, within 1 %.
template <class S, class T, int P>
void sup_by_rows_staged(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                        std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb, T beta,
                        T* c, std::int64_t ldc, std::int64_t head) {
  constexpr int L = S::lanes;
  constexpr std::int64_t line = 64 / sizeof(T);
  constexpr std::int64_t row_cap = sup_stage_bytes_per_row / sizeof(T);
  alignas(64) T stage[sup_stage_max_rows * row_cap];
  const std::int64_t nw = (head + n + L - 1) / L;
  const std::int64_t lds = (nw * L + line - 1) / line * line;
  std::fill(stage, stage + m * lds, T(0));
  std::int64_t p = 0;
  if constexpr (P > 4) {
    for (; p + P <= k; p += P)
      sup_pass_rows_staged<S, T, P>(m, nw, head, n, alpha, a + p * csa, rsa, csa, b + p * ldb, ldb, stage, lds);
  }
  for (; p + 4 <= k; p += 4)
    sup_pass_rows_staged<S, T, 4>(m, nw, head, n, alpha, a + p * csa, rsa, csa, b + p * ldb, ldb, stage, lds);
  for (; p < k; ++p)
    sup_pass_rows_staged<S, T, 1>(m, nw, head, n, alpha, a + p * csa, rsa, csa, b + p * ldb, ldb, stage, lds);
  for (std::int64_t i = 0; i < m; ++i) {
    const T* si = stage + i * lds + head;
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      std::copy(si, si + n, ci);
    } else {
      for (std::int64_t j = 0; j < n; ++j) ci[j] = beta * ci[j] + si[j];
    }
  }
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
  {
    constexpr int L = S::lanes;
    constexpr std::uintptr_t vec_bytes = L * sizeof(T);
    const auto addr = reinterpret_cast<std::uintptr_t>(b);
    // B's rows all start at the same offset within a vector when ldb is a
    // whole number of vectors; then the grid can be shifted to align them.
    const std::int64_t head =
        ldb % L == 0 && addr % sizeof(T) == 0 ? static_cast<std::int64_t>(addr % vec_bytes / sizeof(T)) : 0;
    const bool c_aligned = reinterpret_cast<std::uintptr_t>(c) % 64 == 0 && ldc % (64 / sizeof(T)) == 0;
    const bool staged_fits = m <= sup_stage_max_rows &&
                             head + n + 64 / sizeof(T) <= sup_stage_bytes_per_row / std::int64_t(sizeof(T));
    if (staged_fits && (head != 0 || n % L != 0 || !c_aligned)) {
      sup_by_rows_staged<S, T, P>(m, n, k, alpha, a, rsa, csa, b, ldb, beta, c, ldc, head);
      return;
    }
  }
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
