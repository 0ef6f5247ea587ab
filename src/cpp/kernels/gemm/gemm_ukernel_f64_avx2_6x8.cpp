// dgemm microkernel, AVX2 + FMA, 6 x 8 register tile (contract: ukernel.hpp).
//
// 12 ymm accumulators (6 rows x 2 vectors of 4 doubles), 2 for the B row and
// 1 for the broadcast A element: 15 of 16 ymm registers. Each k step issues
// 12 independent FMAs, enough to keep Zen 3's two FMA pipes (latency 4) busy.
#include <immintrin.h>

#include "gemm/blocking.hpp"
#include "gemm/ukernel.hpp"

namespace matnet::detail {
namespace {

constexpr int MR = 6;
constexpr int NR = 8;
static_assert(blocking::f64_avx2.mr == MR && blocking::f64_avx2.nr == NR);

#define MATNET_DGEMM_STEP(pa, pb)                                   \
  do {                                                              \
    const __m256d b0 = _mm256_load_pd(pb);                           \
    const __m256d b1 = _mm256_load_pd((pb) + 4);                     \
    __m256d av = _mm256_broadcast_sd((pa) + 0);                      \
    c00 = _mm256_fmadd_pd(av, b0, c00);                             \
    c01 = _mm256_fmadd_pd(av, b1, c01);                             \
    av = _mm256_broadcast_sd((pa) + 1);                             \
    c10 = _mm256_fmadd_pd(av, b0, c10);                             \
    c11 = _mm256_fmadd_pd(av, b1, c11);                             \
    av = _mm256_broadcast_sd((pa) + 2);                             \
    c20 = _mm256_fmadd_pd(av, b0, c20);                             \
    c21 = _mm256_fmadd_pd(av, b1, c21);                             \
    av = _mm256_broadcast_sd((pa) + 3);                             \
    c30 = _mm256_fmadd_pd(av, b0, c30);                             \
    c31 = _mm256_fmadd_pd(av, b1, c31);                             \
    av = _mm256_broadcast_sd((pa) + 4);                             \
    c40 = _mm256_fmadd_pd(av, b0, c40);                             \
    c41 = _mm256_fmadd_pd(av, b1, c41);                             \
    av = _mm256_broadcast_sd((pa) + 5);                             \
    c50 = _mm256_fmadd_pd(av, b0, c50);                             \
    c51 = _mm256_fmadd_pd(av, b1, c51);                             \
  } while (0)

inline void store_row(double* c, __m256d lo, __m256d hi, __m256d alpha, __m256d beta, bool read_c) {
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
  __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
  __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
  __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
  __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
  __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
  __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();

  // Warm the C tile while the k loop runs; it is written right after.
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }

  std::int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
    MATNET_DGEMM_STEP(a, b);
    MATNET_DGEMM_STEP(a + MR, b + NR);
    _mm_prefetch(reinterpret_cast<const char*>(b + 10 * NR), _MM_HINT_T0);
    MATNET_DGEMM_STEP(a + 2 * MR, b + 2 * NR);
    MATNET_DGEMM_STEP(a + 3 * MR, b + 3 * NR);
    a += 4 * MR;
    b += 4 * NR;
  }
  for (; p < k; ++p) {
    MATNET_DGEMM_STEP(a, b);
    a += MR;
    b += NR;
  }

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

#undef MATNET_DGEMM_STEP

}  // namespace

const GemmKernel<double>& dgemm_kernel_avx2() {
  static const GemmKernel<double> kernel{MR,
                                        NR,
                                        blocking::f64_avx2.mc,
                                        blocking::f64_avx2.kc,
                                        blocking::f64_avx2.nc,
                                        &dgemm_ukernel_avx2_6x8,
                                        "dgemm_ukernel_avx2_6x8"};
  return kernel;
}

}  // namespace matnet::detail
