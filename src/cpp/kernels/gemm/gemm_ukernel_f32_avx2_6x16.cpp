// sgemm microkernel, AVX2 + FMA, 6 x 16 register tile (contract: ukernel.hpp).
//
// 12 ymm accumulators (6 rows x 2 vectors of 8 floats), 2 for the B row and
// 1 for the broadcast A element: 15 of 16 ymm registers. Each k step issues
// 12 independent FMAs, enough to keep Zen 3's two FMA pipes (latency 4) busy.
#include <immintrin.h>

#include "gemm/blocking.hpp"
#include "gemm/ukernel.hpp"

namespace matnet::detail {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
static_assert(blocking::f32_avx2.mr == MR && blocking::f32_avx2.nr == NR);

#define MATNET_SGEMM_STEP(pa, pb)                                   \
  do {                                                              \
    const __m256 b0 = _mm256_load_ps(pb);                           \
    const __m256 b1 = _mm256_load_ps((pb) + 8);                     \
    __m256 av = _mm256_broadcast_ss((pa) + 0);                      \
    c00 = _mm256_fmadd_ps(av, b0, c00);                             \
    c01 = _mm256_fmadd_ps(av, b1, c01);                             \
    av = _mm256_broadcast_ss((pa) + 1);                             \
    c10 = _mm256_fmadd_ps(av, b0, c10);                             \
    c11 = _mm256_fmadd_ps(av, b1, c11);                             \
    av = _mm256_broadcast_ss((pa) + 2);                             \
    c20 = _mm256_fmadd_ps(av, b0, c20);                             \
    c21 = _mm256_fmadd_ps(av, b1, c21);                             \
    av = _mm256_broadcast_ss((pa) + 3);                             \
    c30 = _mm256_fmadd_ps(av, b0, c30);                             \
    c31 = _mm256_fmadd_ps(av, b1, c31);                             \
    av = _mm256_broadcast_ss((pa) + 4);                             \
    c40 = _mm256_fmadd_ps(av, b0, c40);                             \
    c41 = _mm256_fmadd_ps(av, b1, c41);                             \
    av = _mm256_broadcast_ss((pa) + 5);                             \
    c50 = _mm256_fmadd_ps(av, b0, c50);                             \
    c51 = _mm256_fmadd_ps(av, b1, c51);                             \
  } while (0)

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

void sgemm_ukernel_avx2_6x16(std::int64_t k, float alpha, const float* a, const float* b,
                             float beta, float* c, std::int64_t ldc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  // Warm the C tile while the k loop runs; it is written right after.
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }

  std::int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
    MATNET_SGEMM_STEP(a, b);
    MATNET_SGEMM_STEP(a + MR, b + NR);
    _mm_prefetch(reinterpret_cast<const char*>(b + 10 * NR), _MM_HINT_T0);
    MATNET_SGEMM_STEP(a + 2 * MR, b + 2 * NR);
    MATNET_SGEMM_STEP(a + 3 * MR, b + 3 * NR);
    a += 4 * MR;
    b += 4 * NR;
  }
  for (; p < k; ++p) {
    MATNET_SGEMM_STEP(a, b);
    a += MR;
    b += NR;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  store_row(c + 0 * ldc, c00, c01, va, vb, read_c);
  store_row(c + 1 * ldc, c10, c11, va, vb, read_c);
  store_row(c + 2 * ldc, c20, c21, va, vb, read_c);
  store_row(c + 3 * ldc, c30, c31, va, vb, read_c);
  store_row(c + 4 * ldc, c40, c41, va, vb, read_c);
  store_row(c + 5 * ldc, c50, c51, va, vb, read_c);
}

#undef MATNET_SGEMM_STEP

}  // namespace

const GemmKernel<float>& sgemm_kernel_avx2() {
  static const GemmKernel<float> kernel{MR,
                                        NR,
                                        blocking::f32_avx2.mc,
                                        blocking::f32_avx2.kc,
                                        blocking::f32_avx2.nc,
                                        &sgemm_ukernel_avx2_6x16,
                                        "sgemm_ukernel_avx2_6x16"};
  return kernel;
}

}  // namespace matnet::detail
