// AVX-512 vectors behind the names of simd/vec_avx2.hpp (internal; include
// only from *_avx512.cpp files), so a loop written over a Vec type runs on
// either: 16 float / 8 double lanes, tails through mask registers.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace matnet::detail::avx512 {

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int lanes = 16;
  static V set1(float v) { return _mm512_set1_ps(v); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  /// Lanes [0, count) set; count in [0, lanes].
  static Mask mask(int count) { return static_cast<Mask>((1u << count) - 1u); }
  /// Lanes [lo, hi) set; 0 <= lo <= hi <= lanes.
  static Mask mask(int lo, int hi) { return static_cast<Mask>(mask(hi) & ~mask(lo)); }
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
};

template <>
struct Vec<double> {
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int lanes = 8;
  static V set1(double v) { return _mm512_set1_pd(v); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static Mask mask(int count) { return static_cast<Mask>((1u << count) - 1u); }
  static Mask mask(int lo, int hi) { return static_cast<Mask>(mask(hi) & ~mask(lo)); }
  static V load(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(double* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
};

}  // namespace matnet::detail::avx512
