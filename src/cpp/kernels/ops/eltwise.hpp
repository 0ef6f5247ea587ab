// Element-wise kernel table (internal): one table per dtype and ISA.
//
// A table holds the few contiguous-array loops every NN kernel is built from:
// activation forward (with an optional fused bias and saved pre-activation),
// activation backward (with an optional fused column-sum for the bias
// gradient), the maximum of an array and exp(x - shift) with its sum. The
// public functions (activations.cpp, softmax.cpp, losses.cpp, dense.cpp)
// validate arguments, split work over threads and call these; the kernels
// never throw, never allocate and know nothing of threads.
//
// Aliasing allowed by every loop: y == x, dx == g (same pointer, in place).
#pragma once

#include <cstdint>

#include "matnet/activations.hpp"
#include "matnet/runtime.hpp"

namespace matnet::detail {

template <class T>
struct EltwiseKernels {
  /// v = x[i] + (b ? b[i] : 0); if z: z[i] = v; y[i] = act(v).
  void (*forward)(T* y, T* z, const T* x, const T* b, std::int64_t n, Activation act, T slope);
  /// forward() over a rows x cols tile in place (x = y = c, row stride ldc),
  /// with z (row stride ldz) and b as in forward(): the GEMM epilogue. One
  /// call per tile keeps the activation's constants in registers across rows.
  void (*forward_tile)(T* c, std::int64_t ldc, T* z, std::int64_t ldz, const T* b, int rows,
                       int cols, Activation act, T slope);
  /// dx[i] = g[i] * act'(x[i]); if db_acc: db_acc[i] += dx[i].
  void (*backward)(T* dx, T* db_acc, const T* g, const T* x, std::int64_t n, Activation act,
                   T slope);
  /// max over x[0..n) (n >= 1); NaN handling is left to the caller's next
  /// step (exp_sum propagates NaN).
  T (*max)(const T* x, std::int64_t n);
  /// sum of a[i] * b[i] (b null: sum of a[i]), accumulated in double.
  double (*dot)(const T* a, const T* b, std::int64_t n);
  /// y[i] = exp(x[i] - shift) (y may be null: only the sum); returns the sum
  /// of the exp values, accumulated in double.
  double (*exp_sum)(T* y, const T* x, std::int64_t n, T shift);
  const char* name;
};

const EltwiseKernels<float>& eltwise_f32_generic();
const EltwiseKernels<double>& eltwise_f64_generic();
const EltwiseKernels<float>& eltwise_f32_avx2();


}  // namespace matnet::detail
