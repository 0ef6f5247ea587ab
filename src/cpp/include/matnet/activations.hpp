// matnet/activations.hpp - element-wise activations, softmax, and their backward passes.
//
// Conventions (shared with dense.hpp, losses.hpp, optim.hpp):
//   - outputs first, const inputs next, sizes last (llm.c style);
//   - arrays are contiguous, row-major; `n` counts elements;
//   - T is float or double (both overloads are exported);
//   - backward functions WRITE (overwrite) their gradient, they never accumulate;
//   - errors: bad arguments (negative sizes, null pointers where n > 0, an
//     unknown activation name) throw matnet::invalid_argument, which derives
//     from std::invalid_argument; nothing is written when the call throws;
//   - threads: large arrays (about 64K elements and up) are split over up to
//     get_num_threads() OpenMP threads; calls on distinct outputs are safe to
//     make concurrently from several threads;
//   - IEEE special values: NaN in gives NaN out (element-wise ops: in that
//     element; softmax: in the whole slice); +-Inf and +-0 follow the limits of
//     the mathematical function (sigmoid(-Inf) = 0, tanh(+Inf) = 1, ...).
//
// Accuracy (eps = 2^-23 for float32, 2^-52 for float64; FLT_MIN the smallest
// normal float). float32 on the AVX2 path uses vectorised approximations of
// exp, tanh and erfc; every activation f and every derivative f' computed by
// activation_backward satisfies, for all finite x,
//     |computed - f(x)| <= k * eps * (|f(x)| + |x * f'(x)|) + FLT_MIN
// with k = 4 for forward values and k = 6 for derivatives: a few eps of the
// result plus the effect of a few eps of perturbation of x, which is what
// any float32 evaluation of an ill-conditioned point (gelu far in its left
// tail, near the zero of gelu') can promise. sigmoid and tanh are also within
// 2 eps relative (|computed - f(x)| <= 2 eps |f(x)| + FLT_MIN). Measured over
// dense sweeps of [-40, 40] and log-spaced magnitudes up to 1e38, and tested
// in tests/test_activations.py. The generic path uses the same formulas on
// the C library's functions (same bounds); float64 uses libm (a few eps64).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// Element-wise activation functions. `z` is the input, `y` the output.
enum class Activation {
  identity,    ///< y = z
  relu,        ///< y = max(z, 0)                      exact
  leaky_relu,  ///< y = z if z > 0 else slope * z       exact
  sigmoid,     ///< y = 1 / (1 + exp(-z))
  tanh,        ///< y = tanh(z)
  gelu,        ///< y = z * Phi(z) = z/2 (1 + erf(z/sqrt 2))  (exact GELU)
  gelu_tanh,   ///< y = z/2 (1 + tanh(sqrt(2/pi)(z + 0.044715 z^3)))  (tanh approximation)
  silu,        ///< y = z * sigmoid(z) (swish)
};

/// Lower-case name of an activation ("identity", "relu", "leaky_relu",
/// "sigmoid", "tanh", "gelu", "gelu_tanh", "silu").
MATNET_API const char* activation_name(Activation act);

/// Inverse of activation_name; "none" and "linear" also mean identity.
/// Throws matnet::invalid_argument for any other name.
MATNET_API Activation activation_from_name(const std::string& name);

/// y[i] = act(x[i]) for i < n. y may equal x (in place); otherwise they must
/// not overlap. negative_slope is used by leaky_relu only.
MATNET_API void activation_forward(float* y, const float* x, std::int64_t n, Activation act,
                                   float negative_slope = 0.01f);
MATNET_API void activation_forward(double* y, const double* x, std::int64_t n, Activation act,
                                   double negative_slope = 0.01);

/// dx[i] = grad[i] * act'(x[i]) where x is the FORWARD INPUT. dx may equal
/// grad or x (in place); no other overlap. For relu the derivative at 0 is 0
/// (as in PyTorch); for leaky_relu it is negative_slope at 0.
MATNET_API void activation_backward(float* dx, const float* grad, const float* x, std::int64_t n,
                                    Activation act, float negative_slope = 0.01f);
MATNET_API void activation_backward(double* dx, const double* grad, const double* x,
                                    std::int64_t n, Activation act, double negative_slope = 0.01);

// ---------------------------------------------------------------- softmax
// Softmax along one axis of a C-ordered array viewed as (outer, len, inner):
// element (o, i, j) is at index (o * len + i) * inner + j and the function
// normalises over i. For a row-major (rows, cols) matrix, row-wise softmax is
// outer = rows, len = cols, inner = 1. Numerically stable (the maximum of each
// slice is subtracted first). y may equal x; no other overlap. len == 0 or
// outer == 0 or inner == 0 does nothing.

/// y = exp(x - max) / sum(exp(x - max)) along the axis.
MATNET_API void softmax_forward(float* y, const float* x, std::int64_t outer, std::int64_t len,
                                std::int64_t inner);
MATNET_API void softmax_forward(double* y, const double* x, std::int64_t outer, std::int64_t len,
                                std::int64_t inner);

/// y = x - max - log(sum(exp(x - max))) along the axis.
MATNET_API void log_softmax_forward(float* y, const float* x, std::int64_t outer,
                                    std::int64_t len, std::int64_t inner);
MATNET_API void log_softmax_forward(double* y, const double* x, std::int64_t outer,
                                    std::int64_t len, std::int64_t inner);

/// dx = y * (grad - sum(grad * y)) along the axis, y the FORWARD OUTPUT of
/// softmax_forward. dx may equal grad; it must not overlap y otherwise.
MATNET_API void softmax_backward(float* dx, const float* grad, const float* y, std::int64_t outer,
                                 std::int64_t len, std::int64_t inner);
MATNET_API void softmax_backward(double* dx, const double* grad, const double* y,
                                 std::int64_t outer, std::int64_t len, std::int64_t inner);

/// dx = grad - exp(y) * sum(grad) along the axis, y the FORWARD OUTPUT of
/// log_softmax_forward. dx may equal grad; it must not overlap y otherwise.
MATNET_API void log_softmax_backward(float* dx, const float* grad, const float* y,
                                     std::int64_t outer, std::int64_t len, std::int64_t inner);
MATNET_API void log_softmax_backward(double* dx, const double* grad, const double* y,
                                     std::int64_t outer, std::int64_t len, std::int64_t inner);

}  // namespace matnet
