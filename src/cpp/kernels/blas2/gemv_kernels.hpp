// The GEMV kernel contract (internal). Written once, here.
//
// Both kernels take a row-major m x n matrix A (leading dimension lda) and
// contiguous vectors; the driver (gemv.cpp) gathers strided x and y first.
//   n:  y[i] = alpha * sum_j A[i, j] x[j] + beta * y[i],  i < m   (y = A x)
//   t:  y[j] = alpha * sum_i A[i, j] x[i] + beta * y[j],  j < n   (y = A^T x)
// With beta == 0, y is not read (it may hold NaN). m or n may be 0. The
// kernels are bandwidth-bound: they never pack, read A exactly once, and
// know nothing of threads (the driver splits y over threads).
//
// rot (level 1, BLAS's DROT): (x, y) := (c x + s y, c y - s x) over n
// contiguous elements; x and y do not overlap. The QL/QR sweeps of the
// eigen and singular value solvers (linalg/rotations.hpp) spend most of
// their time here.
#pragma once

#include <cstdint>

namespace matnet::detail {

template <class T>
using gemv_fn = void (*)(std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                         const T* x, T beta, T* y);

template <class T>
using rot_fn = void (*)(std::int64_t n, T* x, T* y, T c, T s);

template <class T>
struct GemvKernels {
  gemv_fn<T> n;
  gemv_fn<T> t;
  const char* name;
  rot_fn<T> rot;
};

const GemvKernels<float>& sgemv_kernels_generic();
const GemvKernels<double>& dgemv_kernels_generic();
const GemvKernels<float>& sgemv_kernels_avx2();
const GemvKernels<double>& dgemv_kernels_avx2();

}  // namespace matnet::detail
