// Dot products and plane-rotation helpers for the unblocked loops of the
// factorisations (internal, header-only).
//
// A plain `s += x[i] * y[i]` loop is one dependent add per element (the
// compiler may not reorder floating-point sums), ~4 cycles each; eight
// independent partial sums let it vectorise and pipeline the loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace matnet::detail {

template <class T>
inline T dot(std::int64_t n, const T* x, const T* y) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[i + k] * y[i + k];
  T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

template <class T>
[[gnu::cold, gnu::noinline]] T hypot_slow(T a, T b) {
  return std::hypot(a, b);
}

/// sqrt(a^2 + b^2) without overflow or harmful underflow: the direct
/// formula when it is safe (almost always), std::hypot otherwise. glibc's
/// hypot costs ~20 ns, which dominated the QL/QR sweeps of small matrices.
/// The test is on the sum of squares (before the sqrt, so the branch does
/// not wait for it), and the rare call is out of line so that the sweep's
/// variables stay in registers.
template <class T>
inline T fast_hypot(T a, T b) {
  // Safe when the larger square is normal with eps to spare (a subnormal
  // smaller square then changes r by less than eps) and nothing overflows.
  constexpr T lo = std::numeric_limits<T>::min() / std::numeric_limits<T>::epsilon();
  constexpr T hi = std::numeric_limits<T>::max() / 4;
  const T h2 = a * a + b * b;
  if (h2 > lo && h2 < hi) return std::sqrt(h2);
  return hypot_slow(a, b);
}

}  // namespace matnet::detail
