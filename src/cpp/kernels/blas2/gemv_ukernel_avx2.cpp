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

/// rot_batch on NV vectors of columns. The row that the last rotation
/// wrote as x_j stays in registers (h) while the next rotation reads it:
/// along a sweep's chain each rotation loads one row and stores one.
template <class T, int NV>
void rot_strip(std::int64_t count, const RowRotation<T>* ops, T* x, std::int64_t ldx) {
  using S = Vec<T>;
  constexpr int L = S::lanes;
  typename S::V h[NV];
  std::int64_t held = -1;
  auto store_held = [&] {
    T* xh = x + held * ldx;
    for (int u = 0; u < NV; ++u) S::store(xh + u * L, h[u]);
  };
  for (std::int64_t q = 0; q < count; ++q) {
    const RowRotation<T>& op = ops[q];
    const auto vc = S::set1(op.c);
    T* xi = x + op.i * ldx;
    if (op.i == op.j) {  // scaling
      if (op.i == held) {
        for (int u = 0; u < NV; ++u) h[u] = S::mul(vc, h[u]);
      } else {
        for (int u = 0; u < NV; ++u) S::store(xi + u * L, S::mul(vc, S::load(xi + u * L)));
      }
      continue;
    }
    const auto vs = S::set1(op.s), vns = S::set1(-op.s);
    T* xj = x + op.j * ldx;
    if (op.i == held) {  // x_i in registers: store the new x_i, keep the new x_j
      for (int u = 0; u < NV; ++u) {
        const auto a = h[u], b = S::load(xj + u * L);
        S::store(xi + u * L, S::fma(vc, a, S::mul(vs, b)));
        h[u] = S::fma(vc, b, S::mul(vns, a));
      }
      held = op.j;
    } else if (op.j == held) {
      for (int u = 0; u < NV; ++u) {
        const auto a = S::load(xi + u * L), b = h[u];
        S::store(xi + u * L, S::fma(vc, a, S::mul(vs, b)));
        h[u] = S::fma(vc, b, S::mul(vns, a));
      }
    } else {
      if (held >= 0) store_held();
      for (int u = 0; u < NV; ++u) {
        const auto a = S::load(xi + u * L), b = S::load(xj + u * L);
        S::store(xi + u * L, S::fma(vc, a, S::mul(vs, b)));
        h[u] = S::fma(vc, b, S::mul(vns, a));
      }
      held = op.j;
    }
  }
  if (held >= 0) store_held();
}

template <class T>
void rot_batch_avx2(std::int64_t count, const RowRotation<T>* ops, T* x, std::int64_t ldx,
                    std::int64_t w) {
  constexpr int L = Vec<T>::lanes;
  std::int64_t c0 = 0;
  for (; c0 + 4 * L <= w; c0 += 4 * L) rot_strip<T, 4>(count, ops, x + c0, ldx);
  for (; c0 + L <= w; c0 += L) rot_strip<T, 1>(count, ops, x + c0, ldx);
  if (c0 == w) return;
  for (std::int64_t q = 0; q < count; ++q) {  // the last columns, one by one
    const RowRotation<T>& op = ops[q];
    T* xi = x + op.i * ldx;
    if (op.i == op.j) {
      for (std::int64_t k = c0; k < w; ++k) xi[k] *= op.c;
      continue;
    }
    T* xj = x + op.j * ldx;
    for (std::int64_t k = c0; k < w; ++k) {
      const T a = xi[k], b = xj[k];
      xi[k] = op.c * a + op.s * b;
      xj[k] = op.c * b - op.s * a;
    }
  }
}

}  // namespace

const GemvKernels<float>& sgemv_kernels_avx2() {
  static const GemvKernels<float> k{&gemv_n_avx2<float>, &gemv_t_avx2<float>, "sgemv_avx2",
                                    &rot_batch_avx2<float>};
  return k;
}

const GemvKernels<double>& dgemv_kernels_avx2() {
  static const GemvKernels<double> k{&gemv_n_avx2<double>, &gemv_t_avx2<double>, "dgemv_avx2",
                                     &rot_batch_avx2<double>};
  return k;
}

}  // namespace matnet::detail
