// Generic element-wise kernels (portable C++, libm): the reference the SIMD
// kernels are tested against, and the float64 path on every ISA.
#include <algorithm>

#include "ops/eltwise.hpp"
#include "ops/scalar_math.hpp"

namespace matnet::detail {

namespace {

template <class T, Activation A>
void forward_loop(T* y, T* z, const T* x, const T* b, std::int64_t n, T slope) {
  if (b != nullptr) {
    for (std::int64_t i = 0; i < n; ++i) {
      const T v = x[i] + b[i];
      if (z != nullptr) z[i] = v;
      y[i] = scalar::act_forward(A, v, slope);
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      const T v = x[i];
      if (z != nullptr) z[i] = v;
      y[i] = scalar::act_forward(A, v, slope);
    }
  }
}

template <class T, Activation A>
void backward_loop(T* dx, T* db_acc, const T* g, const T* x, std::int64_t n, T slope) {
  if (db_acc != nullptr) {
    for (std::int64_t i = 0; i < n; ++i) {
      const T d = g[i] * scalar::act_derivative(A, x[i], slope);
      dx[i] = d;
      db_acc[i] += d;
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) dx[i] = g[i] * scalar::act_derivative(A, x[i], slope);
  }
}

template <class T>
void forward(T* y, T* z, const T* x, const T* b, std::int64_t n, Activation act, T slope) {
  switch (act) {
    case Activation::identity: return forward_loop<T, Activation::identity>(y, z, x, b, n, slope);
    case Activation::relu: return forward_loop<T, Activation::relu>(y, z, x, b, n, slope);
    case Activation::leaky_relu:
      return forward_loop<T, Activation::leaky_relu>(y, z, x, b, n, slope);
    case Activation::sigmoid: return forward_loop<T, Activation::sigmoid>(y, z, x, b, n, slope);
    case Activation::tanh: return forward_loop<T, Activation::tanh>(y, z, x, b, n, slope);
    case Activation::gelu: return forward_loop<T, Activation::gelu>(y, z, x, b, n, slope);
    case Activation::gelu_tanh:
      return forward_loop<T, Activation::gelu_tanh>(y, z, x, b, n, slope);
    case Activation::silu: return forward_loop<T, Activation::silu>(y, z, x, b, n, slope);
  }
}

template <class T>
void backward(T* dx, T* db_acc, const T* g, const T* x, std::int64_t n, Activation act, T slope) {
  switch (act) {
    case Activation::identity:
      return backward_loop<T, Activation::identity>(dx, db_acc, g, x, n, slope);
    case Activation::relu: return backward_loop<T, Activation::relu>(dx, db_acc, g, x, n, slope);
    case Activation::leaky_relu:
      return backward_loop<T, Activation::leaky_relu>(dx, db_acc, g, x, n, slope);
    case Activation::sigmoid:
      return backward_loop<T, Activation::sigmoid>(dx, db_acc, g, x, n, slope);
    case Activation::tanh: return backward_loop<T, Activation::tanh>(dx, db_acc, g, x, n, slope);
    case Activation::gelu: return backward_loop<T, Activation::gelu>(dx, db_acc, g, x, n, slope);
    case Activation::gelu_tanh:
      return backward_loop<T, Activation::gelu_tanh>(dx, db_acc, g, x, n, slope);
    case Activation::silu: return backward_loop<T, Activation::silu>(dx, db_acc, g, x, n, slope);
  }
}

template <class T>
void forward_tile(T* c, std::int64_t ldc, T* z, std::int64_t ldz, const T* b, int rows, int cols,
                  Activation act, T slope) {
  for (int r = 0; r < rows; ++r)
    forward(c + r * ldc, z != nullptr ? z + r * ldz : nullptr, c + r * ldc, b, cols, act, slope);
}

template <class T>
T max_of(const T* x, std::int64_t n) {
  T m = x[0];
  for (std::int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

template <class T>
double dot(const T* a, const T* b, std::int64_t n) {
  double s = 0.0;
  if (b == nullptr) {
    for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  }
  return s;
}

template <class T>
double exp_sum(T* y, const T* x, std::int64_t n, T shift) {
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T e = std::exp(x[i] - shift);
    if (y != nullptr) y[i] = e;
    s += static_cast<double>(e);
  }
  return s;
}

}  // namespace

const EltwiseKernels<float>& eltwise_f32_generic() {
  static const EltwiseKernels<float> k{forward<float>, forward_tile<float>, backward<float>,
                                       max_of<float>, dot<float>, exp_sum<float>, "eltwise_f32_generic"};
  return k;
}

const EltwiseKernels<double>& eltwise_f64_generic() {
  static const EltwiseKernels<double> k{forward<double>, forward_tile<double>, backward<double>,
                                        max_of<double>, dot<double>, exp_sum<double>, "eltwise_f64_generic"};
  return k;
}

}  // namespace matnet::detail
