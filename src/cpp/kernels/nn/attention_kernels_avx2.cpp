// AVX2 attention softmax loops, float32 (contract in attention_kernels.hpp),
// on the vectorised exp of ops/vmath_f32_avx2.hpp for arguments <= 0 (about
// 1 eps relative; the softmax's exponents are never positive).
// Compiled with -mavx2 -mfma, reached only through the registry.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "nn/attention_kernels.hpp"
#include "ops/vmath_f32_avx2.hpp"

namespace matnet::detail {

namespace {

using avx2::exp_nonpositive_ps;
using avx2::set1;

/// Lanes [0, rem) set, rem in [0, 8].
inline __m256i tail_mask(std::int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// The panel step for the columns [j, j + 8) (mask: lanes that exist).
template <bool Full>
inline void panel_columns(float* s, std::int64_t rows, int nr, int j, __m256i mask, float* m,
                          float* l, float* alpha) {
  auto ld = [&](const float* p) { return Full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask); };
  auto st = [&](float* p, __m256 v) {
    if (Full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, mask, v);
  };
  const __m256 m_old = ld(m + j);
  __m256 mx0 = m_old, mx1 = m_old;
  std::int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    mx0 = _mm256_max_ps(mx0, ld(s + r * nr + j));
    mx1 = _mm256_max_ps(mx1, ld(s + (r + 1) * nr + j));
  }
  if (r < rows) mx0 = _mm256_max_ps(mx0, ld(s + r * nr + j));
  const __m256 mx = _mm256_max_ps(mx0, mx1);
  const __m256 ninf = set1(-std::numeric_limits<float>::infinity());
  const __m256 shift = _mm256_blendv_ps(mx, _mm256_setzero_ps(), _mm256_cmp_ps(mx, ninf, _CMP_EQ_OQ));
  __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
  for (r = 0; r + 2 <= rows; r += 2) {
    const __m256 e0 = exp_nonpositive_ps(_mm256_sub_ps(ld(s + r * nr + j), shift));
    const __m256 e1 = exp_nonpositive_ps(_mm256_sub_ps(ld(s + (r + 1) * nr + j), shift));
    st(s + r * nr + j, e0);
    st(s + (r + 1) * nr + j, e1);
    sum0 = _mm256_add_ps(sum0, e0);
    sum1 = _mm256_add_ps(sum1, e1);
  }
  if (r < rows) {
    const __m256 e0 = exp_nonpositive_ps(_mm256_sub_ps(ld(s + r * nr + j), shift));
    st(s + r * nr + j, e0);
    sum0 = _mm256_add_ps(sum0, e0);
  }
  const __m256 a = exp_nonpositive_ps(_mm256_sub_ps(m_old, shift));
  st(alpha + j, a);
  st(l + j, _mm256_fmadd_ps(ld(l + j), a, _mm256_add_ps(sum0, sum1)));
  st(m + j, mx);
}

void softmax_panel(float* s, std::int64_t rows, int nr, float* m, float* l, float* alpha) {
  int j = 0;
  for (; j + 8 <= nr; j += 8) panel_columns<true>(s, rows, nr, j, __m256i{}, m, l, alpha);
  if (j < nr) panel_columns<false>(s, rows, nr, j, tail_mask(nr - j), m, l, alpha);
}

void softmax_grad_row(float* s, float* dp, std::int64_t n, float lse, float dsum) {
  if (lse == -std::numeric_limits<float>::infinity()) {
    for (std::int64_t i = 0; i < n; ++i) s[i] = dp[i] = 0.0f;
    return;
  }
  const __m256 vl = set1(lse), vd = set1(dsum);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 p = exp_nonpositive_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), vl));
    _mm256_storeu_ps(s + i, p);
    _mm256_storeu_ps(dp + i, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(dp + i), vd)));
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    const __m256 p = exp_nonpositive_ps(_mm256_sub_ps(_mm256_maskload_ps(s + i, mask), vl));
    _mm256_maskstore_ps(s + i, mask, p);
    _mm256_maskstore_ps(
        dp + i, mask, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_maskload_ps(dp + i, mask), vd)));
  }
}

}  // namespace

const AttentionKernels<float>& attention_f32_avx2() {
  static const AttentionKernels<float> k{softmax_panel, softmax_grad_row, "attention_f32_avx2"};
  return k;
}

}  // namespace matnet::detail
