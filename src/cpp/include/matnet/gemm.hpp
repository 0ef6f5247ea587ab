// matnet/gemm.hpp - general matrix multiply, row-major, BLAS argument order.
//
//   C = alpha * op(A) * op(B) + beta * C
//
//   op(A) is m x k: A itself (m x k, leading dimension lda >= max(1, k)) when
//         trans_a is false, or A^T where A is k x m (lda >= max(1, m)).
//   op(B) is k x n: B (k x n, ldb >= max(1, n)) or B^T with B n x k (ldb >= max(1, k)).
//   C     is m x n, ldc >= max(1, n). All matrices are row-major: element (i, j)
//         of a matrix X with leading dimension ldx is X[i * ldx + j].
//
// Semantics follow BLAS: when beta == 0, C is not read (it may hold NaN or
// garbage); when k == 0 or alpha == 0, A and B are not read and C = beta * C.
// m, n or k equal to 0 is valid and does nothing beyond that rule.
//
// Aliasing: C must not overlap A or B. A and B may overlap each other.
// Threads: the call runs on up to get_num_threads() OpenMP threads (fewer for
// small products) and is safe to make concurrently from several threads on
// distinct C, also from inside the caller's own OpenMP parallel region (it
// then runs on the team OpenMP gives it, usually the calling thread alone).
// Paths: m == 1 or n == 1 runs as a GEMV (gemv.hpp); few rows of op(A) with
// B not transposed run unpacked; everything else packed. Errors: matnet::invalid_argument (errors.hpp) for negative sizes, too-small
// leading dimensions or null pointers where data must be read or written;
// std::runtime_error if the kernel path requested by MATNET_ISA is unavailable.
#pragma once

#include <cstdint>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

MATNET_API void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     float alpha, const float* a, std::int64_t lda, const float* b,
                     std::int64_t ldb, float beta, float* c, std::int64_t ldc);

MATNET_API void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     double alpha, const double* a, std::int64_t lda, const double* b,
                     std::int64_t ldb, double beta, double* c, std::int64_t ldc);

/// `batch` products C_i = alpha * op(A_i) * op(B_i) + beta * C_i, where
/// A_i = a + i * stride_a, B_i = b + i * stride_b and C_i = c + i * stride_c
/// (elements), each as in gemm. stride_a or stride_b may be 0 (one operand
/// shared by every product); stride_c must keep the outputs disjoint
/// (>= (m - 1) * ldc + n when batch > 1). Many small products run one per
/// thread; large ones run one after another, each on every thread. batch = 0
/// does nothing. Errors as gemm, plus matnet::invalid_argument for a negative
/// batch or stride, or overlapping outputs.
MATNET_API void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                             std::int64_t k, float alpha, const float* a, std::int64_t lda,
                             std::int64_t stride_a, const float* b, std::int64_t ldb,
                             std::int64_t stride_b, float beta, float* c, std::int64_t ldc,
                             std::int64_t stride_c, std::int64_t batch);

MATNET_API void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                             std::int64_t k, double alpha, const double* a, std::int64_t lda,
                             std::int64_t stride_a, const double* b, std::int64_t ldb,
                             std::int64_t stride_b, double beta, double* c, std::int64_t ldc,
                             std::int64_t stride_c, std::int64_t batch);

/// The same with one pointer per product (a[i], b[i], c[i]), as
/// cublasSgemmBatched: for batches that no single stride describes (NumPy
/// broadcasting of leading dimensions). Pointers may repeat for A and B; the
/// outputs must be disjoint (not checked).
MATNET_API void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                             std::int64_t k, float alpha, const float* const* a, std::int64_t lda,
                             const float* const* b, std::int64_t ldb, float beta,
                             float* const* c, std::int64_t ldc, std::int64_t batch);

MATNET_API void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                             std::int64_t k, double alpha, const double* const* a,
                             std::int64_t lda, const double* const* b, std::int64_t ldb,
                             double beta, double* const* c, std::int64_t ldc, std::int64_t batch);

/// Name of the GEMM microkernel the active ISA uses, for float32
/// (double_precision = false) or float64, e.g. "sgemm_ukernel_avx2_6x16".
MATNET_API const char* gemm_kernel_name(bool double_precision);

/// Block sizes of the GEMM kernel the active ISA uses (see
/// kernels/blas3/blocking.hpp): the mr x nr register tile, the mc x kc block of
/// A kept in L2, the kc x nc panel of B kept in L3. For tests and tuning.
struct GemmBlocking {
  int mr, nr, mc, kc, nc;
};
MATNET_API GemmBlocking gemm_blocking(bool double_precision);

}  // namespace matnet
