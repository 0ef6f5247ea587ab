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
// rot_batch: a sequence of plane rotations of the rows of a matrix X (row r
// at x + r * ldx), applied in order to its columns [0, w): rotation
// (i, j, c, s) is (x_i, x_j) := (c x_i + s x_j, c x_j - s x_i) (BLAS's
// DROT on two rows), and i == j scales row i by c. The QL/QR sweeps of the
// eigen and singular value solvers (linalg/rotations.hpp) spend most of
// their time here. A sweep is a chain (i + 1, i), (i, i - 1), ...: the
// kernels may keep the row shared by consecutive rotations in registers.
#pragma once

#include <cstdint>

namespace matnet::detail {

template <class T>
using gemv_fn = void (*)(std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                         const T* x, T beta, T* y);

template <class T>
struct RowRotation {
  std::int64_t i, j;
  T c, s;
};

template <class T>
using rot_batch_fn = void (*)(std::int64_t count, const RowRotation<T>* ops, T* x,
                              std::int64_t ldx, std::int64_t w);

template <class T>
struct GemvKernels {
  gemv_fn<T> n;
  gemv_fn<T> t;
  const char* name;
  rot_batch_fn<T> rot_batch;
};

const GemvKernels<float>& sgemv_kernels_generic();
const GemvKernels<double>& dgemv_kernels_generic();
const GemvKernels<float>& sgemv_kernels_avx2();
const GemvKernels<double>& dgemv_kernels_avx2();

}  // namespace matnet::detail
