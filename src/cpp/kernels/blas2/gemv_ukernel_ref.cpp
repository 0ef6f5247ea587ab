// Portable GEMV kernels (contract: gemv_kernels.hpp), for CPUs without AVX2
// or when MATNET_ISA=generic. Four independent partial sums per dot product
// let the compiler vectorise with baseline SSE2 without reassociating.
#include <algorithm>

#include "blas2/gemv_kernels.hpp"

namespace matnet::detail {
namespace {

template <class T>
void gemv_n_ref(std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                const T* x, T beta, T* y) {
  for (std::int64_t i = 0; i < m; ++i) {
    const T* ai = a + i * lda;
    T s[4] = {};
    std::int64_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (int u = 0; u < 4; ++u) s[u] += ai[j + u] * x[j + u];
    for (; j < n; ++j) s[0] += ai[j] * x[j];
    const T dot = (s[0] + s[1]) + (s[2] + s[3]);
    y[i] = beta == T(0) ? alpha * dot : alpha * dot + beta * y[i];
  }
}

template <class T>
void gemv_t_ref(std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                const T* x, T beta, T* y) {
  if (beta == T(0)) {
    std::fill(y, y + n, T(0));
  } else if (beta != T(1)) {
    for (std::int64_t j = 0; j < n; ++j) y[j] *= beta;
  }
  for (std::int64_t i = 0; i < m; ++i) {
    const T xi = alpha * x[i];
    const T* ai = a + i * lda;
    for (std::int64_t j = 0; j < n; ++j) y[j] += xi * ai[j];
  }
}

template <class T>
void rot_batch_ref(std::int64_t count, const RowRotation<T>* ops, T* x, std::int64_t ldx,
                   std::int64_t w) {
  for (std::int64_t q = 0; q < count; ++q) {
    const RowRotation<T>& op = ops[q];
    T* xi = x + op.i * ldx;
    if (op.i == op.j) {
      for (std::int64_t k = 0; k < w; ++k) xi[k] *= op.c;
      continue;
    }
    T* xj = x + op.j * ldx;
    for (std::int64_t k = 0; k < w; ++k) {
      const T a = xi[k], b = xj[k];
      xi[k] = op.c * a + op.s * b;
      xj[k] = op.c * b - op.s * a;
    }
  }
}

}  // namespace

const GemvKernels<float>& sgemv_kernels_generic() {
  static const GemvKernels<float> k{&gemv_n_ref<float>, &gemv_t_ref<float>, "sgemv_ref",
                                    &rot_batch_ref<float>};
  return k;
}

const GemvKernels<double>& dgemv_kernels_generic() {
  static const GemvKernels<double> k{&gemv_n_ref<double>, &gemv_t_ref<double>, "dgemv_ref",
                                     &rot_batch_ref<double>};
  return k;
}

}  // namespace matnet::detail
