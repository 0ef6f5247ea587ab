// GEMM driver entry points (internal): the loops around the microkernel.
#pragma once

#include <cstdint>

#include "matnet/gemm.hpp"

namespace matnet::detail {

/// Optional work applied to each tile of C right after its final value is
/// stored, while the tile is still in L1: bias, activation, saving the
/// pre-activation. Tiles cover rows [i0, i0 + rows) and columns
/// [j0, j0 + cols) of C; `c` points at element (i0, j0). Different tiles may be
/// processed concurrently by different threads; each element of C is passed
/// exactly once.
template <class T>
struct GemmTileEpilogue {
  void (*apply)(const void* ctx, T* c, std::int64_t ldc, std::int64_t i0, std::int64_t j0,
                int rows, int cols);
  const void* ctx;
};

/// One operand op(X) of a product, as the driver reads it: element (i, j)
/// at data[i*rs + j*cs] (a row-major matrix has rs = ld, cs = 1; its
/// transpose rs = 1, cs = ld; any other strides are packed by a portable
/// loop), or, when `pack` is set, written by that callback straight into
/// the microkernel's packed layout (ukernel.hpp), so an implicit-GEMM
/// convolution, a strided batch or a triangular block supplies its own
/// packing without a copy of the driver:
///   A operand:  pack(ctx, i0, p0, rows, kc, mr, dst): rows [i0, i0+rows) x
///               columns [p0, p0+kc) as ceil(rows/mr) panels of mr rows,
///               each stored column by column, zero-padded;
///   B operand:  pack(ctx, p0, j0, kc, cols, nr, dst): rows [p0, p0+kc) x
///               columns [j0, j0+cols) (cols <= nr) as one panel stored row
///               by row, nr wide, zero-padded.
/// A callback must not throw; it may run on any thread of the team.
template <class T>
struct GemmOperand {
  const T* data = nullptr;
  std::int64_t rs = 0, cs = 1;
  void (*pack)(const void* ctx, std::int64_t r0, std::int64_t c0, std::int64_t rows,
               std::int64_t cols, int panel, T* dst) = nullptr;
  const void* ctx = nullptr;

  /// A BLAS-style operand: X row-major with leading dimension ld, op = X or X^T.
  static GemmOperand blas(const T* x, std::int64_t ld, bool trans) {
    GemmOperand o;
    o.data = x;
    o.rs = trans ? 1 : ld;
    o.cs = trans ? ld : 1;
    return o;
  }
};

/// C = alpha*op(A)*op(B) + beta*C on at most max_threads threads, then the
/// epilogue (if not null) on every tile. Arguments as matnet::gemm; validates
/// them and throws matnet::invalid_argument on bad ones.
template <class T>
void gemm_run(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
              T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta,
              T* c, std::int64_t ldc, const GemmTileEpilogue<T>* epilogue, int max_threads);

/// Throws matnet::invalid_argument (naming matnet::gemm) unless the
/// arguments describe a valid product.
template <class T>
void gemm_check_args(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c,
                     std::int64_t ldc);

/// The same product on operands (no validation: m, n, k >= 0, pointers and
/// strides valid for the shapes). C is row-major with leading dimension ldc.
/// Picks the path (GEMV for m == 1 or n == 1, unpacked sup for few rows,
/// packed otherwise) and the threads, up to max_threads.
template <class T>
void gemm_operands(std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                   const GemmOperand<T>& a, const GemmOperand<T>& b, T beta, T* c,
                   std::int64_t ldc, const GemmTileEpilogue<T>* epilogue, int max_threads);

/// `batch` products C_i = alpha*op(A_i)*op(B_i) + beta*C_i, where A_i is
/// the operand a with data a_ptrs[i] (likewise B_i), and C_i starts at
/// c_ptrs[i] (leading dimension ldc). Small products run one per thread,
/// larger ones one after another on all threads. Outputs must be disjoint
/// (not checked).
template <class T>
void gemm_batch_run(std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                    const GemmOperand<T>& a, const T* const* a_ptrs, const GemmOperand<T>& b,
                    const T* const* b_ptrs, T beta, T* const* c_ptrs, std::int64_t ldc,
                    std::int64_t batch, int max_threads);

/// Name of the microkernel gemm_run uses for T (e.g. "sgemm_ukernel_avx2_6x16").
template <class T>
const char* gemm_kernel_name();

/// Block sizes of the kernel gemm_run uses for T.
template <class T>
GemmBlocking gemm_blocking();

}  // namespace matnet::detail
