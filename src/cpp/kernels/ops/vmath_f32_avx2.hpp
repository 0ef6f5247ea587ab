// Vectorised float32 math for AVX2+FMA (internal; include only from *_avx2.cpp).
//
// Accuracy: the activations built from these functions meet the bounds
// stated in matnet/activations.hpp (measured over dense sweeps, tested in
// tests/test_activations.py). Building blocks (eps = 2^-23):
//   exp_ps       Cephes expf polynomial, about 1 eps relative for results
//                >= FLT_MIN; denormal results keep their absolute error < FLT_MIN.
//   sigmoid_ps   s and 1 - s each within 2 eps relative, for all x.
//   tanh_ps      within 2 eps relative.
//   normal_cdf_ps  Numerical Recipes' erfcc fit (fractional error < 1.2e-7)
//                plus the rounding of x^2 in exp(-x^2/2): relative error
//                about (2 + x^2/2) eps, i.e. a few eps of backward error in x.
// Special values: NaN in gives NaN out; +-Inf give the limits; -0 is kept
// where the function is odd.
#pragma once

#include <immintrin.h>

#include <cfloat>
#include <cmath>

namespace matnet::detail::avx2 {

inline __m256 set1(float v) { return _mm256_set1_ps(v); }

inline __m256 abs_ps(__m256 x) { return _mm256_andnot_ps(set1(-0.0f), x); }

/// x clamped to [lo, hi], NaN kept (max/min return their second operand when
/// one operand is NaN).
inline __m256 clamp_keep_nan(__m256 x, float lo, float hi) {
  return _mm256_min_ps(set1(hi), _mm256_max_ps(set1(lo), x));
}

/// e^(x - n ln2) for n = round(x / ln2): the Cody-Waite reduction to
/// |r| <= ln2/2 and Cephes' degree-6 polynomial for e^r (shared by the exp
/// functions below, which scale the result by 2^n).
inline __m256 exp_reduced_ps(__m256 xc, __m256 n) {
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m256 p = set1(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, set1(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, set1(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, set1(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, set1(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, set1(5.0000001201e-1f));
  const __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, set1(1.0f)));
  return y;
}

/// exp(x): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6
/// polynomial for e^r, then scaling by 2^n in two steps so that denormal
/// results come out right. Lanes whose result is certainly 0 (x < -104) or
/// +Inf (x > 88.8) are computed on a harmless stand-in and replaced at the
/// end: an underflowing or overflowing multiply costs a microcode assist on
/// many x86 cores, and GELU's exp(-x^2/2) underflows for most |x| > 14.
inline __m256 exp_ps(__m256 x) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 under = _mm256_cmp_ps(x, set1(-104.0f), _CMP_LT_OQ);
  const __m256 over = _mm256_cmp_ps(x, set1(88.8f), _CMP_GT_OQ);
  const __m256 xc = _mm256_blendv_ps(x, zero, _mm256_or_ps(under, over));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, set1(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 y = exp_reduced_ps(xc, n);
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  __m256 res = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  res = _mm256_blendv_ps(res, zero, under);
  res = _mm256_blendv_ps(res, set1(INFINITY), over);
  return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/// exp(x) for x <= 0 (or -inf), the softmax case: the polynomial of exp_ps
/// (about 1 eps relative) without its overflow, NaN and denormal handling,
/// so about half the instructions. Results below FLT_MIN (x < -87.33) are
/// flushed to 0, -inf gives 0, NaN gives NaN.
inline __m256 exp_nonpositive_ps(__m256 x) {
  const __m256 lo = set1(-87.33654f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 xc = _mm256_max_ps(lo, x);  // NaN kept (max returns its second operand)
  // n = round(x / ln2) in the low mantissa bits of t (t = x/ln2 + 1.5 * 2^23).
  const __m256 magic = set1(12582912.0f);
  const __m256 t = _mm256_fmadd_ps(xc, set1(1.44269504088896341f), magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  const __m256 y = exp_reduced_ps(xc, n);
  // 2^n: n + 127 into the exponent field (t's bits are magic + n; n >= -126).
  const __m256i bits = _mm256_add_epi32(_mm256_castps_si256(t),
                                        _mm256_set1_epi32(127 - 0x4B400000));
  const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(bits, 23));
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, scale));
}

/// sigmoid(x) and 1 - sigmoid(x), both to full relative accuracy: with
/// e = exp(-|x|), r = 1/(1+e) = sigmoid(|x|) and e*r = 1 - sigmoid(|x|).
inline void sigmoid_ps(__m256 x, __m256& s, __m256& one_minus_s) {
  const __m256 e = exp_ps(_mm256_or_ps(abs_ps(x), set1(-0.0f)));
  const __m256 r = _mm256_div_ps(set1(1.0f), _mm256_add_ps(set1(1.0f), e));
  const __m256 er = _mm256_mul_ps(e, r);
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  s = _mm256_blendv_ps(r, er, neg);
  one_minus_s = _mm256_blendv_ps(er, r, neg);
}

/// tanh(x): Cephes' odd polynomial for |x| < 0.625, else 1 - 2/(exp(2|x|)+1)
/// with the sign of x.
inline __m256 tanh_ps(__m256 x) {
  const __m256 ax = abs_ps(x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = set1(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, set1(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, set1(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, set1(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, set1(-3.33332819422e-1f));
  // With the sign of x put back: p z x + x rounds -0 to +0.
  const __m256 sign = _mm256_and_ps(x, set1(-0.0f));
  const __m256 small = _mm256_or_ps(abs_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x)), sign);
  const __m256 e = exp_ps(_mm256_add_ps(ax, ax));
  const __m256 q = _mm256_div_ps(set1(2.0f), _mm256_add_ps(e, set1(1.0f)));
  const __m256 large = _mm256_or_ps(_mm256_sub_ps(set1(1.0f), q), sign);
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, set1(0.625f), _CMP_LT_OQ));
}

/// 1 - tanh(x)^2 = 4 e / (1 + e)^2 with e = exp(-2|x|): no cancellation.
inline __m256 tanh_derivative_ps(__m256 x) {
  const __m256 ax = abs_ps(x);
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_add_ps(ax, ax)));
  const __m256 r = _mm256_div_ps(set1(1.0f), _mm256_add_ps(set1(1.0f), e));
  return _mm256_mul_ps(_mm256_mul_ps(set1(4.0f), e), _mm256_mul_ps(r, r));
}

/// Phi(x) = erfc(-x/sqrt 2)/2, the standard normal CDF. erfc(z), z >= 0, from
/// the Chebyshev fit of Numerical Recipes (erfcc, fractional error < 1.2e-7):
/// erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2); then Phi = erfc/2 for x < 0
/// and 1 - erfc/2 for x >= 0, so the left tail keeps its relative accuracy.
inline __m256 normal_cdf_ps(__m256 x) {
  const __m256 z = _mm256_mul_ps(abs_ps(x), set1(0.70710678118654752f));
  const __m256 t = _mm256_div_ps(set1(1.0f), _mm256_fmadd_ps(set1(0.5f), z, set1(1.0f)));
  __m256 p = set1(0.17087277f);
  p = _mm256_fmadd_ps(p, t, set1(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, set1(1.48851587f));
  p = _mm256_fmadd_ps(p, t, set1(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, set1(0.27886807f));
  p = _mm256_fmadd_ps(p, t, set1(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, set1(0.09678418f));
  p = _mm256_fmadd_ps(p, t, set1(0.37409196f));
  p = _mm256_fmadd_ps(p, t, set1(1.00002368f));
  p = _mm256_fmadd_ps(p, t, set1(-1.26551223f));
  const __m256 arg = _mm256_fnmadd_ps(z, z, p);  // -z^2 + P(t)
  const __m256 half_erfc = _mm256_mul_ps(_mm256_mul_ps(set1(0.5f), t), exp_ps(arg));
  const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
  return _mm256_blendv_ps(half_erfc, _mm256_sub_ps(set1(1.0f), half_erfc), pos);
}

/// phi(x) = exp(-x^2/2) / sqrt(2 pi), the standard normal density.
inline __m256 normal_pdf_ps(__m256 x) {
  const __m256 h = _mm256_mul_ps(_mm256_mul_ps(x, x), set1(-0.5f));
  return _mm256_mul_ps(exp_ps(h), set1(0.39894228040143267794f));
}

}  // namespace matnet::detail::avx2
