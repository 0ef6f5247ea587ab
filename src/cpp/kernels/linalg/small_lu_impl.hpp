// The body of the small-matrix LU kernels (small_lu.hpp), written once over
// GCC/Clang vector extensions: each small_lu_<isa>.cpp includes it and
// instantiates it with its vector width, and its compile flags pick the
// instructions (SSE2, AVX2, AVX-512). Everything here has internal linkage,
// so the copies compiled for different ISAs never meet at link time.
//
// Layout of a group of L matrices (L = lanes): v[i * w + j] is the vector
// of element (i, j) of the L augmented matrices [A | B] (w = n + nrhs).
// Lanes past the end of the stack hold identity matrices, so they never
// report a zero pivot.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/thresholds.hpp"
#include "linalg/small_lu.hpp"
#include "simd/gcc_vec.hpp"

namespace matnet::detail {

namespace {

template <class T, int L>
struct SmallLu : GccVec<T, L> {
  using Vec = GccVec<T, L>;
  using typename Vec::V;
  using M = typename Vec::Mask;  // lane masks: all ones / zero per lane
  using Vec::splat;
  using Vec::vabs;

  static constexpr std::int64_t max_n = thresholds::small_lu_max_n;
  static constexpr std::int64_t max_nrhs = thresholds::small_lu_max_nrhs;

  static bool any(M m) {
    bool r = false;
    for (int k = 0; k < L; ++k) r |= m[k] != 0;
    return r;
  }
  /// Lanes whose 1 / v overflows (v subnormal, not zero): those divide, as
  /// DGETF2 does below its sfmin (lane by lane, so a matrix's result does
  /// not depend on its neighbours in the group).
  static M subnormal(V v) {
    return (vabs(v) < splat(std::numeric_limits<T>::min())) & (v != T(0));
  }
  /// x / d, as x * r (r = 1 / d, or 0 where d is 0) where that is exact
  /// enough; the division only when some lane of d is subnormal (rare).
  static V quotient(V x, V d, V r, M tiny, bool any_tiny) {
    return any_tiny ? (tiny ? x / d : x * r) : x * r;
  }
  /// Lanes that are finite (not NaN, not +-Inf).
  static M finite(V v) { return vabs(v) <= splat(std::numeric_limits<T>::max()); }

  /// Interleaves matrices [0, count) of x (rows x cols each) into columns
  /// [c0, c0 + cols) of vx (row stride w), or the identity when x is null;
  /// lanes past count get the identity too. Returns the lanes whose matrix
  /// is all finite.
  template <class N>
  static M load(N rows, std::int64_t cols, std::int64_t count, const T* x, V* vx, std::int64_t w,
                std::int64_t c0) {
    // Scalar stores into a plain array, then whole vectors out of it: lane
    // inserts into vx directly compile to a load-insert-store per element.
    static_assert(thresholds::small_lu_max_nrhs <= max_n, "s holds an n x nrhs block too");
    alignas(64) T s[max_n * max_n * L];
    const std::int64_t size = rows * cols;
    for (std::int64_t m = 0; m < L; ++m) {
      if (x != nullptr && m < count) {
        const T* xm = x + m * size;
        for (std::int64_t k = 0; k < size; ++k) s[k * L + m] = xm[k];
      } else {
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j) s[(i * cols + j) * L + m] = T(i == j);
      }
    }
    M ok = V{} == V{};
    for (std::int64_t i = 0; i < rows; ++i) {
      std::memcpy(vx + i * w + c0, s + i * cols * L, static_cast<std::size_t>(cols) * sizeof(V));
      for (std::int64_t j = 0; j < cols; ++j) ok &= finite(vx[i * w + c0 + j]);
    }
    return ok;
  }

  /// De-interleaves columns [c0, c0 + cols) of vx (row stride w) into
  /// matrices [0, count) of x (rows x cols each).
  template <class N>
  static void store(N rows, std::int64_t cols, std::int64_t count, const V* vx, std::int64_t w,
                    std::int64_t c0, T* x) {
    alignas(64) T s[max_n * max_n * L];
    for (std::int64_t i = 0; i < rows; ++i)
      std::memcpy(s + i * cols * L, vx + i * w + c0, static_cast<std::size_t>(cols) * sizeof(V));
    const std::int64_t size = rows * cols;
    for (std::int64_t m = 0; m < count; ++m) {
      T* xm = x + m * size;
      for (std::int64_t k = 0; k < size; ++k) xm[k] = s[k * L + m];
    }
  }

  /// One group of <= L matrices; n is std::int64_t, or an
  /// std::integral_constant for the orders unrolled at compile time.
  template <class N>
  static void group(N n, std::int64_t nrhs, std::int64_t count, const T* a, T* b,
                    bool b_identity, T* diag, T* perm, std::int64_t* info) {
    // [A | B] augmented, row stride w: one row operation covers both.
    const std::int64_t w = n + nrhs;
    alignas(64) V v[max_n * (max_n + max_nrhs)];
    const M ok = load(n, n, count, a, v, w, 0) &
                 load(n, nrhs, count, b_identity ? nullptr : b, v, w, n);
    using I = decltype(M{}[0]);
    M first_zero = M{};  // k + 1 of the first zero pivot, per lane
    V sign = splat(T(1));
    for (std::int64_t j = 0; j < n; ++j) {
      V* vj = v + j * w;
      // Pivot: the first row of largest |a_ij|, i >= j, per lane.
      V best = vabs(vj[j]), p = splat(T(j));
      for (std::int64_t i = j + 1; i < n; ++i) {
        const V x = vabs(v[i * w + j]);
        const M gt = x > best;
        best = gt ? x : best;
        p = gt ? splat(T(i)) : p;
      }
      sign = p != splat(T(j)) ? -sign : sign;
      // The pivot row of each lane, gathered by blends (columns >= j: L's
      // columns left of j are never read again).
      V prow[max_n + max_nrhs];
      for (std::int64_t c = j; c < w; ++c) prow[c] = vj[c];
      for (std::int64_t i = j + 1; i < n; ++i) {
        const M s = p == splat(T(i));
        for (std::int64_t c = j; c < w; ++c) prow[c] = s ? v[i * w + c] : prow[c];
      }
      const V pivot = prow[j];
      const M zero = pivot == T(0);
      first_zero = (zero & (first_zero == 0)) ? M{} + static_cast<I>(j + 1) : first_zero;
      // A zero pivot leaves its column as it is (all zero below it), as DGETF2.
      const V r = zero ? V{} : T(1) / pivot;
      const M tiny = subnormal(pivot);
      const bool any_tiny = any(tiny);
      // Swap and eliminate in one pass: the lane whose pivot row is i
      // eliminates the old row j in its place.
      for (std::int64_t i = j + 1; i < n; ++i) {
        V* vi = v + i * w;
        const M s = p == splat(T(i));
        const V x = s ? vj[j] : vi[j];
        const V l = quotient(x, pivot, r, tiny, any_tiny);
        for (std::int64_t c = j + 1; c < w; ++c) vi[c] = (s ? vj[c] : vi[c]) - l * prow[c];
      }
      for (std::int64_t c = j; c < w; ++c) vj[c] = prow[c];
    }
    // Back substitution, U X = L^{-1} P B (the reciprocal of each pivot once).
    for (std::int64_t i = n - 1; i >= 0 && nrhs > 0; --i) {
      V* vi = v + i * w;
      const V r = T(1) / vi[i];
      const M tiny = subnormal(vi[i]);
      const bool any_tiny = any(tiny);
      for (std::int64_t c = n; c < w; ++c) {
        V x = vi[c];
        for (std::int64_t k = i + 1; k < n; ++k) x -= vi[k] * v[k * w + c];
        vi[c] = quotient(x, vi[i], r, tiny, any_tiny);
      }
    }
    if (nrhs > 0) store(n, nrhs, count, v, w, n, b);
    for (std::int64_t m = 0; m < count; ++m) {
      info[m] = !ok[m] ? -1 : static_cast<std::int64_t>(first_zero[m]);
      if (diag != nullptr) {
        for (std::int64_t k = 0; k < n; ++k) diag[m * n + k] = v[k * w + k][m];
        perm[m] = sign[m];
      }
    }
  }

  template <class N>
  static void groups(N n, std::int64_t nrhs, std::int64_t count, const T* a, T* b,
                     bool b_identity, T* diag, T* perm, std::int64_t* info) {
    for (std::int64_t g = 0; g < count; g += L) {
      const std::int64_t c = count - g < L ? count - g : L;
      group(n, nrhs, c, a + g * n * n, b != nullptr ? b + g * n * nrhs : nullptr,
            b_identity, diag != nullptr ? diag + g * n : nullptr,
            perm != nullptr ? perm + g : nullptr, info + g);
    }
  }

  static void factor_solve(std::int64_t n, std::int64_t nrhs, std::int64_t count, const T* a,
                           T* b, bool b_identity, T* diag, T* perm, std::int64_t* info) {
    // The orders up to 8 with every row loop unrolled (the (10000, 8, 8)
    // stacks of the benchmark spend their time in loop control otherwise).
    switch (n) {
#define MATNET_SMALL_LU_N(K)                                                                      \
  case K:                                                                                         \
    return groups(std::integral_constant<std::int64_t, K>{}, nrhs, count, a, b, b_identity, diag, \
                  perm, info);
      MATNET_SMALL_LU_N(1) MATNET_SMALL_LU_N(2) MATNET_SMALL_LU_N(3) MATNET_SMALL_LU_N(4)
      MATNET_SMALL_LU_N(5) MATNET_SMALL_LU_N(6) MATNET_SMALL_LU_N(7) MATNET_SMALL_LU_N(8)
#undef MATNET_SMALL_LU_N
      default: groups(n, nrhs, count, a, b, b_identity, diag, perm, info);
    }
  }

  static SmallLuKernels<T> table(const char* name) { return {&factor_solve, L, name}; }
};

}  // namespace

}  // namespace matnet::detail
