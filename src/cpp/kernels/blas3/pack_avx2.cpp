// AVX2 packing for the 6x16 (float) and 6x8 (double) microkernels; same
// contract as pack.hpp. Only called after the CPUID check (runtime.cpp).
//
// The two layouts that need a transpose are done in registers, 8x8 (float)
// or 4x4 (double) at a time, instead of element by element:
//   - A not transposed: the 6 rows of a panel are contiguous in p, the panel
//     wants them interleaved (a[p*6 + r]);
//   - B transposed: 16 (8) rows of B^T are contiguous in p, the panel wants
//     them interleaved (b[p*NR + j]).
// Edge panels of a row-major B use masked loads, those of a transposed B
// zero rows in the transpose; edge rows of A and the k tails go to the
// portable code.
#include <immintrin.h>


#include "blas3/blocking.hpp"
#include "blas3/pack.hpp"

namespace matnet::detail {

namespace {

/// Columns of the 8x8 block whose rows are r[0..7]: out[j][i] = r[i][j].
inline void transpose8x8(__m256 r[8], __m256 out[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3, then 4-7
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    out[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    out[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

/// Columns of the 4x4 block whose rows are r[0..3].
inline void transpose4x4(__m256d r0, __m256d r1, __m256d r2, __m256d r3, __m256d out[4]) {
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  out[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  out[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  out[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  out[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

// ---- A panels (6 rows) -------------------------------------------------

/// Full 6-row panel of a row-major A: dst[p*6 + r] = a[(i0+r)*lda + p0+p].
void pack_a6_rows(const float* a, std::int64_t lda, std::int64_t kc, float* dst) {
  std::int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 r[8], col[8];
    for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(a + i * lda + p);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8x8(r, col);
    float* d = dst + p * 6;
    // Column j holds 6 valid values and 2 zeros; each store's tail is
    // overwritten by the next one, the last one stores exactly 6.
    for (int j = 0; j < 7; ++j) _mm256_storeu_ps(d + 6 * j, col[j]);
    _mm_storeu_ps(d + 42, _mm256_castps256_ps128(col[7]));
    _mm_storel_pi(reinterpret_cast<__m64*>(d + 46), _mm256_extractf128_ps(col[7], 1));
  }
  for (; p < kc; ++p)
    for (int i = 0; i < 6; ++i) dst[p * 6 + i] = a[i * lda + p];
}

void pack_a6_rows(const double* a, std::int64_t lda, std::int64_t kc, double* dst) {
  std::int64_t p = 0;
  for (; p + 4 <= kc; p += 4) {
    __m256d col[4];
    transpose4x4(_mm256_loadu_pd(a + p), _mm256_loadu_pd(a + lda + p),
                 _mm256_loadu_pd(a + 2 * lda + p), _mm256_loadu_pd(a + 3 * lda + p), col);
    const __m256d r4 = _mm256_loadu_pd(a + 4 * lda + p), r5 = _mm256_loadu_pd(a + 5 * lda + p);
    const __m256d lo = _mm256_unpacklo_pd(r4, r5), hi = _mm256_unpackhi_pd(r4, r5);
    double* d = dst + p * 6;
    _mm256_storeu_pd(d + 0, col[0]);
    _mm_storeu_pd(d + 4, _mm256_castpd256_pd128(lo));
    _mm256_storeu_pd(d + 6, col[1]);
    _mm_storeu_pd(d + 10, _mm256_castpd256_pd128(hi));
    _mm256_storeu_pd(d + 12, col[2]);
    _mm_storeu_pd(d + 16, _mm256_extractf128_pd(lo, 1));
    _mm256_storeu_pd(d + 18, col[3]);
    _mm_storeu_pd(d + 22, _mm256_extractf128_pd(hi, 1));
  }
  for (; p < kc; ++p)
    for (int i = 0; i < 6; ++i) dst[p * 6 + i] = a[i * lda + p];
}

/// Full 6-row panel of a transposed A (stored k x m): 6 contiguous values per p.
void pack_a6_cols(const float* a, std::int64_t lda, std::int64_t kc, float* dst) {
  for (std::int64_t p = 0; p < kc; ++p) {
    const float* s = a + p * lda;
    _mm_storeu_ps(dst + p * 6, _mm_loadu_ps(s));
    // Two floats at s + 4 are only 4-byte aligned: a 64-bit integer load
    // (unaligned, may-alias in GCC's definition) rather than _mm_load_sd.
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + p * 6 + 4),
                     _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + 4)));
  }
}

void pack_a6_cols(const double* a, std::int64_t lda, std::int64_t kc, double* dst) {
  for (std::int64_t p = 0; p < kc; ++p) {
    const double* s = a + p * lda;
    _mm256_storeu_pd(dst + p * 6, _mm256_loadu_pd(s));
    _mm_storeu_pd(dst + p * 6 + 4, _mm_loadu_pd(s + 4));
  }
}

// ---- B panels (64 bytes per row: 16 floats or 8 doubles) ----------------

/// Full panel of a row-major B: one 64-byte row per p.
template <class T>
void pack_b_rows(const T* b, std::int64_t ldb, std::int64_t kc, T* dst) {
  const float* s = reinterpret_cast<const float*>(b);
  float* d = reinterpret_cast<float*>(dst);
  const std::int64_t ld = ldb * static_cast<std::int64_t>(sizeof(T) / sizeof(float));
  for (std::int64_t p = 0; p < kc; ++p) {
    _mm256_store_ps(d + p * 16, _mm256_loadu_ps(s + p * ld));
    _mm256_store_ps(d + p * 16 + 8, _mm256_loadu_ps(s + p * ld + 8));
  }
}

/// Edge panel of a row-major B: `valid` < 16 floats (8 doubles) per row, the
/// rest zero. Masked loads never touch (or fault on) the columns past n.
void pack_b_rows_edge(const float* b, std::int64_t ldb, std::int64_t kc, int valid, float* dst) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid - 8), lane);
  for (std::int64_t p = 0; p < kc; ++p) {
    _mm256_store_ps(dst + p * 16, _mm256_maskload_ps(b + p * ldb, m0));
    _mm256_store_ps(dst + p * 16 + 8, _mm256_maskload_ps(b + p * ldb + 8, m1));
  }
}

void pack_b_rows_edge(const double* b, std::int64_t ldb, std::int64_t kc, int valid, double* dst) {
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
  const __m256i m0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(valid), lane);
  const __m256i m1 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(valid - 4), lane);
  for (std::int64_t p = 0; p < kc; ++p) {
    _mm256_store_pd(dst + p * 8, _mm256_maskload_pd(b + p * ldb, m0));
    _mm256_store_pd(dst + p * 8 + 4, _mm256_maskload_pd(b + p * ldb + 4, m1));
  }
}

/// 16-column panel of a transposed B (stored n x k) with `valid` columns
/// (rows of the stored B): dst[p*16 + j] = b[j*ldb + p] for j < valid, 0
/// beyond. Edge panels too: conv2d's dW reads its im2col chunk this way,
/// and Kg = 27 (3 channels, 3x3) leaves an 11-column edge panel that took
/// 29% of dW's time element by element.
void pack_b_cols(const float* b, std::int64_t ldb, std::int64_t kc, int valid, float* dst) {
  std::int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    for (int h = 0; h < 2; ++h) {
      __m256 r[8], col[8];
      for (int j = 0; j < 8; ++j)
        r[j] = 8 * h + j < valid ? _mm256_loadu_ps(b + (8 * h + j) * ldb + p) : _mm256_setzero_ps();
      transpose8x8(r, col);
      for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * 16 + 8 * h, col[q]);
    }
  }
  for (; p < kc; ++p)
    for (int j = 0; j < 16; ++j) dst[p * 16 + j] = j < valid ? b[j * ldb + p] : 0.0f;
}

void pack_b_cols(const double* b, std::int64_t ldb, std::int64_t kc, int valid, double* dst) {
  std::int64_t p = 0;
  for (; p + 4 <= kc; p += 4) {
    for (int h = 0; h < 2; ++h) {
      const double* s = b + 4 * h * ldb + p;
      __m256d r[4], col[4];
      for (int j = 0; j < 4; ++j)
        r[j] = 4 * h + j < valid ? _mm256_loadu_pd(s + j * ldb) : _mm256_setzero_pd();
      transpose4x4(r[0], r[1], r[2], r[3], col);
      for (int q = 0; q < 4; ++q) _mm256_store_pd(dst + (p + q) * 8 + 4 * h, col[q]);
    }
  }
  for (; p < kc; ++p)
    for (int j = 0; j < 8; ++j) dst[p * 8 + j] = j < valid ? b[j * ldb + p] : 0.0;
}

}  // namespace

template <class T>
void pack_a_block_avx2(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0, std::int64_t p0,
                       std::int64_t mc, std::int64_t kc, int mr, T* dst) {
  std::int64_t i = 0;
  if (mr == 6) {
    for (; i + 6 <= mc; i += 6) {
      if (trans_a) {
        pack_a6_cols(a + p0 * lda + i0 + i, lda, kc, dst + i * kc);
      } else {
        pack_a6_rows(a + (i0 + i) * lda + p0, lda, kc, dst + i * kc);
      }
    }
  }
  if (i < mc) pack_a_block(a, lda, trans_a, i0 + i, p0, mc - i, kc, mr, dst + i * kc);
}

template <class T>
void pack_b_panel_avx2(const T* b, std::int64_t ldb, bool trans_b, std::int64_t p0, std::int64_t j0,
                       std::int64_t kc, int nr_valid, int nr, T* dst) {
  if (nr * sizeof(T) == 64) {
    if (trans_b) {
      pack_b_cols(b + j0 * ldb + p0, ldb, kc, nr_valid, dst);
      return;
    }
    if (!trans_b) {
      if (nr_valid == nr) {
        pack_b_rows(b + p0 * ldb + j0, ldb, kc, dst);
      } else {
        pack_b_rows_edge(b + p0 * ldb + j0, ldb, kc, nr_valid, dst);
      }
      return;
    }
  }
  pack_b_panel(b, ldb, trans_b, p0, j0, kc, nr_valid, nr, dst);
}

template void pack_a_block_avx2<float>(const float*, std::int64_t, bool, std::int64_t,
                                       std::int64_t, std::int64_t, std::int64_t, int, float*);
template void pack_a_block_avx2<double>(const double*, std::int64_t, bool, std::int64_t,
                                        std::int64_t, std::int64_t, std::int64_t, int, double*);
template void pack_b_panel_avx2<float>(const float*, std::int64_t, bool, std::int64_t,
                                       std::int64_t, std::int64_t, int, int, float*);
template void pack_b_panel_avx2<double>(const double*, std::int64_t, bool, std::int64_t,
                                        std::int64_t, std::int64_t, int, int, double*);

}  // namespace matnet::detail
