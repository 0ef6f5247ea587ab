// float32 element-wise kernels for AVX2+FMA (compiled with -mavx2 -mfma; only
// reached through the kernel registry after the CPUID check). The math is
// in vmath_f32_avx2.hpp; this file is the loops: 8 lanes at a time, the tail
// through masked loads/stores so no lane reads or writes past the arrays.
#include <immintrin.h>

#include <cfloat>

#include "ops/eltwise.hpp"
#include "ops/scalar_math.hpp"
#include "ops/vmath_f32_avx2.hpp"

namespace matnet::detail {

namespace {

using avx2::set1;

inline __m256i tail_mask(std::int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// x * p(x) with x clamped from below to -FLT_MAX first (x -> -Inf gives
/// -0, where p -> 0); +Inf stays +Inf (p(+Inf) = 1), as scalar::clamp_below.
inline __m256 times_finite(__m256 x, __m256 p) {
  return _mm256_mul_ps(avx2::clamp_keep_nan(x, -FLT_MAX, INFINITY), p);
}

// ---- activation functors: f(v) and f'(v), with the slope for leaky_relu
struct Identity {
  __m256 f(__m256 v) const { return v; }
  __m256 d(__m256) const { return set1(1.0f); }
};
struct Relu {
  __m256 f(__m256 v) const { return _mm256_max_ps(_mm256_setzero_ps(), v); }  // keeps NaN
  __m256 d(__m256 v) const {
    return _mm256_and_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ), set1(1.0f));
  }
};
struct LeakyRelu {
  __m256 slope;
  __m256 f(__m256 v) const {
    return _mm256_blendv_ps(_mm256_mul_ps(slope, v), v,
                            _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
  __m256 d(__m256 v) const {
    return _mm256_blendv_ps(slope, set1(1.0f), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
};
struct Sigmoid {
  __m256 f(__m256 v) const {
    __m256 s, oms;
    avx2::sigmoid_ps(v, s, oms);
    return s;
  }
  __m256 d(__m256 v) const {
    __m256 s, oms;
    avx2::sigmoid_ps(v, s, oms);
    return _mm256_mul_ps(s, oms);
  }
};
struct Tanh {
  __m256 f(__m256 v) const { return avx2::tanh_ps(v); }
  __m256 d(__m256 v) const { return avx2::tanh_derivative_ps(v); }
};
struct Gelu {
  __m256 f(__m256 v) const { return times_finite(v, avx2::normal_cdf_ps(v)); }
  __m256 d(__m256 v) const {
    const __m256 xc = avx2::clamp_keep_nan(v, -FLT_MAX, FLT_MAX);
    return _mm256_fmadd_ps(xc, avx2::normal_pdf_ps(xc), avx2::normal_cdf_ps(v));
  }
};
struct GeluTanh {
  static constexpr float k0 = static_cast<float>(scalar::kGeluK0);
  static constexpr float k1 = static_cast<float>(scalar::kGeluK1);
  static constexpr float lim = static_cast<float>(scalar::kGeluTanhClamp);
  __m256 f(__m256 v) const {
    const __m256 xc = avx2::clamp_keep_nan(v, -lim, lim);
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(xc, xc), xc);
    const __m256 two_u = _mm256_mul_ps(set1(2.0f * k0), _mm256_fmadd_ps(set1(k1), x3, xc));
    __m256 s, oms;
    avx2::sigmoid_ps(two_u, s, oms);
    return times_finite(v, s);
  }
  __m256 d(__m256 v) const {
    const __m256 xc = avx2::clamp_keep_nan(v, -lim, lim);
    const __m256 x2 = _mm256_mul_ps(xc, xc);
    const __m256 two_u =
        _mm256_mul_ps(set1(2.0f * k0), _mm256_fmadd_ps(set1(k1), _mm256_mul_ps(x2, xc), xc));
    const __m256 two_du =
        _mm256_mul_ps(set1(2.0f * k0), _mm256_fmadd_ps(set1(3.0f * k1), x2, set1(1.0f)));
    __m256 s, oms;
    avx2::sigmoid_ps(two_u, s, oms);
    return _mm256_fmadd_ps(_mm256_mul_ps(xc, _mm256_mul_ps(s, oms)), two_du, s);
  }
};
struct Silu {
  __m256 f(__m256 v) const {
    __m256 s, oms;
    avx2::sigmoid_ps(v, s, oms);
    return times_finite(v, s);
  }
  __m256 d(__m256 v) const {
    __m256 s, oms;
    avx2::sigmoid_ps(v, s, oms);
    const __m256 xc = avx2::clamp_keep_nan(v, -FLT_MAX, FLT_MAX);
    return _mm256_mul_ps(s, _mm256_fmadd_ps(xc, oms, set1(1.0f)));
  }
};

template <class F>
void forward_loop(float* y, float* z, const float* x, const float* b, std::int64_t n, F fn) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (b != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
    if (z != nullptr) _mm256_storeu_ps(z + i, v);
    _mm256_storeu_ps(y + i, fn.f(v));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    __m256 v = _mm256_maskload_ps(x + i, m);
    if (b != nullptr) v = _mm256_add_ps(v, _mm256_maskload_ps(b + i, m));
    if (z != nullptr) _mm256_maskstore_ps(z + i, m, v);
    _mm256_maskstore_ps(y + i, m, fn.f(v));
  }
}

template <class F>
void tile_loop(float* c, std::int64_t ldc, float* z, std::int64_t ldz, const float* b, int rows,
               int cols, F fn) {
  for (int r = 0; r < rows; ++r)
    forward_loop(c + r * ldc, z != nullptr ? z + r * ldz : nullptr, c + r * ldc, b, cols, fn);
}

template <class F>
void backward_loop(float* dx, float* db, const float* g, const float* x, std::int64_t n, F fn) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_mul_ps(_mm256_loadu_ps(g + i), fn.d(_mm256_loadu_ps(x + i)));
    _mm256_storeu_ps(dx + i, d);
    if (db != nullptr) _mm256_storeu_ps(db + i, _mm256_add_ps(_mm256_loadu_ps(db + i), d));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 d =
        _mm256_mul_ps(_mm256_maskload_ps(g + i, m), fn.d(_mm256_maskload_ps(x + i, m)));
    _mm256_maskstore_ps(dx + i, m, d);
    if (db != nullptr)
      _mm256_maskstore_ps(db + i, m, _mm256_add_ps(_mm256_maskload_ps(db + i, m), d));
  }
}

void forward(float* y, float* z, const float* x, const float* b, std::int64_t n, Activation act,
             float slope) {
  switch (act) {
    case Activation::identity: return forward_loop(y, z, x, b, n, Identity{});
    case Activation::relu: return forward_loop(y, z, x, b, n, Relu{});
    case Activation::leaky_relu: return forward_loop(y, z, x, b, n, LeakyRelu{set1(slope)});
    case Activation::sigmoid: return forward_loop(y, z, x, b, n, Sigmoid{});
    case Activation::tanh: return forward_loop(y, z, x, b, n, Tanh{});
    case Activation::gelu: return forward_loop(y, z, x, b, n, Gelu{});
    case Activation::gelu_tanh: return forward_loop(y, z, x, b, n, GeluTanh{});
    case Activation::silu: return forward_loop(y, z, x, b, n, Silu{});
  }
}

void forward_tile(float* c, std::int64_t ldc, float* z, std::int64_t ldz, const float* b,
                  int rows, int cols, Activation act, float slope) {
  switch (act) {
    case Activation::identity: return tile_loop(c, ldc, z, ldz, b, rows, cols, Identity{});
    case Activation::relu: return tile_loop(c, ldc, z, ldz, b, rows, cols, Relu{});
    case Activation::leaky_relu:
      return tile_loop(c, ldc, z, ldz, b, rows, cols, LeakyRelu{set1(slope)});
    case Activation::sigmoid: return tile_loop(c, ldc, z, ldz, b, rows, cols, Sigmoid{});
    case Activation::tanh: return tile_loop(c, ldc, z, ldz, b, rows, cols, Tanh{});
    case Activation::gelu: return tile_loop(c, ldc, z, ldz, b, rows, cols, Gelu{});
    case Activation::gelu_tanh: return tile_loop(c, ldc, z, ldz, b, rows, cols, GeluTanh{});
    case Activation::silu: return tile_loop(c, ldc, z, ldz, b, rows, cols, Silu{});
  }
}

void backward(float* dx, float* db, const float* g, const float* x, std::int64_t n,
              Activation act, float slope) {
  switch (act) {
    case Activation::identity: return backward_loop(dx, db, g, x, n, Identity{});
    case Activation::relu: return backward_loop(dx, db, g, x, n, Relu{});
    case Activation::leaky_relu: return backward_loop(dx, db, g, x, n, LeakyRelu{set1(slope)});
    case Activation::sigmoid: return backward_loop(dx, db, g, x, n, Sigmoid{});
    case Activation::tanh: return backward_loop(dx, db, g, x, n, Tanh{});
    case Activation::gelu: return backward_loop(dx, db, g, x, n, Gelu{});
    case Activation::gelu_tanh: return backward_loop(dx, db, g, x, n, GeluTanh{});
    case Activation::silu: return backward_loop(dx, db, g, x, n, Silu{});
  }
}

float max_of(const float* x, std::int64_t n) {
  __m256 m = set1(-INFINITY);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    const __m256 v = _mm256_blendv_ps(set1(-INFINITY), _mm256_maskload_ps(x + i, mask),
                                      _mm256_castsi256_ps(mask));
    m = _mm256_max_ps(m, v);
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

/// Adds the 8 float lanes of v, widened to double, into acc0/acc1.
inline void add_wide(__m256 v, __m256d& acc0, __m256d& acc1) {
  acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

inline double hsum(__m256d acc0, __m256d acc1) {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

/// Products are formed in float (exact to 1 rounding) and summed in double.
double dot(const float* a, const float* b, std::int64_t n) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(a + i);
    if (b != nullptr) v = _mm256_mul_ps(v, _mm256_loadu_ps(b + i));
    add_wide(v, acc0, acc1);
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    __m256 v = _mm256_maskload_ps(a + i, mask);  // masked lanes read as 0
    if (b != nullptr) v = _mm256_mul_ps(v, _mm256_maskload_ps(b + i, mask));
    add_wide(v, acc0, acc1);
  }
  return hsum(acc0, acc1);
}

double exp_sum(float* y, const float* x, std::int64_t n, float shift) {
  const __m256 sh = set1(shift);
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
    if (y != nullptr) _mm256_storeu_ps(y + i, e);
    add_wide(e, acc0, acc1);
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    __m256 e = avx2::exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), sh));
    if (y != nullptr) _mm256_maskstore_ps(y + i, mask, e);
    e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));  // masked lanes add 0
    add_wide(e, acc0, acc1);
  }
  return hsum(acc0, acc1);
}

}  // namespace

const EltwiseKernels<float>& eltwise_f32_avx2() {
  static const EltwiseKernels<float> k{forward, forward_tile, backward, max_of, dot, exp_sum,
                                       "eltwise_f32_avx2"};
  return k;
}

}  // namespace matnet::detail
