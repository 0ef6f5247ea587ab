// The body of the Winograd transforms (winograd_kernels.hpp), written once
// as plain loops along a row of tiles that the compiler vectorises: each
// winograd_kernels_<isa>.cpp includes it and its compile flags pick the
// instructions (SSE2, AVX2). Everything here has internal linkage, so the
// copies compiled for different ISAs never meet at link time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "nn/winograd_kernels.hpp"

namespace matnet::detail {

namespace {

template <class T>
struct Winograd {
  using I = std::int64_t;
  // Tiles per pass: the even/odd columns of the four rows (8 x 65 values)
  // stay in L1 next to the 16 output rows.
  static constexpr I chunk = 64;

  /// e[k] = row[c0 + 2k], o[k] = row[c0 + 2k + 1] for k in [0, n), 0 outside
  /// [0, w) or for a null row. The padded segment is built first, so the
  /// de-interleave is one branch-free loop.
  static void split_row(const T* row, I w, I c0, I n, T* e, T* o) {
    alignas(64) T seg[2 * (chunk + 1)];
    const I len = 2 * n;
    if (row == nullptr) {
      std::fill(e, e + n, T(0));
      std::fill(o, o + n, T(0));
      return;
    }
    const I lo = std::clamp<I>(-c0, 0, len), hi = std::clamp<I>(w - c0, lo, len);
    std::fill(seg, seg + lo, T(0));
    if (hi > lo) std::memcpy(seg + lo, row + c0 + lo, static_cast<std::size_t>(hi - lo) * sizeof(T));
    std::fill(seg + hi, seg + len, T(0));
    for (I k = 0; k < n; ++k) {
      e[k] = seg[2 * k];
      o[k] = seg[2 * k + 1];
    }
  }

  static void input_row(const T* const* rows, I w, I col0, I tiles, T* __restrict v, I ldv, I j0,
                        I nr, I panel) {
    constexpr I ld = chunk + 1;
    alignas(64) T e[4 * ld], o[4 * ld];  // row r's even / odd columns at r * ld
    for (I t0 = 0; t0 < tiles; t0 += chunk) {
      const I n = std::min(chunk, tiles - t0);
      for (int r = 0; r < 4; ++r) split_row(rows[r], w, col0 + 2 * t0, n + 1, e + r * ld, o + r * ld);
      // runs of tiles within one panel: contiguous lanes for every p
      for (I ta = 0; ta < n;) {
        const I j = j0 + t0 + ta, len = std::min(n - ta, nr - j % nr);
        T* __restrict out = v + j / nr * panel + j % nr;
        const T* ev = e + ta;
        const T* ov = o + ta;
        // (no two of the 16 output rows overlap: ldv >= the panels' span)
#pragma GCC ivdep
        for (I t = 0; t < len; ++t) {
          // the patch's columns 0..3: e[.][t], o[.][t], e[.][t + 1], o[.][t + 1]
          const T* col[4] = {ev + t, ov + t, ev + t + 1, ov + t + 1};
          T q[4][4];
          for (int c = 0; c < 4; ++c) {  // B^T d: rows
            const T d0 = col[c][0], d1 = col[c][ld], d2 = col[c][2 * ld], d3 = col[c][3 * ld];
            q[0][c] = d0 - d2;
            q[1][c] = d1 + d2;
            q[2][c] = d2 - d1;
            q[3][c] = d1 - d3;
          }
          for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns
            out[(4 * i + 0) * ldv + t] = q[i][0] - q[i][2];
            out[(4 * i + 1) * ldv + t] = q[i][1] + q[i][2];
            out[(4 * i + 2) * ldv + t] = q[i][2] - q[i][1];
            out[(4 * i + 3) * ldv + t] = q[i][1] - q[i][3];
          }
        }
        ta += len;
      }
    }
  }

  static void output_row(const T* __restrict m, I ldm, I tiles, T bias, T* __restrict y0,
                         T* __restrict y1) {
#pragma GCC ivdep
    for (I t = 0; t < tiles; ++t) {
      T u[4], s[4];  // A^T M: rows
      for (int j = 0; j < 4; ++j) {
        const T m0 = m[j * ldm + t], m1 = m[(4 + j) * ldm + t], m2 = m[(8 + j) * ldm + t],
                m3 = m[(12 + j) * ldm + t];
        u[j] = m0 + m1 + m2;
        s[j] = m1 - m2 - m3;
      }
      y0[2 * t] = u[0] + u[1] + u[2] + bias;  // (A^T M) A: columns
      y0[2 * t + 1] = u[1] - u[2] - u[3] + bias;
      y1[2 * t] = s[0] + s[1] + s[2] + bias;
      y1[2 * t + 1] = s[1] - s[2] - s[3] + bias;
    }
  }

  static WinogradKernels<T> table(const char* name) { return {&input_row, &output_row, name}; }
};

}  // namespace

}  // namespace matnet::detail
