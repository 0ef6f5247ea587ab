// Scalar activation math (internal), written for accuracy over the whole
// float range: used by the generic kernels (float and double, with libm) and
// as the definition the SIMD kernels reproduce.
//
// Tricks used throughout, each to avoid a cancellation or an Inf*0:
//   - sigmoid from e = exp(-|x|) in (0, 1]: r = 1/(1+e) is sigmoid(|x|) and
//     e*r = 1 - sigmoid(|x|); both tails come out to full relative accuracy.
//   - tanh'(x) = 1 - tanh^2 = 4 e r^2 with e = exp(-2|x|), r = 1/(1+e).
//   - x * p(x) where p -> 0 as x -> -Inf (gelu, silu): x is clamped from
//     below to -max first, so the limit -0 comes out instead of NaN; +Inf is
//     kept (p(+Inf) = 1, so f(+Inf) = +Inf). The derivatives, where +Inf
//     would meet a factor 0 at either end, clamp both ends (finite_clamp).
#pragma once

#include <cmath>
#include <limits>

#include "matnet/activations.hpp"

namespace matnet::detail::scalar {

constexpr double kSqrtHalf = 0.70710678118654752440;   // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794; // 1/sqrt(2 pi)
constexpr double kGeluK0 = 0.79788456080286535588;     // sqrt(2/pi)
constexpr double kGeluK1 = 0.044715;
constexpr double kGeluTanhClamp = 1e4;  // beyond, sigmoid(2u) is exactly 0 or 1 in any dtype

/// x clamped to [-max, +Inf]; NaN stays NaN.
template <class T>
inline T clamp_below(T x) {
  const T hi = std::numeric_limits<T>::max();
  return x < -hi ? -hi : x;
}

/// x clamped to [-max, max]; NaN stays NaN.
template <class T>
inline T finite_clamp(T x) {
  const T hi = std::numeric_limits<T>::max();
  return x < -hi ? -hi : (x > hi ? hi : x);
}

template <class T>
struct Sig {
  T s, one_minus_s;
};

template <class T>
inline Sig<T> sigmoid2(T x) {
  const T e = std::exp(-std::fabs(x));
  const T r = T(1) / (T(1) + e);
  const T er = e * r;
  return x >= T(0) ? Sig<T>{r, er} : Sig<T>{er, r};
}

/// Phi(x), the standard normal CDF, accurate in both tails.
template <class T>
inline T normal_cdf(T x) {
  return T(0.5) * std::erfc(-x * T(kSqrtHalf));
}

template <class T>
inline T act_forward(Activation act, T v, T slope) {
  switch (act) {
    case Activation::identity: return v;
    case Activation::relu: return v < T(0) ? T(0) : v;  // NaN passes through
    case Activation::leaky_relu: return v > T(0) ? v : slope * v;
    case Activation::sigmoid: return sigmoid2(v).s;
    case Activation::tanh: return std::tanh(v);
    case Activation::gelu: return clamp_below(v) * normal_cdf(v);
    case Activation::gelu_tanh: {
      const T xc = v < T(-kGeluTanhClamp) ? T(-kGeluTanhClamp)
                                          : (v > T(kGeluTanhClamp) ? T(kGeluTanhClamp) : v);
      const T u = T(kGeluK0) * (xc + T(kGeluK1) * xc * xc * xc);
      return clamp_below(v) * sigmoid2(T(2) * u).s;
    }
    case Activation::silu: return clamp_below(v) * sigmoid2(v).s;
  }
  return v;
}

/// act'(v) (v the forward input).
template <class T>
inline T act_derivative(Activation act, T v, T slope) {
  switch (act) {
    case Activation::identity: return T(1);
    case Activation::relu: return v > T(0) ? T(1) : T(0);
    case Activation::leaky_relu: return v > T(0) ? T(1) : slope;
    case Activation::sigmoid: {
      const Sig<T> s = sigmoid2(v);
      return s.s * s.one_minus_s;
    }
    case Activation::tanh: {
      const T e = std::exp(T(-2) * std::fabs(v));
      const T r = T(1) / (T(1) + e);
      return T(4) * e * r * r;
    }
    case Activation::gelu: {
      const T xc = finite_clamp(v);
      return normal_cdf(v) + xc * T(kInvSqrt2Pi) * std::exp(T(-0.5) * xc * xc);
    }
    case Activation::gelu_tanh: {
      const T xc = v < T(-kGeluTanhClamp) ? T(-kGeluTanhClamp)
                                          : (v > T(kGeluTanhClamp) ? T(kGeluTanhClamp) : v);
      const T u = T(kGeluK0) * (xc + T(kGeluK1) * xc * xc * xc);
      const T du = T(kGeluK0) * (T(1) + T(3 * kGeluK1) * xc * xc);
      const Sig<T> s = sigmoid2(T(2) * u);
      return s.s + xc * s.s * s.one_minus_s * T(2) * du;
    }
    case Activation::silu: {
      const Sig<T> s = sigmoid2(v);
      return s.s * (T(1) + finite_clamp(v) * s.one_minus_s);
    }
  }
  return T(1);
}

}  // namespace matnet::detail::scalar
