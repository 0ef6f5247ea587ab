// One AVX2 vector type per dtype behind the same names (internal; include
// only from *_avx2.cpp files), so a bandwidth-bound loop is written once for
// float and double.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace matnet::detail::avx2 {

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using V = __m256;
  static constexpr int lanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  /// Lanes [0, count) set; count in [0, lanes].
  static __m256i mask(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  /// Lanes [lo, hi) set; 0 <= lo <= hi <= lanes.
  static __m256i mask(int lo, int hi) { return _mm256_andnot_si256(mask(lo), mask(hi)); }
  static V load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Vec<double> {
  using V = __m256d;
  static constexpr int lanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(double v) { return _mm256_set1_pd(v); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static __m256i mask(int count) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static __m256i mask(int lo, int hi) { return _mm256_andnot_si256(mask(lo), mask(hi)); }
  static V load(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static void store(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
  static double hsum(V v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
};

}  // namespace matnet::detail::avx2
