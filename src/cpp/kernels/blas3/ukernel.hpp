// The GEMM microkernel contract (internal). Written once, here.
//
// A microkernel computes one MR x NR tile of C from packed panels:
//
//   C[0:MR, 0:NR] = alpha * Apanel * Bpanel + beta * C[0:MR, 0:NR]
//
//   Apanel (MR x k), packed column by column:   Bpanel (k x NR), packed row by row:
//     a[p*MR + i] = op(A)[i, p]                    b[p*NR + j] = op(B)[p, j]
//
//       p=0    p=1           p=k-1                  p=0:   b0  b1  ...  b(NR-1)
//     | a00 | a01 | ... |  a0,k-1 |                 p=1:   ...
//     | a10 | a11 | ... |         |   (MR rows)     ...
//
// The B panel is aligned to 64 bytes (the AVX2 kernels load it with aligned
// loads); A panels need no alignment. Both are fully populated: the packing
// code pads edge panels with zeros, so the microkernel never sees a partial
// tile.
// Edge tiles of C (fewer than MR rows or NR columns left) are handled by the
// driver, which lets the microkernel write a full tile to a scratch buffer
// (with beta = 0) and merges the valid part itself.
//
// C is row-major with leading dimension ldc (unit column stride).
// With beta == 0 the microkernel must not read C: it may hold NaN or garbage.
// k may be 0 (then C = beta * C, or 0 when beta == 0).
// A microkernel knows nothing of threads, blocking or edges.
//
// Optional "direct A" variants read a full MR-row tile of op(A) in place
// instead of from a packed panel (B is still packed), for products too small
// to amortise packing A:
//   a_rows:  op(A)[i, p] = a[i*lda + p]    (A row-major, not transposed)
//   a_cols:  op(A)[i, p] = a[p*lda + i]    (A stored transposed)
// Same C contract; all MR rows of the tile must exist (the driver packs the
// edge panel instead).
//
// An optional "tail" kernel of fewer rows (mr_tail x NR, A packed with
// mr_tail rows per panel, same contract otherwise) covers the rows left
// over when a block's height is not a multiple of MR, where a zero-padded
// MR-row tile would do MR rows' worth of FMAs for fewer real rows (the
// driver's plan_rows decides).
//
// An optional "sup" kernel (BLIS's small/unpacked path) computes a whole
// small product with nothing packed, for few rows of op(A) (the driver
// decides: at most sup_max_m rows, the table's own) and B not transposed:
//   C[0:m, 0:n] = alpha * A * B + beta * C,  A(i, p) = a[i*rsa + p*csa],
//   B(p, j) = b[p*ldb + j] (unit column stride), C row-major (ldc);
// any m, n >= 0 and k >= 1; same beta rule; no edges left to the driver.
#pragma once

#include <cstdint>

#include "blas3/pack.hpp"
#include "core/thresholds.hpp"

namespace matnet::detail {

template <class T>
using gemm_ukernel_fn = void (*)(std::int64_t k, T alpha, const T* a, const T* b, T beta,
                                 T* c, std::int64_t ldc);

template <class T>
using gemm_sup_fn = void (*)(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                             std::int64_t rsa, std::int64_t csa, const T* b, std::int64_t ldb,
                             T beta, T* c, std::int64_t ldc);

template <class T>
using gemm_ukernel_direct_fn = void (*)(std::int64_t k, T alpha, const T* a, std::int64_t lda,
                                        const T* b, T beta, T* c, std::int64_t ldc);

/// A microkernel together with the block sizes tuned for it (see blocking.hpp),
/// the packing routines of the same ISA and, when it has them, the direct-A
/// variants (null otherwise).
template <class T>
struct GemmKernel {
  int mr, nr;          // register tile
  int mc, kc, nc;      // cache blocks: A block mc x kc (L2), B panel kc x nc (L3)
  gemm_ukernel_fn<T> ukernel;
  const char* name;
  pack_a_fn<T> pack_a;
  pack_b_fn<T> pack_b;
  gemm_ukernel_direct_fn<T> ukernel_a_rows = nullptr;
  gemm_ukernel_direct_fn<T> ukernel_a_cols = nullptr;
  int mr_tail = 0;
  gemm_ukernel_fn<T> ukernel_tail = nullptr;
  gemm_sup_fn<T> sup = nullptr;
  std::int64_t sup_max_m = thresholds::sup_max_m;  // rows up to which sup beats packing
};

// One per ISA and dtype; each defined in its own translation unit.
const GemmKernel<float>& sgemm_kernel_generic();
const GemmKernel<double>& dgemm_kernel_generic();
const GemmKernel<float>& sgemm_kernel_avx2();
const GemmKernel<double>& dgemm_kernel_avx2();

// The AVX-512 table's GEMM kernels (gemm_sup_avx512.cpp): the AVX2 ones with
// the AVX-512 sup kernel.
const GemmKernel<float>& sgemm_kernel_avx512();
const GemmKernel<double>& dgemm_kernel_avx512();

// The AVX2 sup kernels (gemm_sup_avx2.cpp).
gemm_sup_fn<float> sgemm_sup_avx2();
gemm_sup_fn<double> dgemm_sup_avx2();

// The AVX2 tail kernels (gemm_ukernel_avx2_4rows.cpp).
void sgemm_ukernel_avx2_4x16(std::int64_t k, float alpha, const float* a, const float* b,
                             float beta, float* c, std::int64_t ldc);
void dgemm_ukernel_avx2_4x8(std::int64_t k, double alpha, const double* a, const double* b,
                            double beta, double* c, std::int64_t ldc);

}  // namespace matnet::detail
