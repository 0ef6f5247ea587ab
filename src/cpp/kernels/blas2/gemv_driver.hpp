// GEMV driver (internal).
#pragma once

#include <cstdint>

namespace matnet::detail {

/// y = alpha*op(A)*x + beta*y, A row-major m x n (leading dimension lda),
/// op(A) = A or A^T. x and y point at their element 0 and step by incx /
/// incy elements (any sign, not 0). No validation. Splits y over up to
/// max_threads threads when A is large enough (thresholds.hpp); beta == 0:
/// y is not read.
template <class T>
void gemv_run(bool trans, std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
              const T* x, std::int64_t incx, T beta, T* y, std::int64_t incy, int max_threads);

}  // namespace matnet::detail
