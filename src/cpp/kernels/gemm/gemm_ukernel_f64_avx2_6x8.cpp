// dgemm microkernel, AVX2 + FMA, 6 x 8 register tile (contract: ukernel.hpp).
//
// 12 ymm accumulators (6 rows x 2 vectors of 4 doubles), 2 for the B row and
// 2 for broadcast A elements: all 16 ymm registers. Each k step issues 12
// independent FMAs, enough to keep Zen 3's two FMA pipes (latency 4) busy.
//
// The k loop is inline assembly: with intrinsics GCC 12 spills an
// accumulator and adds register moves when the loop is unrolled (seen in
// objdump), costing ~10% of peak. The asm pins the 16 registers and leaves
// the setup and the C update (alpha, beta) to ordinary intrinsics.
#include <immintrin.h>

#include "gemm/blocking.hpp"
#include "gemm/ukernel.hpp"

namespace matnet::detail {
namespace {

constexpr int MR = 6;
constexpr int NR = 8;
static_assert(blocking::f64_avx2.mr == MR && blocking::f64_avx2.nr == NR);

// One k step: B row p (two vectors at byte offset BOFF from b) times the six
// A elements of column p (byte offset AOFF from a), into the 12 accumulators.
#define MATNET_D_STEP(AOFF, BOFF)                           \
  "vmovapd " #BOFF "(%[b]), %[b0]\n\t"                     \
  "vmovapd " #BOFF "+32(%[b]), %[b1]\n\t"                  \
  "vbroadcastsd " #AOFF "(%[a]), %[x0]\n\t"                \
  "vbroadcastsd " #AOFF "+8(%[a]), %[x1]\n\t"              \
  "vfmadd231pd %[b0], %[x0], %[c00]\n\t"                   \
  "vfmadd231pd %[b1], %[x0], %[c01]\n\t"                   \
  "vfmadd231pd %[b0], %[x1], %[c10]\n\t"                   \
  "vfmadd231pd %[b1], %[x1], %[c11]\n\t"                   \
  "vbroadcastsd " #AOFF "+16(%[a]), %[x0]\n\t"             \
  "vbroadcastsd " #AOFF "+24(%[a]), %[x1]\n\t"             \
  "vfmadd231pd %[b0], %[x0], %[c20]\n\t"                   \
  "vfmadd231pd %[b1], %[x0], %[c21]\n\t"                   \
  "vfmadd231pd %[b0], %[x1], %[c30]\n\t"                   \
  "vfmadd231pd %[b1], %[x1], %[c31]\n\t"                   \
  "vbroadcastsd " #AOFF "+32(%[a]), %[x0]\n\t"             \
  "vbroadcastsd " #AOFF "+40(%[a]), %[x1]\n\t"             \
  "vfmadd231pd %[b0], %[x0], %[c40]\n\t"                   \
  "vfmadd231pd %[b1], %[x0], %[c41]\n\t"                   \
  "vfmadd231pd %[b0], %[x1], %[c50]\n\t"                   \
  "vfmadd231pd %[b1], %[x1], %[c51]\n\t"

inline void store_row(double* c, __m256d lo, __m256d hi, __m256d alpha, __m256d beta,
                      bool read_c) {
  lo = _mm256_mul_pd(lo, alpha);
  hi = _mm256_mul_pd(hi, alpha);
  if (read_c) {
    lo = _mm256_fmadd_pd(beta, _mm256_loadu_pd(c), lo);
    hi = _mm256_fmadd_pd(beta, _mm256_loadu_pd(c + 4), hi);
  }
  _mm256_storeu_pd(c, lo);
  _mm256_storeu_pd(c + 4, hi);
}

void dgemm_ukernel_avx2_6x8(std::int64_t k, double alpha, const double* a, const double* b,
                            double beta, double* c, std::int64_t ldc) {
  __m256d c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;  // accumulators
  __m256d b0, b1, x0, x1;                                                // scratch

  // Warm the C tile while the k loop runs; it is written right after.
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }

  std::int64_t k4 = k / 4, k1 = k % 4;
  // Operand count (asm allows 30; "+" counts twice) is why the accumulators
  // are zeroed inside the asm and are outputs only.
  __asm__ volatile(
      "vxorpd %[c00], %[c00], %[c00]\n\t"
      "vxorpd %[c01], %[c01], %[c01]\n\t"
      "vxorpd %[c10], %[c10], %[c10]\n\t"
      "vxorpd %[c11], %[c11], %[c11]\n\t"
      "vxorpd %[c20], %[c20], %[c20]\n\t"
      "vxorpd %[c21], %[c21], %[c21]\n\t"
      "vxorpd %[c30], %[c30], %[c30]\n\t"
      "vxorpd %[c31], %[c31], %[c31]\n\t"
      "vxorpd %[c40], %[c40], %[c40]\n\t"
      "vxorpd %[c41], %[c41], %[c41]\n\t"
      "vxorpd %[c50], %[c50], %[c50]\n\t"
      "vxorpd %[c51], %[c51], %[c51]\n\t"
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "prefetcht0 768(%[a])\n\t"
      MATNET_D_STEP(0, 0)
      MATNET_D_STEP(48, 64)
      MATNET_D_STEP(96, 128)
      MATNET_D_STEP(144, 192)
      "add $192, %[a]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n"
      "3:\n\t"
      MATNET_D_STEP(0, 0)
      "add $48, %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n"
      "4:\n\t"
      : [a] "+r"(a), [b] "+r"(b), [k4] "+r"(k4), [k1] "+r"(k1),
        [c00] "=&x"(c00), [c01] "=&x"(c01), [c10] "=&x"(c10), [c11] "=&x"(c11),
        [c20] "=&x"(c20), [c21] "=&x"(c21), [c30] "=&x"(c30), [c31] "=&x"(c31),
        [c40] "=&x"(c40), [c41] "=&x"(c41), [c50] "=&x"(c50), [c51] "=&x"(c51),
        [b0] "=&x"(b0), [b1] "=&x"(b1), [x0] "=&x"(x0), [x1] "=&x"(x1)
      :
      : "cc", "memory");

  const __m256d va = _mm256_set1_pd(alpha);
  const __m256d vb = _mm256_set1_pd(beta);
  const bool read_c = beta != 0.0;
  store_row(c + 0 * ldc, c00, c01, va, vb, read_c);
  store_row(c + 1 * ldc, c10, c11, va, vb, read_c);
  store_row(c + 2 * ldc, c20, c21, va, vb, read_c);
  store_row(c + 3 * ldc, c30, c31, va, vb, read_c);
  store_row(c + 4 * ldc, c40, c41, va, vb, read_c);
  store_row(c + 5 * ldc, c50, c51, va, vb, read_c);
}

#undef MATNET_D_STEP

}  // namespace

const GemmKernel<double>& dgemm_kernel_avx2() {
  static const GemmKernel<double> kernel{MR,
                                        NR,
                                        blocking::f64_avx2.mc,
                                        blocking::f64_avx2.kc,
                                        blocking::f64_avx2.nc,
                                        &dgemm_ukernel_avx2_6x8,
                                        "dgemm_ukernel_avx2_6x8",
                                         &pack_a_block_avx2<double>,
                                         &pack_b_panel_avx2<double>};
  return kernel;
}

}  // namespace matnet::detail
