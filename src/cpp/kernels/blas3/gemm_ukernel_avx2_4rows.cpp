// 4-row "tail" microkernels, AVX2 + FMA: sgemm 4 x 16 and dgemm 4 x 8
// (contract: ukernel.hpp, with MR = 4: a[p*4 + i]).
//
// Why: a block of m rows is covered by 6-row tiles, and when m is not a
// multiple of 6 the last tile is padded. A padded 6-row tile costs as much
// as a full one (the FMAs run on zeros), so 128 = 21 x 6 + 2 would pay for
// 132 rows, and batch 32 for 36. A 4-row tile costs 4/6 of a 6-row one
// (8 accumulators: 8 FMAs per k step, just enough to fill two pipes of
// latency 4), so the driver covers the last 6 + 2 rows with two of them
// (128 = 20 x 6 + 2 x 4: no padding at all) -- see plan_rows.
//
// Intrinsics are enough here: 8 accumulators + 2 B vectors + 1 broadcast
// leave GCC registers to spare (checked in objdump: no spills in the loop).
#include <immintrin.h>

#include "blas3/ukernel.hpp"

namespace matnet::detail {
namespace {

struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int lanes = 8;
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V zero() { return _mm256_setzero_ps(); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int lanes = 4;
  static V load(const double* p) { return _mm256_load_pd(p); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V zero() { return _mm256_setzero_pd(); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
};

/// C[0:4, 0:2*lanes] = alpha * Apanel(4 x k) * Bpanel(k x 2*lanes) + beta * C.
template <class S>
void gemm_ukernel_4rows(std::int64_t k, typename S::T alpha, const typename S::T* a,
                        const typename S::T* b, typename S::T beta, typename S::T* c,
                        std::int64_t ldc) {
  using V = typename S::V;
  constexpr int L = S::lanes;
  V c00 = S::zero(), c01 = S::zero(), c10 = S::zero(), c11 = S::zero();
  V c20 = S::zero(), c21 = S::zero(), c30 = S::zero(), c31 = S::zero();
#pragma GCC unroll 4
  for (std::int64_t p = 0; p < k; ++p) {
    const V b0 = S::load(b), b1 = S::load(b + L);
    V x = S::broadcast(a + 0);
    c00 = S::fmadd(x, b0, c00);
    c01 = S::fmadd(x, b1, c01);
    x = S::broadcast(a + 1);
    c10 = S::fmadd(x, b0, c10);
    c11 = S::fmadd(x, b1, c11);
    x = S::broadcast(a + 2);
    c20 = S::fmadd(x, b0, c20);
    c21 = S::fmadd(x, b1, c21);
    x = S::broadcast(a + 3);
    c30 = S::fmadd(x, b0, c30);
    c31 = S::fmadd(x, b1, c31);
    a += 4;
    b += 2 * L;
  }
  const V va = S::set1(alpha), vb = S::set1(beta);
  const V rows[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
  for (int i = 0; i < 4; ++i) {
    typename S::T* ci = c + i * ldc;
    V lo = S::mul(rows[i][0], va), hi = S::mul(rows[i][1], va);
    if (beta != typename S::T(0)) {  // beta == 0: C is not read (may hold NaN)
      lo = S::fmadd(vb, S::loadu(ci), lo);
      hi = S::fmadd(vb, S::loadu(ci + L), hi);
    }
    S::storeu(ci, lo);
    S::storeu(ci + L, hi);
  }
}

}  // namespace

void sgemm_ukernel_avx2_4x16(std::int64_t k, float alpha, const float* a, const float* b,
                             float beta, float* c, std::int64_t ldc) {
  gemm_ukernel_4rows<F32>(k, alpha, a, b, beta, c, ldc);
}

void dgemm_ukernel_avx2_4x8(std::int64_t k, double alpha, const double* a, const double* b,
                            double beta, double* c, std::int64_t ldc) {
  gemm_ukernel_4rows<F64>(k, alpha, a, b, beta, c, ldc);
}

}  // namespace matnet::detail
