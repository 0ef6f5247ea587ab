// GEMV: argument checks, strided vectors and threads around the kernels of
// the active ISA (gemv_kernels.hpp).
#include "matnet/gemv.hpp"

#include <algorithm>
#include <string>

#include "blas2/gemv_driver.hpp"
#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace detail {

template <class T>
void gemv_run(bool trans, std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
              const T* x, std::int64_t incx, T beta, T* y, std::int64_t incy, int max_threads) {
  const std::int64_t xlen = trans ? m : n, ylen = trans ? n : m;
  if (ylen == 0) return;
  if (xlen == 0 || alpha == T(0)) {
    for (std::int64_t i = 0; i < ylen; ++i) y[i * incy] = beta == T(0) ? T(0) : beta * y[i * incy];
    return;
  }
  const GemvKernels<T>& kern = *kernels<T>().gemv;
  WorkspaceScope scope;
  // The kernels take contiguous vectors: gather a strided x (and y) once.
  const T* xc = x;
  if (incx != 1) {
    T* t = scope.alloc<T>(static_cast<std::size_t>(xlen));
    for (std::int64_t i = 0; i < xlen; ++i) t[i] = x[i * incx];
    xc = t;
  }
  T* yc = y;
  if (incy != 1) {
    yc = scope.alloc<T>(static_cast<std::size_t>(ylen));
    if (beta != T(0))
      for (std::int64_t i = 0; i < ylen; ++i) yc[i] = y[i * incy];
  }
  const std::int64_t bytes = m * n * static_cast<std::int64_t>(sizeof(T));
  const int nt = bytes < thresholds::gemv_parallel_min_bytes ? 1 : max_threads;
  if (trans) {
    // y = A^T x: each thread takes a contiguous block of whole rows of A into
    // its own partial y. Splitting the columns instead would have each
    // thread read half of every row, and the prefetchers fetch the other
    // half too (measured 784 x 256 float, 2 threads: 8.0 us by columns,
    // rows and N-form both ~6.3 us).
    parallel_k_sum(m, 8, nt, 1, n, yc, n, beta,
                   [&](int, std::int64_t r0, std::int64_t r1, T* dst, std::int64_t, T b) {
                     kern.t(r1 - r0, n, alpha, a + r0 * lda, lda, xc + r0, b, dst);
                   });
  } else {
    // Each thread owns a contiguous block of y (rows of A).
    parallel_split(ylen, nt, 4, [&](std::int64_t i0, std::int64_t i1) {
      kern.n(i1 - i0, n, alpha, a + i0 * lda, lda, xc, beta, yc + i0);
    });
  }
  if (yc != y)
    for (std::int64_t i = 0; i < ylen; ++i) y[i * incy] = yc[i];
}

template void gemv_run<float>(bool, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                              const float*, std::int64_t, float, float*, std::int64_t, int);
template void gemv_run<double>(bool, std::int64_t, std::int64_t, double, const double*,
                               std::int64_t, const double*, std::int64_t, double, double*,
                               std::int64_t, int);

}  // namespace detail

namespace {

template <class T>
void gemv_impl(bool trans, std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
               const T* x, std::int64_t incx, T beta, T* y, std::int64_t incy) {
  constexpr const char* fn = "gemv";
  detail::require_size(fn, "m", m);
  detail::require_size(fn, "n", n);
  if (lda < std::max<std::int64_t>(1, n))
    detail::fail(fn, "lda=" + std::to_string(lda) + " is smaller than the row length " +
                         std::to_string(n));
  if (incx == 0 || incy == 0) detail::fail(fn, "incx and incy must not be 0");
  const std::int64_t xlen = trans ? m : n, ylen = trans ? n : m;
  if (ylen > 0) detail::require_ptr(fn, "y", y);
  if (ylen > 0 && xlen > 0 && alpha != T(0)) {
    detail::require_ptr(fn, "a", a);
    detail::require_ptr(fn, "x", x);
  }
  // Reference BLAS: with a negative step, the pointer is the last element.
  const T* x0 = incx < 0 && xlen > 0 ? x + (xlen - 1) * -incx : x;
  T* y0 = incy < 0 && ylen > 0 ? y + (ylen - 1) * -incy : y;
  detail::gemv_run(trans, m, n, alpha, a, lda, x0, incx, beta, y0, incy, get_num_threads());
}

}  // namespace

void gemv(bool trans, std::int64_t m, std::int64_t n, float alpha, const float* a,
          std::int64_t lda, const float* x, std::int64_t incx, float beta, float* y,
          std::int64_t incy) {
  gemv_impl(trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void gemv(bool trans, std::int64_t m, std::int64_t n, double alpha, const double* a,
          std::int64_t lda, const double* x, std::int64_t incx, double beta, double* y,
          std::int64_t incy) {
  gemv_impl(trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

}  // namespace matnet
