// The body of the Winograd transforms (winograd_kernels.hpp), written once
// over GCC/Clang vector extensions, winograd_step tiles per vector: each
// winograd_kernels_<isa>.cpp includes it and its compile flags pick the
// instructions (SSE2, AVX2). Everything here has internal linkage, so the
// copies compiled for different ISAs never meet at link time.
//
// Why whole vectors only, with the spill the contract allows: rows of 28
// tiles cut into 16-wide panels leave runs of 4-16 tiles, and a vectorised
// loop with a scalar remainder spent most of its time in the remainder
// (16 scalar stores per tile).
#pragma once

#include <algorithm>
#include <cstdint>

#include "nn/winograd_kernels.hpp"
#include "simd/gcc_vec.hpp"

namespace matnet::detail {

namespace {

// The vectors are winograd_step (8) lanes in every build: the spill
// contract's step.
template <class T>
struct Winograd : GccVec<T, winograd_step> {
  using Vec = GccVec<T, winograd_step>;
  using typename Vec::V;
  using typename Vec::Mask;
  using Vec::load;
  using Vec::store;
  using I = std::int64_t;
  static constexpr int L = winograd_step;

  // Tiles per pass: the four column phases of the four rows (16 x 72
  // values) stay in L1.
  static constexpr I chunk = 64, ld = chunk + L;

  /// ph[q * ld + k] = row[c0 + 2k + q] for q in [0, 4), k in [0, n), 0
  /// outside [0, w) or for a null row; zeros for k in [n, n + L).
  static void split_row(const T* row, I w, I c0, I n, T* ph) {
    for (int q = 0; q < 4; ++q) std::fill(ph + q * ld + n, ph + q * ld + n + L, T(0));
    if (row == nullptr) {
      for (int q = 0; q < 4; ++q) std::fill(ph + q * ld, ph + q * ld + n, T(0));
      return;
    }
    // k in [lo, hi): all four columns inside the row
    // (c0 + 2k >= 0 and c0 + 2k + 3 <= w - 1; numerators kept >= 0 so that
    // division rounds the right way)
    const I lo = std::min(c0 >= 0 ? 0 : (1 - c0) / 2, n);
    const I hi = w - 4 - c0 < 0 ? lo : std::clamp<I>((w - 4 - c0) / 2 + 1, lo, n);
    auto at = [&](I c) { return c >= 0 && c < w ? row[c] : T(0); };
    for (I k = 0; k < lo; ++k)
      for (int q = 0; q < 4; ++q) ph[q * ld + k] = at(c0 + 2 * k + q);
    const T* s = row + c0;
    for (I k = lo; k < hi; ++k) {
      ph[k] = s[2 * k];
      ph[ld + k] = s[2 * k + 1];
      ph[2 * ld + k] = s[2 * k + 2];
      ph[3 * ld + k] = s[2 * k + 3];
    }
    for (I k = hi; k < n; ++k)
      for (int q = 0; q < 4; ++q) ph[q * ld + k] = at(c0 + 2 * k + q);
  }

  static void input_row(const T* const* rows, I w, I col0, I tiles, T* v, I ldv, I j0, I nr,
                        I panel) {
    alignas(64) T ph[16 * ld];  // row r's column phase q at (4 r + q) * ld
    for (I t0 = 0; t0 < tiles; t0 += chunk) {
      const I n = std::min(chunk, tiles - t0);
      for (int r = 0; r < 4; ++r) split_row(rows[r], w, col0 + 2 * t0, n, ph + 4 * r * ld);
      // steps of at most L tiles within one panel (whole vectors stored)
      for (I ta = 0; ta < n;) {
        const I j = j0 + t0 + ta, lane = j % nr, len = std::min<I>({n - ta, nr - lane, L});
        T* out = v + j / nr * panel + lane;
        V q[4][4];
        for (int c = 0; c < 4; ++c) {  // B^T d on column c of the patches: rows
          const V d0 = load(ph + c * ld + ta), d1 = load(ph + (4 + c) * ld + ta),
                  d2 = load(ph + (8 + c) * ld + ta), d3 = load(ph + (12 + c) * ld + ta);
          q[0][c] = d0 - d2;
          q[1][c] = d1 + d2;
          q[2][c] = d2 - d1;
          q[3][c] = d1 - d3;
        }
        for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns
          store(out + (4 * i + 0) * ldv, q[i][0] - q[i][2]);
          store(out + (4 * i + 1) * ldv, q[i][1] + q[i][2]);
          store(out + (4 * i + 2) * ldv, q[i][2] - q[i][1]);
          store(out + (4 * i + 3) * ldv, q[i][1] - q[i][3]);
        }
        ta += len;
      }
    }
  }

  static void output_row(const T* m, I ldm, I tiles, T bias, T* y0, T* y1) {
    const Mask lo{0, L, 1, L + 1, 2, L + 2, 3, L + 3}, hi{4, L + 4, 5, L + 5, 6, L + 6, 7, L + 7};
    for (I t = 0; t < tiles; t += L) {
      V u[4], s[4];  // A^T M: rows
      for (int j = 0; j < 4; ++j) {
        const V m0 = load(m + j * ldm + t), m1 = load(m + (4 + j) * ldm + t),
                m2 = load(m + (8 + j) * ldm + t), m3 = load(m + (12 + j) * ldm + t);
        u[j] = m0 + m1 + m2;
        s[j] = m1 - m2 - m3;
      }
      const V y00 = u[0] + u[1] + u[2] + bias, y01 = u[1] - u[2] - u[3] + bias;  // columns
      const V y10 = s[0] + s[1] + s[2] + bias, y11 = s[1] - s[2] - s[3] + bias;
      store(y0 + 2 * t, __builtin_shuffle(y00, y01, lo));  // pairs (y[2t], y[2t + 1])
      store(y0 + 2 * t + L, __builtin_shuffle(y00, y01, hi));
      store(y1 + 2 * t, __builtin_shuffle(y10, y11, lo));
      store(y1 + 2 * t + L, __builtin_shuffle(y10, y11, hi));
    }
  }

  static WinogradKernels<T> table(const char* name) { return {&input_row, &output_row, name}; }
};

}  // namespace

}  // namespace matnet::detail
