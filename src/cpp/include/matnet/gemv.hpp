// matnet/gemv.hpp - matrix-vector product, row-major, BLAS argument order.
//
//   y = alpha * op(A) * x + beta * y
//
//   A     is m x n, row-major with leading dimension lda >= max(1, n).
//   op(A) is A (x has n elements, y has m) when trans is false, or A^T
//         (x has m elements, y has n) when trans is true.
//   incx, incy are the steps between consecutive elements of x and y; they
//         may be negative (not 0). As in reference BLAS, the pointer is always
//         the lowest-addressed element: with inc < 0, element i of a vector of
//         length len sits at x[(len - 1 - i) * |inc|].
//
// Semantics follow BLAS: when beta == 0, y is not read (it may hold NaN);
// when alpha == 0 or the inner length is 0, A and x are not read and
// y = beta * y. The kernels are bandwidth-bound: they never pack, read A once
// and split y over threads when A is large enough.
//
// Aliasing: y must not overlap A or x. Threads: up to get_num_threads(),
// safe to call concurrently on distinct y, also from inside a parallel
// region. Errors: matnet::invalid_argument for negative sizes, lda too small,
// inc == 0 or null pointers where data must be read or written.
#pragma once

#include <cstdint>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

MATNET_API void gemv(bool trans, std::int64_t m, std::int64_t n, float alpha, const float* a,
                     std::int64_t lda, const float* x, std::int64_t incx, float beta, float* y,
                     std::int64_t incy);

MATNET_API void gemv(bool trans, std::int64_t m, std::int64_t n, double alpha, const double* a,
                     std::int64_t lda, const double* x, std::int64_t incx, double beta, double* y,
                     std::int64_t incy);

}  // namespace matnet
