// GEMM driver entry point (internal): the loops around the microkernel.
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

/// C = alpha*op(A)*op(B) + beta*C with the kernel of the active ISA, then the
/// epilogue (if not null) on every tile. Arguments as matnet::gemm; validates
/// them and throws std::invalid_argument on bad ones.
template <class T>
void gemm_run(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
              T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta,
              T* c, std::int64_t ldc, const GemmTileEpilogue<T>* epilogue);

/// Name of the microkernel gemm_run uses for T (e.g. "sgemm_ukernel_avx2_6x16").
template <class T>
const char* gemm_kernel_name();

/// Block sizes of the kernel gemm_run uses for T.
template <class T>
GemmBlocking gemm_blocking();

}  // namespace matnet::detail
