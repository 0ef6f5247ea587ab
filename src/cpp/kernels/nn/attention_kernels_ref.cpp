// Generic attention softmax loops (portable C++, libm): the reference the
// SIMD loops are tested against, and the float64 path on every ISA.
#include <algorithm>
#include <cmath>
#include <limits>

#include "nn/attention_kernels.hpp"

namespace matnet::detail {

namespace {

template <class T>
void softmax_panel(T* s, std::int64_t rows, int nr, T* m, T* l, T* alpha) {
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  for (int j = 0; j < nr; ++j) {
    T mx = m[j];
    for (std::int64_t r = 0; r < rows; ++r) mx = std::max(mx, s[r * nr + j]);
    const T shift = mx == ninf ? T(0) : mx;
    T sum = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      const T e = std::exp(s[r * nr + j] - shift);
      s[r * nr + j] = e;
      sum += e;
    }
    alpha[j] = std::exp(m[j] - shift);
    l[j] = l[j] * alpha[j] + sum;
    m[j] = mx;
  }
}

template <class T>
void softmax_grad_row(T* s, T* dp, std::int64_t n, T lse, T dsum) {
  if (lse == -std::numeric_limits<T>::infinity()) {
    std::fill(s, s + n, T(0));
    std::fill(dp, dp + n, T(0));
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const T p = std::exp(s[i] - lse);
    s[i] = p;
    dp[i] = p * (dp[i] - dsum);
  }
}

}  // namespace

const AttentionKernels<float>& attention_f32_generic() {
  static const AttentionKernels<float> k{softmax_panel<float>, softmax_grad_row<float>,
                                         "attention_f32_generic"};
  return k;
}

const AttentionKernels<double>& attention_f64_generic() {
  static const AttentionKernels<double> k{softmax_panel<double>, softmax_grad_row<double>,
                                          "attention_f64_generic"};
  return k;
}

}  // namespace matnet::detail
