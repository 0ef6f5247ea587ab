// AVX2 GEMV kernels, float and double (contract: gemv_kernels.hpp; compiled
// with -mavx2 -mfma, reached only through the registry after the CPUID
// check). Edges through masked loads/stores: nothing is read or written past
// the arrays.
#include <algorithm>

#include "blas2/gemv_kernels.hpp"
#include "simd/vec_avx2.hpp"

namespace matnet::detail {
namespace {

using avx2::Vec;

/// y[0..R) for R rows of A: R dot products with x, NA accumulators each
/// (an FMA has 4-5 cycles of latency: R * NA >= 8 chains keep both FMA
/// pipes busy).
template <class T, int R, int NA>
void dot_rows(std::int64_t n, T alpha, const T* a, std::int64_t lda, const T* x, T beta, T* y) {
  using S = Vec<T>;
  constexpr int L = S::lanes;
  typename S::V acc[R][NA];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < NA; ++u) acc[r][u] = S::zero();
  std::int64_t j = 0;
  for (; j + NA * L <= n; j += NA * L) {
    for (int u = 0; u < NA; ++u) {
      const auto xu = S::load(x + j + u * L);
      for (int r = 0; r < R; ++r) acc[r][u] = S::fma(S::load(a + r * lda + j + u * L), xu, acc[r][u]);
    }
  }
  for (; j < n; j += L) {
    const auto m = S::mask(static_cast<int>(std::min<std::int64_t>(L, n - j)));
    const auto x0 = S::load(x + j, m);
    for (int r = 0; r < R; ++r) acc[r][0] = S::fma(S::load(a + r * lda + j, m), x0, acc[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    auto sum = acc[r][0];
    for (int u = 1; u < NA; ++u) sum = S::add(sum, acc[r][u]);
    const T dot = S::hsum(sum);
    y[r] = beta == T(0) ? alpha * dot : alpha * dot + beta * y[r];
  }
}

template <class T>
void gemv_n_avx2(std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                 const T* x, T beta, T* y) {
  // Eight rows at a time: eight streams of A in flight (4096 x 4096 float
  // from memory, 1 thread: 26 GB/s with four rows and two accumulators
  // each, 30 GB/s with eight rows and one).
  std::int64_t i = 0;
  for (; i + 8 <= m; i += 8) dot_rows<T, 8, 1>(n, alpha, a + i * lda, lda, x, beta, y + i);
  for (; i + 4 <= m; i += 4) dot_rows<T, 4, 2>(n, alpha, a + i * lda, lda, x, beta, y + i);
  for (; i < m; ++i) dot_rows<T, 1, 2>(n, alpha, a + i * lda, lda, x, beta, y + i);
}

/// y[0..cw) += sum over R rows r of xs[r] * A[r, 0..cw): one load and one
/// store of y per R rows of A (two FMA chains per vector of y).
template <class T, int R>
void axpy_rows(std::int64_t cw, const T* xs, const T* a, std::int64_t lda, T* y) {
  using S = Vec<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V xv[R];
  for (int r = 0; r < R; ++r) xv[r] = S::set1(xs[r]);
  auto step = [&](auto load, auto store, std::int64_t j) {
    V p = S::mul(xv[0], load(a + j));
    if constexpr (R == 1) {
      store(y + j, S::add(load(y + j), p));
    } else {
      V q = S::mul(xv[1], load(a + lda + j));
      for (int r = 2; r < R; r += 2) {
        p = S::fma(xv[r], load(a + r * lda + j), p);
        q = S::fma(xv[r + 1], load(a + (r + 1) * lda + j), q);
      }
      store(y + j, S::add(load(y + j), S::add(p, q)));
    }
  };
  std::int64_t j = 0;
  for (; j + L <= cw; j += L) {
    step([](const T* p) { return S::load(p); }, [](T* p, V v) { S::store(p, v); }, j);
  }
  if (j < cw) {
    const auto m = S::mask(static_cast<int>(cw - j));
    step([m](const T* p) { return S::load(p, m); }, [m](T* p, V v) { S::store(p, m, v); }, j);
  }
}

template <class T>
void gemv_t_avx2(std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                 const T* x, T beta, T* y) {
  // Columns in chunks whose slice of y (16 KiB) stays in L1 while every row
  // of A streams past it, eight rows at a time. Measured on 4096 x 4096
  // float from memory, 1 thread: 23 GB/s with four rows at a time, 28 with
  // eight rows and 8 KiB chunks, 30-31 with 16 KiB (whole rows: each row is
  // read start to end in one go); 32 or 64 KiB no better.
  constexpr std::int64_t chunk = 16384 / sizeof(T);
  for (std::int64_t j0 = 0; j0 < n; j0 += chunk) {
    const std::int64_t cw = std::min(chunk, n - j0);
    T* yj = y + j0;
    if (beta == T(0)) {
      std::fill(yj, yj + cw, T(0));
    } else if (beta != T(1)) {
      for (std::int64_t j = 0; j < cw; ++j) yj[j] *= beta;
    }
    std::int64_t i = 0;
    for (; i + 8 <= m; i += 8) {
      T xs[8];
      for (int r = 0; r < 8; ++r) xs[r] = alpha * x[i + r];
      axpy_rows<T, 8>(cw, xs, a + i * lda + j0, lda, yj);
    }
    for (; i + 2 <= m; i += 2) {
      const T xs[2] = {alpha * x[i], alpha * x[i + 1]};
      axpy_rows<T, 2>(cw, xs, a + i * lda + j0, lda, yj);
    }
    for (; i < m; ++i) {
      const T xs[1] = {alpha * x[i]};
      axpy_rows<T, 1>(cw, xs, a + i * lda + j0, lda, yj);
    }
  }
}

/// (x, y) := (c x + s y, c y - s x), a vector of lanes at a time (FMA).
template <class T>
void rot_avx2(std::int64_t n, T* x, T* y, T c, T s) {
  using S = Vec<T>;
  const auto vc = S::set1(c), vs = S::set1(s), vns = S::set1(-s);
  std::int64_t k = 0;
  for (; k + S::lanes <= n; k += S::lanes) {
    const auto a = S::load(x + k), b = S::load(y + k);
    S::store(x + k, S::fma(vc, a, S::mul(vs, b)));
    S::store(y + k, S::fma(vc, b, S::mul(vns, a)));
  }
  for (; k < n; ++k) {
    const T a = x[k], b = y[k];
    x[k] = c * a + s * b;
    y[k] = c * b - s * a;
  }
}

}  // namespace

const GemvKernels<float>& sgemv_kernels_avx2() {
  static const GemvKernels<float> k{&gemv_n_avx2<float>, &gemv_t_avx2<float>, "sgemv_avx2",
                                    &rot_avx2<float>};
  return k;
}

const GemvKernels<double>& dgemv_kernels_avx2() {
  static const GemvKernels<double> k{&gemv_n_avx2<double>, &gemv_t_avx2<double>, "dgemv_avx2",
                                     &rot_avx2<double>};
  return k;
}

}  // namespace matnet::detail
