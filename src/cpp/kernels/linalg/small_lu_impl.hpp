// The body of the small-matrix LU kernels (small_lu.hpp), written once over
// GCC/Clang vector extensions: each small_lu_<isa>.cpp includes it and
// instantiates it with its vector width, and its compile flags pick the
// instructions (SSE2, AVX2, AVX-512). Everything here has internal linkage,
// so the copies compiled for different ISAs never meet at link time.
//
// Layout of a group of L matrices (L = lanes): va[i * n + j] is the vector
// of element (i, j) of the L matrices, vb[i * nrhs + c] likewise for B.
// Lanes past the end of the stack hold the identity (B zero), so they never
// report a zero pivot.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "core/thresholds.hpp"
#include "linalg/small_lu.hpp"

namespace matnet::detail {

namespace {

template <class T, int L>
struct SmallLu {
  // (a typedef: GCC ignores the attribute on a dependent `using` alias)
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  using M = decltype(V{} < V{});  // lane masks: all ones / zero per lane

  static constexpr std::int64_t max_n = thresholds::small_lu_max_n;
  static constexpr std::int64_t max_nrhs = thresholds::small_lu_max_nrhs;

  static V splat(T v) { return V{} + v; }
  static V vabs(V v) { return v < T(0) ? -v : v; }
  /// Lanes that are finite (not NaN, not +-Inf).
  static M finite(V v) { return vabs(v) <= splat(std::numeric_limits<T>::max()); }

  /// Interleaves matrices [0, count) of x (rows x cols each) into vx, or
  /// the identity when x is null; lanes past count get the identity too.
  /// Returns the lanes whose matrix is all finite.
  static M load(std::int64_t rows, std::int64_t cols, std::int64_t count, const T* x, V* vx) {
    const std::int64_t size = rows * cols;
    // Scalar stores into a plain array, then whole vectors out of it: lane
    // inserts into vx directly compile to a load-insert-store per element.
    alignas(64) T s[max_n * max_n * L];
    for (std::int64_t m = 0; m < L; ++m) {
      if (x != nullptr && m < count) {
        const T* xm = x + m * size;
        for (std::int64_t k = 0; k < size; ++k) s[k * L + m] = xm[k];
      } else {
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j) s[(i * cols + j) * L + m] = T(i == j);
      }
    }
    std::memcpy(vx, s, static_cast<std::size_t>(size) * sizeof(V));
    M ok = V{} == V{};
    for (std::int64_t k = 0; k < size; ++k) ok &= finite(vx[k]);
    return ok;
  }

  /// De-interleaves vx (rows x cols per lane) into matrices [0, count) of x.
  static void store(std::int64_t rows, std::int64_t cols, std::int64_t count, const V* vx, T* x) {
    const std::int64_t size = rows * cols;
    alignas(64) T s[max_n * max_n * L];
    std::memcpy(s, vx, static_cast<std::size_t>(size) * sizeof(V));
    for (std::int64_t m = 0; m < count; ++m) {
      T* xm = x + m * size;
      for (std::int64_t k = 0; k < size; ++k) xm[k] = s[k * L + m];
    }
  }

  static void group(std::int64_t n, std::int64_t nrhs, std::int64_t count, const T* a, T* b,
                    bool b_identity, T* diag, T* perm, std::int64_t* info) {
    alignas(64) V va[max_n * max_n];
    alignas(64) V vb[max_n * max_nrhs];
    const M ok = load(n, n, count, a, va) & load(n, nrhs, count, b_identity ? nullptr : b, vb);
    using I = decltype(M{}[0]);
    M first_zero = M{};  // k + 1 of the first zero pivot, per lane
    V sign = splat(T(1));
    for (std::int64_t j = 0; j < n; ++j) {
      // Pivot: the first row of largest |a_ij|, i >= j, per lane.
      V best = vabs(va[j * n + j]), p = splat(T(j));
      for (std::int64_t i = j + 1; i < n; ++i) {
        const V v = vabs(va[i * n + j]);
        const M gt = v > best;
        best = gt ? v : best;
        p = gt ? splat(T(i)) : p;
      }
      sign = p != splat(T(j)) ? -sign : sign;
      // Row swaps, lane by lane: row j with the pivot row p, columns >= j
      // of A (L's columns left of j are never read again) and all of B.
      for (std::int64_t i = j + 1; i < n; ++i) {
        const M s = p == splat(T(i));
        for (std::int64_t c = j; c < n; ++c) {
          const V x = va[j * n + c], y = va[i * n + c];
          va[j * n + c] = s ? y : x;
          va[i * n + c] = s ? x : y;
        }
        for (std::int64_t c = 0; c < nrhs; ++c) {
          const V x = vb[j * nrhs + c], y = vb[i * nrhs + c];
          vb[j * nrhs + c] = s ? y : x;
          vb[i * nrhs + c] = s ? x : y;
        }
      }
      const V pivot = va[j * n + j];
      const M zero = pivot == T(0);
      first_zero = (zero & (first_zero == 0)) ? M{} + static_cast<I>(j + 1) : first_zero;
      // A zero pivot leaves its column as it is (all zero below it), as DGETF2.
      const V r = zero ? V{} : T(1) / pivot;
      for (std::int64_t i = j + 1; i < n; ++i) {
        const V l = va[i * n + j] * r;
        for (std::int64_t c = j + 1; c < n; ++c) va[i * n + c] -= l * va[j * n + c];
        for (std::int64_t c = 0; c < nrhs; ++c) vb[i * nrhs + c] -= l * vb[j * nrhs + c];
      }
    }
    // Back substitution, U X = L^{-1} P B (the reciprocal of each pivot once).
    for (std::int64_t i = n - 1; i >= 0 && nrhs > 0; --i) {
      const V r = T(1) / va[i * n + i];
      for (std::int64_t c = 0; c < nrhs; ++c) {
        V x = vb[i * nrhs + c];
        for (std::int64_t k = i + 1; k < n; ++k) x -= va[i * n + k] * vb[k * nrhs + c];
        vb[i * nrhs + c] = x * r;
      }
    }
    store(n, nrhs, count, vb, b);
    for (std::int64_t m = 0; m < count; ++m) {
      info[m] = !ok[m] ? -1 : static_cast<std::int64_t>(first_zero[m]);
      if (diag != nullptr) {
        for (std::int64_t k = 0; k < n; ++k) diag[m * n + k] = va[k * n + k][m];
        perm[m] = sign[m];
      }
    }
  }

  static void factor_solve(std::int64_t n, std::int64_t nrhs, std::int64_t count, const T* a,
                           T* b, bool b_identity, T* diag, T* perm, std::int64_t* info) {
    for (std::int64_t g = 0; g < count; g += L) {
      const std::int64_t c = count - g < L ? count - g : L;
      group(n, nrhs, c, a + g * n * n, b + g * n * nrhs, b_identity, diag != nullptr ? diag + g * n : nullptr,
            perm != nullptr ? perm + g : nullptr, info + g);
    }
  }

  static SmallLuKernels<T> table(const char* name) { return {&factor_solve, L, name}; }
};

}  // namespace

}  // namespace matnet::detail
