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

/// sqrt(a^2 + b^2) without overflow or harmful underflow: the direct
/// formula when it is safe (almost always), else scaled by max(|a|, |b|)
/// (within 2 ulp; glibc's hypot costs ~20 ns, which dominated the QL/QR
/// sweeps of small matrices). The test is on the sum of squares, before
/// the sqrt, and nothing here is a call: a call inside a sweep, even a
/// rare one, made GCC keep the sweep's variables in memory, on the
/// sqrt-divide chain that bounds its speed.
template <class T>
inline T fast_hypot(T a, T b) {
  // Safe when the larger square is normal with eps to spare (a subnormal
  // smaller square then changes r by less than eps) and nothing overflows.
  constexpr T lo = std::numeric_limits<T>::min() / std::numeric_limits<T>::epsilon();
  constexpr T hi = std::numeric_limits<T>::max() / 4;
  const T h2 = a * a + b * b;
  if (h2 > lo && h2 < hi) [[likely]] return std::sqrt(h2);
  const T x = std::abs(a), y = std::abs(b);
  const T m = x > y ? x : y;
  // Zero, infinite or NaN: x + y is the answer (NaN when either is NaN,
  // as m may have dropped it).
  if (!(m > T(0)) || !(m <= std::numeric_limits<T>::max())) return x + y;
  const T u = x / m, v = y / m;
  return m * std::sqrt(u * u + v * v);
}

}  // namespace matnet::detail
