// Packing of A and B into the microkernel's panel layout (internal; layout in
// ukernel.hpp). Edge panels are zero-padded to the full MR or NR.
#pragma once

#include <cstdint>

namespace matnet::detail {

/// Packs rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) into ceil(mc/mr)
/// micro-panels of mr x kc, one after the other in dst.
template <class T>
void pack_a_block(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0, std::int64_t p0,
                  std::int64_t mc, std::int64_t kc, int mr, T* dst);

/// Packs the kc x nr micro-panel of op(B) whose top-left is (p0, j0), with
/// nr_valid <= nr real columns, into dst.
template <class T>
void pack_b_panel(const T* b, std::int64_t ldb, bool trans_b, std::int64_t p0, std::int64_t j0,
                  std::int64_t kc, int nr_valid, int nr, T* dst);

/// The same two layouts from an operand with any row stride rs and column
/// stride cs (op(X)[i][j] = x[i*rs + j*cs]): neither row- nor column-major
/// views (every other NumPy slice). Portable; the driver uses the ISA's
/// packers whenever one of the strides is 1.
template <class T>
void pack_a_strided(const T* a, std::int64_t rs, std::int64_t cs, std::int64_t i0,
                    std::int64_t p0, std::int64_t mc, std::int64_t kc, int mr, T* dst);
template <class T>
void pack_b_strided(const T* b, std::int64_t rs, std::int64_t cs, std::int64_t p0,
                    std::int64_t j0, std::int64_t kc, int nr_valid, int nr, T* dst);

/// AVX2 versions of the two functions above (pack_avx2.cpp; call only after
/// the CPUID check). Same contract and results; full panels of the 6x16
/// float / 6x8 double kernels are transposed in registers.
template <class T>
void pack_a_block_avx2(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0, std::int64_t p0,
                       std::int64_t mc, std::int64_t kc, int mr, T* dst);
template <class T>
void pack_b_panel_avx2(const T* b, std::int64_t ldb, bool trans_b, std::int64_t p0, std::int64_t j0,
                       std::int64_t kc, int nr_valid, int nr, T* dst);

template <class T>
using pack_a_fn = void (*)(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0,
                           std::int64_t p0, std::int64_t mc, std::int64_t kc, int mr, T* dst);
template <class T>
using pack_b_fn = void (*)(const T* b, std::int64_t ldb, bool trans_b, std::int64_t p0,
                           std::int64_t j0, std::int64_t kc, int nr_valid, int nr, T* dst);

}  // namespace matnet::detail
