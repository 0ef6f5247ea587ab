// Public element-wise activations (matnet/activations.hpp): checks, threads,
// dispatch to the kernel table of the active ISA.
#include "matnet/activations.hpp"

#include "core/checks.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

template <class T>
void forward_impl(T* y, const T* x, std::int64_t n, Activation act, T slope) {
  constexpr const char* fn = "activation_forward";
  detail::require_size(fn, "n", n);
  detail::require_activation(fn, act);
  if (n == 0) return;
  detail::require_ptr(fn, "x", x);
  detail::require_ptr(fn, "y", y);
  const auto& k = *detail::kernels<T>().eltwise;
  detail::parallel_ranges(n, [&](std::int64_t b, std::int64_t e) {
    k.forward(y + b, nullptr, x + b, nullptr, e - b, act, slope);
  });
}

template <class T>
void backward_impl(T* dx, const T* g, const T* x, std::int64_t n, Activation act, T slope) {
  constexpr const char* fn = "activation_backward";
  detail::require_size(fn, "n", n);
  detail::require_activation(fn, act);
  if (n == 0) return;
  detail::require_ptr(fn, "grad", g);
  detail::require_ptr(fn, "x", x);
  detail::require_ptr(fn, "dx", dx);
  const auto& k = *detail::kernels<T>().eltwise;
  detail::parallel_ranges(n, [&](std::int64_t b, std::int64_t e) {
    k.backward(dx + b, nullptr, g + b, x + b, e - b, act, slope);
  });
}

}  // namespace

void activation_forward(float* y, const float* x, std::int64_t n, Activation act,
                        float negative_slope) {
  forward_impl(y, x, n, act, negative_slope);
}
void activation_forward(double* y, const double* x, std::int64_t n, Activation act,
                        double negative_slope) {
  forward_impl(y, x, n, act, negative_slope);
}
void activation_backward(float* dx, const float* grad, const float* x, std::int64_t n,
                         Activation act, float negative_slope) {
  backward_impl(dx, grad, x, n, act, negative_slope);
}
void activation_backward(double* dx, const double* grad, const double* x, std::int64_t n,
                         Activation act, double negative_slope) {
  backward_impl(dx, grad, x, n, act, negative_slope);
}

}  // namespace matnet
