// The sup GEMM with C in registers (internal), written once over a vector
// type S (simd/vec_avx512.hpp) like sup_by_rows.hpp, whose contract it
// shares (the sup kernel's, ukernel.hpp).
//
// Why a second sup algorithm: by rows of B, C is loaded and stored once per
// pass of P rows of B, so with more than ~8 rows of C the C traffic, not the
// FMAs, sets the pace (m = 16: ~50 % of the FMA peak). Here C tiles stay in
// registers over a block of kc rows of B, as in a packed microkernel, while
// B is still read in place (row-major, unit column stride): BLIS's "sup"
// idea. Only 16-row tiles of A are packed (alpha folded in, k-major, so
// their broadcasts come from consecutive addresses); smaller tiles broadcast
// from A in place (see sup_tile_strip_rows). Per block of kc rows of B the
// columns are swept left to right in strips of 4 vectors, every row tile of
// C using a strip before the next (with two 16-row tiles the strip is
// re-read from L1/L2, not from memory). Each tile prefetches, two tiles
// ahead, every line it will read along each row of B: every row is a
// separate stream, too many for the hardware prefetchers when B comes from
// memory (4096x4096 B, m = 16, 1 thread: 68 GFLOP/s with a prefetch of each
// tile's first line, 26 without). The prefetches are PREFETCHT1, into L2:
// a tile's B lines are needed again only after a whole pass over kc rows,
// and L2's miss queue holds many more requests in flight than L1's. Measured
// (f32, 4096x4096 B from memory, huge pages, 1 thread, GFLOP/s, first line
// into L1 / every line into L2): m = 4 21 / 38, m = 8 39 / 101, m = 12
// 54 / 100, m = 16 80 / 97; 2048x2048 B: m = 4 67 / 109; B in L2 (784x256)
// within 3 % either way.
#pragma once

#include <algorithm>
#include <cstdint>


namespace matnet::detail {
namespace {

/// Where a row tile reads A: packed (MR x kc, k-major, alpha folded in) or
/// in place (rows rs apart, columns cs apart, alpha applied to the sums).
template <class T>
struct SupA {
  const T* data;
  std::int64_t rs, cs;
  T alpha;
};

/// C[0:MR, cols of the strip] (+)= alpha A[0:MR, 0:kc] * B[0:kc, strip]
/// for NV vectors of columns (the last `tail` lanes-count-limited when Tail);
/// `first`: this is the first k block, so C gets beta (C not read when beta == 0).
template <class S, class T, int MR, int NV, bool Tail, bool Packed>
void sup_tile(std::int64_t kc, SupA<T> a, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
              std::int64_t cw, bool first, T beta) {
  const std::int64_t ars = Packed ? 1 : a.rs, acs = Packed ? MR : a.cs;
  using V = typename S::V;
  constexpr int L = S::lanes;
  typename S::Mask mask[NV];
  if constexpr (Tail) {
    for (int v = 0; v < NV; ++v)
      mask[v] = S::mask(static_cast<int>(std::clamp<std::int64_t>(cw - v * L, 0, L)));
  }
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = S::set1(T(0));
  for (std::int64_t p = 0; p < kc; ++p) {
    const T* bp = b + p * ldb;
    // Two tiles ahead in the same row: the stream of this row of B.
    for (int v = 0; v < NV; ++v) __builtin_prefetch(bp + (2 * NV + v) * L, 0, 2);
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = Tail ? S::load(bp + v * L, mask[v]) : S::load(bp + v * L);
    for (int i = 0; i < MR; ++i) {
      const V ai = S::set1(a.data[i * ars + p * acs]);
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      T* cp = c + i * ldc + v * L;
      V out = Packed ? acc[i][v] : S::mul(S::set1(a.alpha), acc[i][v]);
      if (!first || beta != T(0)) {
        const V old = Tail ? S::load(cp, mask[v]) : S::load(cp);
        out = first ? S::fma(S::set1(beta), old, out) : S::add(old, out);
      }
      if constexpr (Tail) {
        S::store(cp, mask[v], out);
      } else {
        S::store(cp, out);
      }
    }
  }
}

/// One row tile of MR rows over a strip of `sw` (<= 4 vectors) columns, in
/// tiles of NV vectors: MR x NV accumulators, 24 at most (with the NV loaded
/// vectors and a broadcast, 32 registers), and 8 or more independent FMA
/// chains (two pipes x four cycles of latency) from two rows on.
template <class S, class T, int MR, bool Packed>
void sup_tile_strip(std::int64_t kc, SupA<T> a, const T* b, std::int64_t ldb, T* c,
                    std::int64_t ldc, std::int64_t sw, bool first, T beta) {
  constexpr int L = S::lanes;
  constexpr int NV = MR >= 16 ? 1 : (MR >= 7 ? 2 : 4);
  for (std::int64_t j = 0; j < sw; j += NV * L) {
    if (sw - j >= NV * L) {
      sup_tile<S, T, MR, NV, false, Packed>(kc, a, b + j, ldb, c + j, ldc, NV * L, first, beta);
    } else {
      sup_tile<S, T, MR, NV, true, Packed>(kc, a, b + j, ldb, c + j, ldc, sw - j, first, beta);
    }
  }
}

/// Rows [i0, i0 + h) of A over k block [p0, p0 + kc), times alpha, k-major.
template <class T>
void sup_pack_a(std::int64_t h, std::int64_t kc, T alpha, const T* a, std::int64_t rsa,
                std::int64_t csa, T* ap) {
  for (std::int64_t p = 0; p < kc; ++p)
    for (std::int64_t i = 0; i < h; ++i) ap[p * h + i] = alpha * a[i * rsa + p * csa];
}

/// 16-row tiles read A packed, smaller ones in place: packing costs a
/// strided gather per element, which only 16 rows' reuse repays (f32, 1
/// thread, 784x256 B at +16 bytes, us, packed / in place: m = 4 15.0 /
/// 14.1, m = 8 31.9 / 30.5, m = 16 61.8 / 70.4).
template <class S, class T>
void sup_tile_strip_rows(std::int64_t h, std::int64_t kc, SupA<T> a, const T* b,
                         std::int64_t ldb, T* c, std::int64_t ldc, std::int64_t sw, bool first,
                         T beta) {
  switch (h) {
    case 16: sup_tile_strip<S, T, 16, true>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 8: sup_tile_strip<S, T, 8, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 7: sup_tile_strip<S, T, 7, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 6: sup_tile_strip<S, T, 6, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 5: sup_tile_strip<S, T, 5, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 4: sup_tile_strip<S, T, 4, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 3: sup_tile_strip<S, T, 3, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    case 2: sup_tile_strip<S, T, 2, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
    default: sup_tile_strip<S, T, 1, false>(kc, a, b, ldb, c, ldc, sw, first, beta); break;
  }
}

/// Rows in the next row tile with `left` rows to go: 16 while that leaves 4
/// or more (or none); the rest in one tile of up to 8 rows, or two or three
/// tiles of 4 to 8 as even as possible (exact, no zero rows multiplied). A
/// tile of 1-3 rows does 1-3 FMAs per line of B it loads, too few to hide
/// the load from L2, so none is made unless m itself is below 4. Measured
/// (f32, 1 thread, us, tiles of 16 / 8 / 4 / 2 / 1 rows then these):
/// 784x256 B m = 5 29.6 / 19.3, m = 7 45.2 / 25.1, m = 11 62.3 / 42.0,
/// m = 15 69.4 / 53.6, m = 19 94.2 / 74.4, m = 4, 8, 12, 16, 24, 32, 64
/// within 2 %; 4096x4096 B m = 7 5990 / 2739. Tiles of at most 6 rows
/// (4 + 4 for m = 8) gained nothing.
inline std::int64_t sup_tile_rows(std::int64_t left) {
  if (left == 16 || left >= 20) return 16;
  if (left <= 8) return left;
  const std::int64_t tiles = left < 16 ? 2 : 3;
  return (left + tiles - 1) / tiles;
}

/// The whole product (sup contract), in row tiles of sup_tile_rows.
template <class S, class T>
void sup_tiled(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
               std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb, T beta, T* c,
               std::int64_t ldc) {
  constexpr int L = S::lanes;
  constexpr std::int64_t strip = 4 * L;
  // The packed A block, on the stack (this runs inside parallel regions,
  // where nothing may allocate): 16 KiB, which with many rows leaves the
  // strip of B (kc x 4 vectors) room in L1. Measured (f32, 1 thread, GFLOP/s, 8 / 16 KiB of
  // A): 4096x4096 B: m = 16 73 / 76, m = 32 72 / 83; 784x256 B within 2 %.
  constexpr std::int64_t budget = 16384 / sizeof(T);
  alignas(64) T ap[budget];
  if (m > budget / 8) {  // never routed here; keeps kc >= 8 for any m
    for (std::int64_t i = 0; i < m; i += budget / 8) {
      sup_tiled<S, T>(std::min(budget / 8, m - i), n, k, alpha, a + i * rsa, rsa, csa, b, ldb,
                      beta, c + i * ldc, ldc);
    }
    return;
  }
  const std::int64_t kc = std::min<std::int64_t>(budget / m / 8 * 8, 512);
  if (k == 0) {  // the contract has k >= 1; C = beta C keeps the BLAS rule anyway
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  for (std::int64_t p0 = 0; p0 < k; p0 += kc) {
    const std::int64_t kb = std::min(kc, k - p0);
    const bool first = p0 == 0;
    for (std::int64_t i = 0, h; i < m; i += h) {
      h = sup_tile_rows(m - i);
      if (h == 16) sup_pack_a(h, kb, alpha, a + i * rsa + p0 * csa, rsa, csa, ap + i * kb);
    }
    const T* bp = b + p0 * ldb;
    for (std::int64_t j = 0; j < n; j += strip) {
      const std::int64_t sw = std::min(strip, n - j);
      for (std::int64_t i = 0, h; i < m; i += h) {
        h = sup_tile_rows(m - i);
        const SupA<T> ai = h == 16 ? SupA<T>{ap + i * kb, 1, h, T(1)}
                                   : SupA<T>{a + i * rsa + p0 * csa, rsa, csa, alpha};
        sup_tile_strip_rows<S, T>(h, kb, ai, bp + j, ldb, c + i * ldc + j, ldc, sw, first, beta);
      }
    }
  }
}

}  // namespace
}  // namespace matnet::detail
