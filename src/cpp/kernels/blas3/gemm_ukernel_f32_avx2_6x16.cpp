// sgemm microkernels, AVX2 + FMA, 6 x 16 register tile (contract: ukernel.hpp).
//
// 12 ymm accumulators (6 rows x 2 vectors of 8 floats), 2 for the B row and
// 2 for broadcast A elements: all 16 ymm registers. Each k step issues 12
// independent FMAs, enough to keep Zen 3's two FMA pipes (latency 4) busy.
//
// The k loops are inline assembly: with intrinsics GCC 12 spills an
// accumulator and adds register moves when the loop is unrolled (seen in
// objdump), costing ~10% of peak. The asm pins the 16 registers and leaves
// the C update (alpha, beta) to ordinary intrinsics.
//
// Three kernels share the loop; they differ only in where A comes from:
//   packed    A micro-panel, a[p*6 + i]            (the contract's layout)
//   a_rows    A read in place, row-major:   a[i*lda + p]
//   a_cols    A read in place, transposed:  a[p*lda + i]
// The last two let small products skip packing A (see the driver).
#include <immintrin.h>

#include "blas3/blocking.hpp"
#include "blas3/ukernel.hpp"

namespace matnet::detail {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
static_assert(blocking::f32_avx2.mr == MR && blocking::f32_avx2.nr == NR);

// One k step: B row p (two vectors at byte offset BOFF from b) times the six
// A elements of column p (at addresses A0..A5), into the 12 accumulators.
#define MATNET_S_STEP(A0, A1, A2, A3, A4, A5, BOFF) \
  "vmovaps " #BOFF "(%[b]), %[b0]\n\t"             \
  "vmovaps " #BOFF "+32(%[b]), %[b1]\n\t"          \
  "vbroadcastss " A0 ", %[x0]\n\t"                 \
  "vbroadcastss " A1 ", %[x1]\n\t"                 \
  "vfmadd231ps %[b0], %[x0], %[c00]\n\t"           \
  "vfmadd231ps %[b1], %[x0], %[c01]\n\t"           \
  "vfmadd231ps %[b0], %[x1], %[c10]\n\t"           \
  "vfmadd231ps %[b1], %[x1], %[c11]\n\t"           \
  "vbroadcastss " A2 ", %[x0]\n\t"                 \
  "vbroadcastss " A3 ", %[x1]\n\t"                 \
  "vfmadd231ps %[b0], %[x0], %[c20]\n\t"           \
  "vfmadd231ps %[b1], %[x0], %[c21]\n\t"           \
  "vfmadd231ps %[b0], %[x1], %[c30]\n\t"           \
  "vfmadd231ps %[b1], %[x1], %[c31]\n\t"           \
  "vbroadcastss " A4 ", %[x0]\n\t"                 \
  "vbroadcastss " A5 ", %[x1]\n\t"                 \
  "vfmadd231ps %[b0], %[x0], %[c40]\n\t"           \
  "vfmadd231ps %[b1], %[x0], %[c41]\n\t"           \
  "vfmadd231ps %[b0], %[x1], %[c50]\n\t"           \
  "vfmadd231ps %[b1], %[x1], %[c51]\n\t"

// Packed A: column p is 6 consecutive floats at byte offset AOFF from a.
#define MATNET_S_STEP_PACKED(AOFF, BOFF)                                          \
  MATNET_S_STEP(#AOFF "(%[a])", #AOFF "+4(%[a])", #AOFF "+8(%[a])", #AOFF "+12(%[a])", \
                #AOFF "+16(%[a])", #AOFF "+20(%[a])", BOFF)

// Row-major A: rows 0-2 from a0, rows 3-5 from a3 = a0 + 3 lda; D = 4p bytes.
#define MATNET_S_STEP_ROWS(D, BOFF)                                                \
  MATNET_S_STEP(#D "(%[a0])", #D "(%[a0],%[ld],1)", #D "(%[a0],%[ld],2)", #D "(%[a3])", \
                #D "(%[a3],%[ld],1)", #D "(%[a3],%[ld],2)", BOFF)

// Transposed A: column p is 6 consecutive floats at address BASE.
#define MATNET_S_STEP_COLS(BASE, BOFF)                                              \
  MATNET_S_STEP("0" BASE, "4" BASE, "8" BASE, "12" BASE, "16" BASE, "20" BASE, BOFF)

// Zeroes the accumulators (they are asm outputs only: an asm statement has
// at most 30 operands and a "+" operand counts twice).
#define MATNET_S_ZERO                                                               \
  "vxorps %[c00], %[c00], %[c00]\n\t" "vxorps %[c01], %[c01], %[c01]\n\t"          \
  "vxorps %[c10], %[c10], %[c10]\n\t" "vxorps %[c11], %[c11], %[c11]\n\t"          \
  "vxorps %[c20], %[c20], %[c20]\n\t" "vxorps %[c21], %[c21], %[c21]\n\t"          \
  "vxorps %[c30], %[c30], %[c30]\n\t" "vxorps %[c31], %[c31], %[c31]\n\t"          \
  "vxorps %[c40], %[c40], %[c40]\n\t" "vxorps %[c41], %[c41], %[c41]\n\t"          \
  "vxorps %[c50], %[c50], %[c50]\n\t" "vxorps %[c51], %[c51], %[c51]\n\t"

#define MATNET_S_ACC_OPERANDS                                                      \
  [c00] "=&x"(t.c00), [c01] "=&x"(t.c01), [c10] "=&x"(t.c10), [c11] "=&x"(t.c11),  \
  [c20] "=&x"(t.c20), [c21] "=&x"(t.c21), [c30] "=&x"(t.c30), [c31] "=&x"(t.c31),  \
  [c40] "=&x"(t.c40), [c41] "=&x"(t.c41), [c50] "=&x"(t.c50), [c51] "=&x"(t.c51),  \
  [b0] "=&x"(b0), [b1] "=&x"(b1), [x0] "=&x"(x0), [x1] "=&x"(x1)

/// The 6 x 16 accumulator tile.
struct Tile {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
};

inline void store_row(float* c, __m256 lo, __m256 hi, __m256 alpha, __m256 beta, bool read_c) {
  lo = _mm256_mul_ps(lo, alpha);
  hi = _mm256_mul_ps(hi, alpha);
  if (read_c) {
    lo = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), lo);
    hi = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), hi);
  }
  _mm256_storeu_ps(c, lo);
  _mm256_storeu_ps(c + 8, hi);
}

/// C = alpha * tile + beta * C (C not read when beta == 0).
inline void store_tile(const Tile& t, float alpha, float beta, float* c, std::int64_t ldc) {
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  store_row(c + 0 * ldc, t.c00, t.c01, va, vb, read_c);
  store_row(c + 1 * ldc, t.c10, t.c11, va, vb, read_c);
  store_row(c + 2 * ldc, t.c20, t.c21, va, vb, read_c);
  store_row(c + 3 * ldc, t.c30, t.c31, va, vb, read_c);
  store_row(c + 4 * ldc, t.c40, t.c41, va, vb, read_c);
  store_row(c + 5 * ldc, t.c50, t.c51, va, vb, read_c);
}

/// Warm the C tile while the k loop runs; it is written right after.
inline void prefetch_c(const float* c, std::int64_t ldc) {
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
}

void sgemm_ukernel_avx2_6x16(std::int64_t k, float alpha, const float* a, const float* b,
                             float beta, float* c, std::int64_t ldc) {
  prefetch_c(c, ldc);
  Tile t;
  __m256 b0, b1, x0, x1;
  std::int64_t k4 = k / 4, k1 = k % 4;
  __asm__ volatile(
      MATNET_S_ZERO
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "prefetcht0 384(%[a])\n\t"
      MATNET_S_STEP_PACKED(0, 0)
      MATNET_S_STEP_PACKED(24, 64)
      MATNET_S_STEP_PACKED(48, 128)
      MATNET_S_STEP_PACKED(72, 192)
      "add $96, %[a]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n"
      "3:\n\t"
      MATNET_S_STEP_PACKED(0, 0)
      "add $24, %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n"
      "4:\n\t"
      : [a] "+r"(a), [b] "+r"(b), [k4] "+r"(k4), [k1] "+r"(k1), MATNET_S_ACC_OPERANDS
      :
      : "cc", "memory");
  store_tile(t, alpha, beta, c, ldc);
}

void sgemm_ukernel_avx2_6x16_a_rows(std::int64_t k, float alpha, const float* a,
                                    std::int64_t lda, const float* b, float beta, float* c,
                                    std::int64_t ldc) {
  prefetch_c(c, ldc);
  Tile t;
  __m256 b0, b1, x0, x1;
  std::int64_t k4 = k / 4, k1 = k % 4;
  const float* a0 = a;
  const float* a3 = a + 3 * lda;
  const std::int64_t ld = lda * 4;  // bytes
  __asm__ volatile(
      MATNET_S_ZERO
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      MATNET_S_STEP_ROWS(0, 0)
      MATNET_S_STEP_ROWS(4, 64)
      MATNET_S_STEP_ROWS(8, 128)
      MATNET_S_STEP_ROWS(12, 192)
      "add $16, %[a0]\n\t"
      "add $16, %[a3]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n"
      "3:\n\t"
      MATNET_S_STEP_ROWS(0, 0)
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n"
      "4:\n\t"
      : [a0] "+r"(a0), [a3] "+r"(a3), [b] "+r"(b), [k4] "+r"(k4), [k1] "+r"(k1),
        MATNET_S_ACC_OPERANDS
      : [ld] "r"(ld)
      : "cc", "memory");
  store_tile(t, alpha, beta, c, ldc);
}

void sgemm_ukernel_avx2_6x16_a_cols(std::int64_t k, float alpha, const float* a,
                                    std::int64_t lda, const float* b, float beta, float* c,
                                    std::int64_t ldc) {
  prefetch_c(c, ldc);
  Tile t;
  __m256 b0, b1, x0, x1;
  std::int64_t k4 = k / 4, k1 = k % 4;
  const std::int64_t ld = lda * 4, ld3 = lda * 12;  // bytes
  __asm__ volatile(
      MATNET_S_ZERO
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      MATNET_S_STEP_COLS("(%[a])", 0)
      MATNET_S_STEP_COLS("(%[a],%[ld],1)", 64)
      MATNET_S_STEP_COLS("(%[a],%[ld],2)", 128)
      MATNET_S_STEP_COLS("(%[a],%[ld3],1)", 192)
      "lea (%[a],%[ld],4), %[a]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n"
      "3:\n\t"
      MATNET_S_STEP_COLS("(%[a])", 0)
      "add %[ld], %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n"
      "4:\n\t"
      : [a] "+r"(a), [b] "+r"(b), [k4] "+r"(k4), [k1] "+r"(k1), MATNET_S_ACC_OPERANDS
      : [ld] "r"(ld), [ld3] "r"(ld3)
      : "cc", "memory");
  store_tile(t, alpha, beta, c, ldc);
}

#undef MATNET_S_STEP
#undef MATNET_S_STEP_PACKED
#undef MATNET_S_STEP_ROWS
#undef MATNET_S_STEP_COLS
#undef MATNET_S_ZERO
#undef MATNET_S_ACC_OPERANDS

}  // namespace

const GemmKernel<float>& sgemm_kernel_avx2() {
  constexpr auto s = blocking::f32_avx2;
  static const GemmKernel<float> kernel{MR,
                                        NR,
                                        s.mc,
                                        s.kc,
                                        s.nc,
                                        &sgemm_ukernel_avx2_6x16,
                                        "sgemm_ukernel_avx2_6x16",
                                        &pack_a_block_avx2<float>,
                                        &pack_b_panel_avx2<float>,
                                        &sgemm_ukernel_avx2_6x16_a_rows,
                                        &sgemm_ukernel_avx2_6x16_a_cols,
                                        4,
                                        &sgemm_ukernel_avx2_4x16,
                                        sgemm_sup_avx2()};
  return kernel;
}

}  // namespace matnet::detail
