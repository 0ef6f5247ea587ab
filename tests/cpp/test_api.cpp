// tests/cpp/test_api.cpp - the C++ contract of libmatnet's public API, as an
// embedding program sees it: results, the exceptions it promises (caught
// across the shared-library boundary), "nothing is written when a call
// throws", and calls made concurrently from several std::threads and from
// inside the program's own OpenMP parallel region.
//
// The numerics of every kernel are tested in depth from Python (tests/*.py);
// here all data are small binary fractions (multiples of 1/8 in [-1, 1]) and
// inner dimensions stay far below 2^16, so every product and partial sum is
// exact in float and double and results must equal the naive loops bit for
// bit, in any summation order, on any thread count (see exact_value()).
//
// Run by ctest, and by tests/test_embed.py against the installed package.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <matnet/matnet.hpp>

#include "check.hpp"

// Without OpenMP the parallel-region tests would run serially and prove nothing.
#ifndef _OPENMP
#error "tests/cpp/test_api.cpp needs OpenMP (CMakeLists.txt links OpenMP::OpenMP_CXX)"
#endif

namespace {

// At namespace scope: GCC 12 does not find a block-scope alias from the
// lambdas inside a function template.
namespace la = matnet::linalg;

// Element `i` of a pseudo-random stream: a multiple of 1/8 in [-1, 1].
// Products of two are multiples of 1/64 in [-1, 1]; a sum of k of them is a
// multiple of 1/64 below k in magnitude, and with alpha = +-0.75 and beta *
// c (beta = -0.5) added a multiple of 1/256 below k + 1: for k < 2^16 that
// is at most 24 significant bits, exact in float (24) and double (53).
template <typename T>
T exact_value(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t h = (seed * 0x9E3779B97F4A7C15ull) ^ (i * 0xC2B2AE3D27D4EB4Full);
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return T(static_cast<int>(h % 17) - 8) / T(8);
}

template <typename T>
std::vector<T> exact_vector(std::uint64_t seed, std::size_t n) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = exact_value<T>(seed, i);
  return v;
}

// op(X)(i, p) for a row-major X with leading dimension ld.
template <typename T>
T op_at(const T* x, std::int64_t ld, bool trans, std::int64_t i, std::int64_t p) {
  return trans ? x[p * ld + i] : x[i * ld + p];
}

// Fills the rows x cols matrix at x (row-major, leading dimension ld) with
// exact values; what lies between its rows is left as it was.
template <typename T>
void fill_matrix(T* x, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::uint64_t seed) {
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) x[i * ld + j] = exact_value<T>(seed, i * 1000 + j);
}

// Element-wise equality of two whole buffers, NaN matching NaN: with the
// padding and gaps of an output NaN in both, one comparison checks that the
// results are exact and that nothing outside them was written.
template <typename T>
bool same_values(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])))) return false;
  return true;
}

// ------------------------------------------------------------ gemm

template <typename T>
void naive_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T s = 0;
      for (std::int64_t p = 0; p < k; ++p) s += op_at(a, lda, ta, i, p) * op_at(b, ldb, tb, p, j);
      c[i * ldc + j] = alpha * s + (beta == T(0) ? T(0) : beta * c[i * ldc + j]);
    }
}

// One gemm call with padded leading dimensions whose padding holds NaN (a
// read of it would show in the result); with beta == 0, C starts as NaN too
// (BLAS: C is not read). Returns true when it equals the naive loops exactly.
template <typename T>
bool gemm_case(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T beta,
               std::uint64_t seed) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const std::int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
  const std::int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
  const std::int64_t lda = a_cols + 3, ldb = b_cols + 1, ldc = n + 2;
  std::vector<T> a(std::max<std::int64_t>(a_rows * lda, 1), nan);
  std::vector<T> b(std::max<std::int64_t>(b_rows * ldb, 1), nan);
  std::vector<T> c(std::max<std::int64_t>(m * ldc, 1), nan);
  fill_matrix(a.data(), a_rows, a_cols, lda, seed);
  fill_matrix(b.data(), b_rows, b_cols, ldb, seed + 1);
  if (beta != T(0)) fill_matrix(c.data(), m, n, ldc, seed + 2);
  std::vector<T> expected = c;
  const T alpha = T(0.75);
  naive_gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, expected.data(), ldc);
  matnet::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  return same_values(c, expected);  // C's padding stays NaN: never written
}

template <typename T>
void test_gemm_matches_naive_loops() {
  // Empty, unit, prime and tile-straddling sizes (the AVX2 tiles are 6x16
  // for float and 6x8 for double); k < 128 keeps the data exact.
  const std::int64_t shapes[][3] = {{0, 3, 4}, {3, 0, 4}, {3, 4, 0}, {1, 1, 1},  {7, 9, 5},
                                    {6, 16, 8}, {13, 17, 31}, {37, 29, 67}, {50, 70, 127}};
  std::uint64_t seed = 1;
  for (const auto& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (T beta : {T(0), T(-0.5)}) {
        const bool ok = gemm_case<T>(t & 1, t & 2, s[0], s[1], s[2], beta, seed++);
        if (!ok)
          std::fprintf(stderr, "gemm m=%lld n=%lld k=%lld trans_a=%d trans_b=%d beta=%g\n",
                       (long long)s[0], (long long)s[1], (long long)s[2], t & 1, (t & 2) >> 1,
                       (double)beta);
        CHECK(ok);
      }
}

void test_gemm_bad_arguments_throw_and_write_nothing() {
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64, 7.0f);
  auto call = [&](bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                  std::int64_t lda, std::int64_t ldb, std::int64_t ldc, float* cp) {
    return [=, &a, &b] {
      matnet::gemm(ta, tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, cp, ldc);
    };
  };
  using E = matnet::invalid_argument;  // errors.hpp: one type for every function
  CHECK(throws<std::invalid_argument>(call(false, false, -1, 2, 2, 2, 2, 2, c.data())));
  CHECK(throws<E>(call(false, false, -1, 2, 2, 2, 2, 2, c.data())));  // negative m
  CHECK(throws<E>(call(false, false, 2, 2, -3, 2, 2, 2, c.data())));  // negative k
  CHECK(throws<E>(call(false, false, 2, 3, 4, 3, 3, 3, c.data())));   // lda < k
  CHECK(throws<E>(call(true, false, 5, 3, 4, 4, 3, 3, c.data())));    // A^T: lda < m
  CHECK(throws<E>(call(false, false, 2, 3, 4, 4, 2, 3, c.data())));   // ldb < n
  CHECK(throws<E>(call(false, true, 2, 3, 4, 4, 3, 3, c.data())));    // B^T: ldb < k
  CHECK(throws<E>(call(false, false, 2, 3, 4, 4, 3, 2, c.data())));   // ldc < n
  CHECK(throws<E>(call(false, false, 2, 3, 4, 4, 3, 3, nullptr)));    // C null
  bool untouched = true;
  for (float v : c) untouched = untouched && v == 7.0f;
  CHECK(untouched);
  // A valid call with m == 0 touches nothing and needs no data at all.
  CHECK(!throws<E>(call(false, false, 0, 3, 4, 4, 3, 3, nullptr)));
}

// ------------------------------------------------------------ gemv

// Where element i of a vector of len elements with increment inc sits: BLAS
// puts a negative increment's elements backwards from the lowest address.
std::int64_t vec_at(std::int64_t i, std::int64_t len, std::int64_t inc) {
  return inc > 0 ? i * inc : (len - 1 - i) * -inc;
}

// y = alpha op(A) x + beta y by the naive loop in double (exact data, so the
// same numbers as any order in T).
template <typename T>
void naive_gemv(bool trans, std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
                const T* x, std::int64_t incx, T beta, T* y, std::int64_t incy) {
  const std::int64_t len_x = trans ? m : n, len_y = trans ? n : m;
  for (std::int64_t i = 0; i < len_y; ++i) {
    double s = 0;
    for (std::int64_t p = 0; p < len_x; ++p)
      s += double(op_at(a, lda, trans, i, p)) * double(x[vec_at(p, len_x, incx)]);
    T& yi = y[vec_at(i, len_y, incy)];
    yi = T(double(alpha) * s + (beta == T(0) ? 0.0 : double(beta) * double(yi)));
  }
}

// One gemv call: A with a NaN-padded leading dimension, x and y with NaN in
// the gaps their increments leave (a read of a gap would show, a write to
// one too); with beta == 0, y starts as NaN (BLAS: y is not read).
template <typename T>
bool gemv_case(bool trans, std::int64_t m, std::int64_t n, std::int64_t incx, std::int64_t incy,
               T alpha, T beta, std::uint64_t seed) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const std::int64_t lda = n + 3, len_x = trans ? m : n, len_y = trans ? n : m;
  std::vector<T> a(std::max<std::int64_t>(m * lda, 1), nan);
  std::vector<T> x(std::max<std::int64_t>(len_x * std::abs(incx), 1), nan);
  std::vector<T> y(std::max<std::int64_t>(len_y * std::abs(incy), 1), nan);
  fill_matrix(a.data(), m, n, lda, seed);
  for (std::int64_t p = 0; p < len_x; ++p) x[vec_at(p, len_x, incx)] = exact_value<T>(seed + 1, p);
  if (beta != T(0))
    for (std::int64_t i = 0; i < len_y; ++i)
      y[vec_at(i, len_y, incy)] = exact_value<T>(seed + 2, i);
  std::vector<T> expected = y;
  naive_gemv(trans, m, n, alpha, a.data(), lda, x.data(), incx, beta, expected.data(), incy);
  matnet::gemv(trans, m, n, alpha, a.data(), lda, x.data(), incx, beta, y.data(), incy);
  return same_values(y, expected);
}

template <typename T>
void test_gemv_matches_naive_loops() {
  // Empty, unit, odd and SIMD-straddling sizes, long enough rows and columns
  // for unrolled and threaded loops; every increment sign and size.
  const std::int64_t shapes[][2] = {{0, 3},  {3, 0},   {1, 1},    {7, 9},    {16, 17},
                                    {33, 100}, {127, 5}, {5, 127}, {300, 64}, {64, 1000}};
  const std::int64_t incs[] = {1, 2, -1, -3};
  std::uint64_t seed = 1;
  for (const auto& s : shapes)
    for (bool trans : {false, true})
      for (std::int64_t incx : incs)
        for (std::int64_t incy : incs)
          for (T beta : {T(0), T(-0.5)}) {
            const bool ok = gemv_case<T>(trans, s[0], s[1], incx, incy, T(0.75), beta, seed++);
            if (!ok)
              std::fprintf(stderr, "gemv m=%lld n=%lld trans=%d incx=%lld incy=%lld beta=%g\n",
                           (long long)s[0], (long long)s[1], trans, (long long)incx,
                           (long long)incy, (double)beta);
            CHECK(ok);
          }
}

// alpha == 0 (or an inner length of 0): A and x are not read and y = beta y;
// beta == 0 as well gives zeros over a y of NaN.
template <typename T>
void test_gemv_alpha_zero_reads_only_y() {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (bool trans : {false, true}) {
    const std::int64_t m = 5, n = 7, len_x = trans ? m : n, len_y = trans ? n : m;
    std::vector<T> a(m * n, nan), x(len_x, nan), y = exact_vector<T>(9, len_y);
    const std::vector<T> y0 = y;
    matnet::gemv(trans, m, n, T(0), a.data(), n, x.data(), 1, T(-0.5), y.data(), 1);
    bool ok = true;
    for (std::int64_t i = 0; i < len_y; ++i) ok = ok && y[i] == T(-0.5) * y0[i];
    std::vector<T> y_nan(len_y, nan);
    matnet::gemv(trans, m, n, T(0), a.data(), n, x.data(), 1, T(0), y_nan.data(), 1);
    for (T v : y_nan) ok = ok && v == T(0);
    // Inner length 0: no data of A or x is needed, so none need be passed.
    std::vector<T> z = exact_vector<T>(10, 4);
    const std::vector<T> z0 = z;
    matnet::gemv(trans, trans ? 0 : 4, trans ? 4 : 0, T(1), static_cast<const T*>(nullptr), 4,
                 static_cast<const T*>(nullptr), 1, T(2), z.data(), 1);
    for (int i = 0; i < 4; ++i) ok = ok && z[i] == T(2) * z0[i];
    if (!ok) std::fprintf(stderr, "gemv alpha == 0 / empty inner length, trans=%d\n", trans);
    CHECK(ok);
  }
}

void test_gemv_bad_arguments_throw_and_write_nothing() {
  std::vector<double> a(64, 1.0), x(16, 1.0), y(16, 7.0);
  auto call = [&](bool trans, std::int64_t m, std::int64_t n, std::int64_t lda,
                  const double* ap, const double* xp, std::int64_t incx, double* yp,
                  std::int64_t incy) {
    return [=] { matnet::gemv(trans, m, n, 1.0, ap, lda, xp, incx, 0.0, yp, incy); };
  };
  using E = matnet::invalid_argument;
  const double *A = a.data(), *X = x.data();
  double* Y = y.data();
  CHECK(throws<std::invalid_argument>(call(false, 3, 4, 4, A, X, 0, Y, 1)));
  CHECK(throws<E>(call(false, 3, 4, 4, A, X, 0, Y, 1)));        // incx == 0
  CHECK(throws<E>(call(true, 3, 4, 4, A, X, 1, Y, 0)));         // incy == 0
  CHECK(throws<E>(call(false, 3, 4, 3, A, X, 1, Y, 1)));        // lda < n
  CHECK(throws<E>(call(true, 3, 4, 3, A, X, 1, Y, 1)));         // lda < n, transposed too
  CHECK(throws<E>(call(false, 3, 0, 0, A, X, 1, Y, 1)));        // lda < max(1, n)
  CHECK(throws<E>(call(false, -1, 4, 4, A, X, 1, Y, 1)));       // negative m
  CHECK(throws<E>(call(false, 3, -4, 4, A, X, 1, Y, 1)));       // negative n
  CHECK(throws<E>(call(false, 3, 4, 4, nullptr, X, 1, Y, 1)));  // A null
  CHECK(throws<E>(call(false, 3, 4, 4, A, nullptr, 1, Y, 1)));  // x null
  CHECK(throws<E>(call(false, 3, 4, 4, A, X, 1, nullptr, 1)));  // y null
  bool untouched = true;
  for (double v : y) untouched = untouched && v == 7.0;
  CHECK(untouched);
  // An empty y (m == 0 without trans) needs no y at all.
  CHECK(!throws<E>(call(false, 0, 4, 4, A, X, 1, nullptr, 1)));
}

// ------------------------------------------------------------ gemm_batched

// One gemm_batched call on `batch` products stored with gaps (NaN) between
// them, against naive_gemm on each; a shared operand has stride 0. With
// beta == 0 every C starts as NaN.
template <typename T>
bool gemm_batched_case(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                       std::int64_t batch, bool share_a, bool share_b, T beta, std::uint64_t seed) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const std::int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
  const std::int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
  const std::int64_t lda = a_cols + 3, ldb = b_cols + 1, ldc = n + 2;
  const std::int64_t stride_a = share_a ? 0 : a_rows * lda + 5;
  const std::int64_t stride_b = share_b ? 0 : b_rows * ldb + 2;
  const std::int64_t stride_c = m * ldc + 7;
  std::vector<T> a(std::max<std::int64_t>(batch * stride_a + a_rows * lda, 1), nan);
  std::vector<T> b(std::max<std::int64_t>(batch * stride_b + b_rows * ldb, 1), nan);
  std::vector<T> c(std::max<std::int64_t>(batch * stride_c, 1), nan);
  for (std::int64_t i = 0; i < batch; ++i) {
    fill_matrix(a.data() + i * stride_a, a_rows, a_cols, lda, seed + 3 * i);
    fill_matrix(b.data() + i * stride_b, b_rows, b_cols, ldb, seed + 3 * i + 1);
    if (beta != T(0)) fill_matrix(c.data() + i * stride_c, m, n, ldc, seed + 3 * i + 2);
  }
  std::vector<T> expected = c;
  const T alpha = T(-0.75);
  for (std::int64_t i = 0; i < batch; ++i)
    naive_gemm(ta, tb, m, n, k, alpha, a.data() + i * stride_a, lda, b.data() + i * stride_b, ldb,
               beta, expected.data() + i * stride_c, ldc);
  matnet::gemm_batched(ta, tb, m, n, k, alpha, a.data(), lda, stride_a, b.data(), ldb, stride_b,
                       beta, c.data(), ldc, stride_c, batch);
  return same_values(c, expected);
}

template <typename T>
void test_gemm_batched_matches_naive_loops() {
  // {m, n, k, batch}: many small products (threads across the batch), a few
  // large ones (threads inside each), GEMV-shaped (m == 1, n == 1), skinny,
  // empty products and an empty batch.
  const std::int64_t cases[][4] = {{8, 8, 8, 64},   {7, 9, 5, 3},   {37, 29, 67, 4},
                                   {1, 17, 33, 5},  {16, 1, 40, 3}, {5, 70, 33, 6},
                                   {130, 70, 127, 3}, {0, 4, 3, 2}, {3, 4, 0, 2}, {6, 5, 4, 0}};
  std::uint64_t seed = 1000;
  for (const auto& s : cases)
    for (int t = 0; t < 4; ++t)
      for (int share = 0; share < 3; ++share)
        for (T beta : {T(0), T(-0.5)}) {
          const bool ok = gemm_batched_case<T>(t & 1, t & 2, s[0], s[1], s[2], s[3], share == 1,
                                               share == 2, beta, seed);
          seed += 3 * s[3] + 3;
          if (!ok)
            std::fprintf(stderr,
                         "gemm_batched m=%lld n=%lld k=%lld batch=%lld trans_a=%d trans_b=%d "
                         "shared=%s beta=%g\n",
                         (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], t & 1,
                         (t & 2) >> 1, share == 0 ? "none" : share == 1 ? "a" : "b", (double)beta);
          CHECK(ok);
        }
}

void test_gemm_batched_bad_arguments_throw_and_write_nothing() {
  const std::int64_t m = 3, n = 4, k = 5, ldc = 6;
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64, 7.0f);
  auto call = [&](std::int64_t lda, std::int64_t stride_c, std::int64_t batch) {
    return [=, &a, &b, &c] {
      matnet::gemm_batched(false, false, m, n, k, 1.0f, a.data(), lda, 0, b.data(), n, 0, 0.0f,
                           c.data(), ldc, stride_c, batch);
    };
  };
  using E = matnet::invalid_argument;
  const std::int64_t tight = (m - 1) * ldc + n;  // C_1 starts right after C_0's last element
  CHECK(throws<E>(call(k, tight, -1)));          // negative batch
  CHECK(throws<E>(call(k - 1, tight, 2)));       // lda < k
  CHECK(throws<E>(call(k, 0, 2)));               // every product writes the same C
  CHECK(throws<E>(call(k, n, 2)));               // C_1's first row is C_0's second
  CHECK(throws<E>(call(k, tight - 1, 2)));       // one element shared
  bool untouched = true;
  for (float v : c) untouched = untouched && v == 7.0f;
  CHECK(untouched);
  // Disjoint outputs are accepted: tightly packed, or one product (stride_c
  // irrelevant); a batch of 0 writes nothing.
  CHECK(!throws<E>(call(k, tight, 0)));
  for (float v : c) untouched = untouched && v == 7.0f;
  CHECK(untouched);
  CHECK(!throws<E>(call(k, tight, 2)));
  CHECK(!throws<E>(call(k, 0, 1)));
  // All ones, k = 5: each written element is 5, the gaps between rows keep 7.
  bool ok = true;
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t j = 0; j < n; ++j) ok = ok && c[i * tight + r * ldc + j] == 5.0f;
  CHECK(ok);
  CHECK(c[n] == 7.0f && c[ldc + n + 1] == 7.0f && c[2 * tight] == 7.0f);
}

// The pointer-per-product form: products in any order in memory, A shared
// by every other product (pointers repeat), against naive_gemm on each.
template <typename T>
void test_gemm_batched_pointers() {
  const std::int64_t m = 7, n = 9, k = 5, batch = 6;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<std::vector<T>> as, bs, cs;
  for (std::int64_t i = 0; i < batch; ++i) {
    as.push_back(exact_vector<T>(50 + i, static_cast<std::size_t>(m * k)));
    bs.push_back(exact_vector<T>(70 + i, static_cast<std::size_t>(k * n)));
    cs.emplace_back(static_cast<std::size_t>(m * n), nan);
  }
  std::vector<const T*> a(batch), b(batch);
  std::vector<T*> c(batch);
  for (std::int64_t i = 0; i < batch; ++i) {
    a[i] = as[i % 2 == 0 ? 0 : i].data();  // A shared by the even products
    b[i] = bs[batch - 1 - i].data();       // B in reverse order
    c[i] = cs[i].data();
  }
  matnet::gemm_batched(false, false, m, n, k, T(0.5), a.data(), k, b.data(), n, T(0), c.data(), n,
                       batch);
  bool ok = true;
  for (std::int64_t i = 0; i < batch; ++i) {
    std::vector<T> want(static_cast<std::size_t>(m * n), nan);
    naive_gemm(false, false, m, n, k, T(0.5), a[i], k, b[i], n, T(0), want.data(), n);
    ok = ok && same_values(cs[i], want);
  }
  CHECK(ok);
  // A null pointer among the products is an error, and nothing is written.
  std::vector<T> before = cs[0];
  c[batch - 1] = nullptr;
  CHECK(throws<matnet::invalid_argument>([&] {
    matnet::gemm_batched(false, false, m, n, k, T(1), a.data(), k, b.data(), n, T(0), c.data(), n,
                         batch);
  }));
  CHECK(same_values(cs[0], before));
  CHECK(throws<matnet::invalid_argument>([&] {
    matnet::gemm_batched(false, false, m, n, k, T(1), a.data(), k - 1, b.data(), n, T(0),
                         c.data(), n, batch);
  }));
}

// ------------------------------------------------------------ dense chain

// dense_chain_forward against dense_forward layer by layer (bit for bit: the
// same kernels on exact data), for 1, 3 and 20 rows; and its errors.
template <typename T>
void test_dense_chain_matches_layers() {
  const std::int64_t widths[] = {13, 40, 17, 5};
  std::vector<std::vector<T>> w, b;
  std::vector<matnet::DenseLayerRef<T>> layers;
  const matnet::Activation acts[] = {matnet::Activation::relu, matnet::Activation::leaky_relu,
                                     matnet::Activation::identity};
  for (int l = 0; l < 3; ++l) {
    w.push_back(exact_vector<T>(200 + l, static_cast<std::size_t>(widths[l] * widths[l + 1])));
    b.push_back(exact_vector<T>(300 + l, static_cast<std::size_t>(widths[l + 1])));
  }
  for (int l = 0; l < 3; ++l)
    layers.push_back({w[l].data(), b[l].data(), widths[l], widths[l + 1], acts[l], T(0.25)});
  for (std::int64_t rows : {1, 3, 20}) {
    const std::vector<T> x = exact_vector<T>(400 + rows, static_cast<std::size_t>(rows * 13));
    std::vector<T> h = x;
    for (int l = 0; l < 3; ++l) {
      std::vector<T> out(static_cast<std::size_t>(rows * widths[l + 1]));
      matnet::dense_forward(out.data(), static_cast<T*>(nullptr), h.data(), w[l].data(),
                            b[l].data(), rows, widths[l], widths[l + 1], acts[l], T(0.25));
      h = out;
    }
    std::vector<T> y(static_cast<std::size_t>(rows * 5), std::numeric_limits<T>::quiet_NaN());
    matnet::dense_chain_forward(layers.data(), 3, x.data(), rows, y.data());
    CHECK(same_values(y, h));
  }
  using E = matnet::invalid_argument;
  std::vector<T> x(13, T(1)), y(5, T(7));
  CHECK(throws<E>([&] { matnet::dense_chain_forward(layers.data(), 0, x.data(), 1, y.data()); }));
  auto broken = layers;
  broken[1].in_features = 41;  // does not match layer 0's 40 outputs
  CHECK(throws<E>([&] { matnet::dense_chain_forward(broken.data(), 3, x.data(), 1, y.data()); }));
  broken = layers;
  broken[2].act = static_cast<matnet::Activation>(99);
  CHECK(throws<E>([&] { matnet::dense_chain_forward(broken.data(), 3, x.data(), 1, y.data()); }));
  CHECK(throws<E>([&] { matnet::dense_chain_forward(layers.data(), 3, x.data(), -1, y.data()); }));
  bool untouched = true;
  for (T v : y) untouched = untouched && v == T(7);
  CHECK(untouched);
}

// ------------------------------------------------------------ NN kernels: errors

void test_nn_bad_arguments_throw_matnet_invalid_argument() {
  std::vector<float> x(12, 0.5f), w(12, 0.25f), y(16, 3.0f), z(16, 3.0f);
  auto bad_dense = [&] {
    matnet::dense_forward(y.data(), z.data(), x.data(), w.data(), nullptr, -1, 3, 4,
                          matnet::Activation::relu);
  };
  // matnet::invalid_argument's type information is exported, so the handler
  // in this program matches it, by its own type and by its base.
  CHECK(throws<matnet::invalid_argument>(bad_dense));
  CHECK(throws<std::invalid_argument>(bad_dense));
  CHECK(throws<std::logic_error>(bad_dense));
  bool untouched = true;
  for (std::size_t i = 0; i < y.size(); ++i) untouched = untouched && y[i] == 3.0f && z[i] == 3.0f;
  CHECK(untouched);

  CHECK(throws<matnet::invalid_argument>([] { matnet::activation_from_name("swishy"); }));
  try {
    matnet::activation_from_name("swishy");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("swishy") != std::string::npos);  // names the value
  }

  // Labels outside [0, classes): the loss throws and leaves grad alone.
  std::vector<float> logits(6, 0.0f), grad(6, 9.0f);
  std::vector<std::int64_t> labels = {0, 3};
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::cross_entropy(grad.data(), logits.data(), labels.data(), 2, 3); }));
  bool grad_untouched = true;
  for (float g : grad) grad_untouched = grad_untouched && g == 9.0f;
  CHECK(grad_untouched);

  // A negative learning rate: the optimizer throws and leaves param alone.
  std::vector<double> param(5, 1.0), gradient(5, 1.0);
  matnet::SgdOptions opt;
  opt.lr = -0.1;
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::sgd_update(param.data(), nullptr, gradient.data(), 5, opt, true); }));
  bool param_untouched = true;
  for (double p : param) param_untouched = param_untouched && p == 1.0;
  CHECK(param_untouched);
}

void test_activation_names_round_trip() {
  using matnet::Activation;
  for (Activation act : {Activation::identity, Activation::relu, Activation::leaky_relu,
                         Activation::sigmoid, Activation::tanh, Activation::gelu,
                         Activation::gelu_tanh, Activation::silu})
    CHECK(matnet::activation_from_name(matnet::activation_name(act)) == act);
}

// ------------------------------------------------------------ runtime

void test_threads_are_process_wide() {
  CHECK(throws<matnet::invalid_argument>([] { matnet::set_num_threads(0); }));
  const int cap = matnet::max_num_threads();
  CHECK(cap >= 1);
  CHECK(throws<matnet::invalid_argument>([cap] { matnet::set_num_threads(cap + 1); }));
  CHECK(throws<matnet::invalid_argument>([] { matnet::set_num_threads(100000); }));
  const int before = matnet::get_num_threads();
  CHECK(before >= 1 && before <= cap);
  int inside = 0;
  std::thread worker([&] {
    matnet::set_num_threads(1);
    inside = matnet::get_num_threads();
  });
  worker.join();
  CHECK(inside == 1);
  CHECK(matnet::get_num_threads() == 1);  // the setting applies to every thread
  matnet::set_num_threads(cap);
  int seen = 0;
  std::thread other([&] { seen = matnet::get_num_threads(); });
  other.join();
  CHECK(seen == cap);
  matnet::set_num_threads(before);
  CHECK(std::string(matnet::isa_name(matnet::active_isa())).size() > 0);
  CHECK(matnet::cpu_supports(matnet::Isa::generic));
}

// ------------------------------------------------------------ concurrency

// A relu layer forward and backward on exact data, as naive loops: z = x.w + b,
// y = relu(z); dZ = gy * [z > 0] (relu'(0) = 0), dw = x^T.dZ, db = sum dZ,
// dx = dZ.w^T.
struct DenseResult {
  std::vector<double> y, dx, dw, db;
};

DenseResult naive_dense_relu(const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>& b, const std::vector<double>& gy,
                             std::int64_t N, std::int64_t K, std::int64_t M) {
  DenseResult r{std::vector<double>(N * M), std::vector<double>(N * K, 0.0),
                std::vector<double>(K * M, 0.0), std::vector<double>(M, 0.0)};
  std::vector<double> dz(N * M);
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < M; ++j) {
      double s = b[j];
      for (std::int64_t p = 0; p < K; ++p) s += x[i * K + p] * w[p * M + j];
      r.y[i * M + j] = s > 0 ? s : 0.0;
      dz[i * M + j] = s > 0 ? gy[i * M + j] : 0.0;
    }
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < M; ++j) {
      r.db[j] += dz[i * M + j];
      for (std::int64_t p = 0; p < K; ++p) {
        r.dw[p * M + j] += x[i * K + p] * dz[i * M + j];
        r.dx[i * K + p] += dz[i * M + j] * w[p * M + j];
      }
    }
  return r;
}

// Each worker runs its own gemm and dense layer (distinct outputs, distinct
// shapes, so the per-thread scratch of dense_backward is exercised) many times.
bool worker_matches(int id) {
  const std::int64_t N = 20 + 7 * id, K = 30 + 5 * id, M = 17 + 3 * id;
  const auto x = exact_vector<double>(100 + id, N * K), w = exact_vector<double>(200 + id, K * M);
  const auto b = exact_vector<double>(300 + id, M), gy = exact_vector<double>(400 + id, N * M);
  const DenseResult want = naive_dense_relu(x, w, b, gy, N, K, M);
  std::vector<double> c(N * M), y(N * M), z(N * M), dx(N * K), dw(K * M), db(M);
  bool ok = true;
  for (int rep = 0; rep < 20; ++rep) {
    matnet::gemm(false, false, N, M, K, 1.0, x.data(), K, w.data(), M, 0.0, c.data(), M);
    matnet::dense_forward(y.data(), z.data(), x.data(), w.data(), b.data(), N, K, M,
                          matnet::Activation::relu);
    matnet::dense_backward(dx.data(), dw.data(), db.data(), gy.data(), x.data(), w.data(),
                           z.data(), N, K, M, matnet::Activation::relu);
    for (std::int64_t i = 0; i < N * M; ++i)
      ok = ok && c[i] + b[i % M] == z[i] && y[i] == want.y[i];
    ok = ok && dx == want.dx && dw == want.dw && db == want.db;
  }
  return ok;
}

void test_concurrent_calls_from_std_threads() {
  constexpr int kWorkers = 4;
  bool ok[kWorkers] = {};
  std::vector<std::thread> workers;
  for (int id = 0; id < kWorkers; ++id)
    workers.emplace_back([id, &ok] { ok[id] = worker_matches(id); });
  for (auto& t : workers) t.join();
  for (int id = 0; id < kWorkers; ++id) {
    if (!ok[id]) std::fprintf(stderr, "concurrent worker %d gave wrong results\n", id);
    CHECK(ok[id]);
  }
}

// A gemm large enough that matnet threads it when called alone (200+ x 300 x
// 400) and a gemv on the same A, with their naive results: the work of one
// thread in the tests below. Each id has its own data, shapes and transposes,
// so a result computed from another thread's operands or scratch shows.
template <typename T>
struct LargeProducts {
  std::int64_t m, n, k;
  bool trans_b, trans_v;
  std::vector<T> a, b, x, c_want, y_want;

  explicit LargeProducts(int id)
      : m(200 + 3 * id), n(300), k(400), trans_b(id & 1), trans_v(id & 2),
        a(exact_vector<T>(500 + id, m * k)), b(exact_vector<T>(600 + id, k * n)),
        x(exact_vector<T>(700 + id, trans_v ? m : k)), c_want(m * n), y_want(trans_v ? k : m) {
    naive_gemm(false, trans_b, m, n, k, T(0.75), a.data(), k, b.data(), trans_b ? k : n, T(0),
               c_want.data(), n);
    naive_gemv(trans_v, m, k, T(0.75), a.data(), k, x.data(), 1, T(0), y_want.data(), 1);
  }

  // reps rounds of both calls into fresh NaN outputs; true when all exact.
  bool run(int reps) const {
    bool ok = true;
    for (int rep = 0; rep < reps; ++rep) {
      std::vector<T> c(m * n, std::numeric_limits<T>::quiet_NaN());
      std::vector<T> y(y_want.size(), std::numeric_limits<T>::quiet_NaN());
      matnet::gemm(false, trans_b, m, n, k, T(0.75), a.data(), k, b.data(), trans_b ? k : n, T(0),
                   c.data(), n);
      matnet::gemv(trans_v, m, k, T(0.75), a.data(), k, x.data(), 1, T(0), y.data(), 1);
      ok = ok && c == c_want && y == y_want;
    }
    return ok;
  }
};

constexpr int kLargeWorkers = 4;

template <typename T>
std::vector<LargeProducts<T>> large_products() {
  std::vector<LargeProducts<T>> work;
  for (int id = 0; id < kLargeWorkers; ++id) work.emplace_back(id);
  return work;
}

// matnet called from inside the caller's own OpenMP parallel region, each
// thread on its own outputs: matnet's own threading (nested, or serial
// inside a parallel region) must not share scratch between the callers nor
// deadlock, and every result must be exact.
template <typename T>
void test_calls_inside_callers_omp_parallel() {
  const auto work = large_products<T>();
  int ok[kLargeWorkers] = {};
#pragma omp parallel num_threads(kLargeWorkers)
  {
#pragma omp for schedule(static, 1)
    for (int id = 0; id < kLargeWorkers; ++id) ok[id] = work[id].run(3);
  }
  for (int id = 0; id < kLargeWorkers; ++id) {
    if (!ok[id]) std::fprintf(stderr, "omp parallel caller %d gave wrong results\n", id);
    CHECK(ok[id]);
  }
}

// The same work from std::threads, each a separate OpenMP initial thread, so
// each matnet call may start its own thread team concurrently with the others.
template <typename T>
void test_large_calls_from_std_threads() {
  const auto work = large_products<T>();
  bool ok[kLargeWorkers] = {};
  std::vector<std::thread> workers;
  for (int id = 0; id < kLargeWorkers; ++id)
    workers.emplace_back([id, &ok, &work] { ok[id] = work[id].run(3); });
  for (auto& t : workers) t.join();
  for (int id = 0; id < kLargeWorkers; ++id) {
    if (!ok[id]) std::fprintf(stderr, "std::thread caller %d gave wrong results\n", id);
    CHECK(ok[id]);
  }
}

}  // namespace

// matnet::linalg on tiny systems with exact answers (the accuracy sweeps
// are tests/test_linalg.py): per-matrix info codes, NaN input, bad sizes.
template <class T>
void test_linalg_api() {
  std::int64_t info[2] = {7, 7};
  // A stack of two: diag(2, 4) and the singular [[1, 2], [2, 4]].
  T a[8] = {2, 0, 0, 4, 1, 2, 2, 4};
  T b[4] = {1, 1, 1, 1};
  la::solve<T>(2, 2, 1, a, b, info);
  CHECK(info[0] == 0 && info[1] == 2);
  CHECK(b[0] == T(0.5) && b[1] == T(0.25));
  T d[8] = {2, 0, 0, 4, 1, 2, 2, 4};
  T det[2], sign[2], logabs[2];
  la::det<T>(2, 2, d, det, sign, logabs, info);
  CHECK(info[0] == 0 && info[1] == 0 && det[0] == T(8) && det[1] == T(0) && sign[1] == T(0));
  T c[4] = {4, 0, 0, 9};
  la::cholesky<T>(1, 2, c, info);
  CHECK(info[0] == 0 && c[0] == T(2) && c[3] == T(3) && c[1] == T(0));
  T e[4] = {2, 1, 1, 2}, w[2], v[4];
  la::eigh<T>(1, 2, e, w, v, info);
  CHECK(info[0] == 0 && std::abs(w[0] - 1) < T(1e-5) && std::abs(w[1] - 3) < T(1e-5));
  CHECK(std::abs(std::abs(v[0]) - std::sqrt(T(0.5))) < T(1e-5));
  T sv[4] = {3, 0, 0, -2}, s[2], u[4], vt[4];
  la::svd<T>(1, 2, 2, sv, s, u, vt, true, info);
  CHECK(info[0] == 0 && std::abs(s[0] - 3) < T(1e-5) && std::abs(s[1] - 2) < T(1e-5));
  T q[4] = {0, 1, 1, 0}, qq[4];
  la::qr<T>(1, 2, 2, q, qq, 2, info);
  CHECK(info[0] == 0 && std::abs(std::abs(q[0]) - 1) < T(1e-6) && q[2] == T(0));
  T bad[4] = {1, std::numeric_limits<T>::quiet_NaN(), 0, 1}, inv[4];
  la::inv<T>(1, 2, bad, inv, info);
  CHECK(info[0] == -1);
  CHECK(throws<matnet::invalid_argument>([&] { la::inv<T>(-1, 2, bad, inv, info); }));
  CHECK(throws<std::invalid_argument>([&] { la::eigh<T>(1, 2, nullptr, w, v, info); }));
}

int main() {
  return run_tests({
      {"gemm_matches_naive_loops<float>", test_gemm_matches_naive_loops<float>},
      {"gemm_matches_naive_loops<double>", test_gemm_matches_naive_loops<double>},
      {"gemm_bad_arguments_throw_and_write_nothing",
       test_gemm_bad_arguments_throw_and_write_nothing},
      {"nn_bad_arguments_throw_matnet_invalid_argument",
       test_nn_bad_arguments_throw_matnet_invalid_argument},
      {"activation_names_round_trip", test_activation_names_round_trip},
      {"threads_are_process_wide", test_threads_are_process_wide},
      {"gemv_matches_naive_loops<float>", test_gemv_matches_naive_loops<float>},
      {"gemv_matches_naive_loops<double>", test_gemv_matches_naive_loops<double>},
      {"gemv_alpha_zero_reads_only_y<float>", test_gemv_alpha_zero_reads_only_y<float>},
      {"gemv_alpha_zero_reads_only_y<double>", test_gemv_alpha_zero_reads_only_y<double>},
      {"gemv_bad_arguments_throw_and_write_nothing",
       test_gemv_bad_arguments_throw_and_write_nothing},
      {"gemm_batched_matches_naive_loops<float>", test_gemm_batched_matches_naive_loops<float>},
      {"gemm_batched_matches_naive_loops<double>", test_gemm_batched_matches_naive_loops<double>},
      {"gemm_batched_bad_arguments_throw_and_write_nothing",
       test_gemm_batched_bad_arguments_throw_and_write_nothing},
      {"gemm_batched_pointers<float>", test_gemm_batched_pointers<float>},
      {"gemm_batched_pointers<double>", test_gemm_batched_pointers<double>},
      {"dense_chain_matches_layers<float>", test_dense_chain_matches_layers<float>},
      {"dense_chain_matches_layers<double>", test_dense_chain_matches_layers<double>},
      {"concurrent_calls_from_std_threads", test_concurrent_calls_from_std_threads},
      {"calls_inside_callers_omp_parallel<float>", test_calls_inside_callers_omp_parallel<float>},
      {"calls_inside_callers_omp_parallel<double>", test_calls_inside_callers_omp_parallel<double>},
      {"large_calls_from_std_threads<float>", test_large_calls_from_std_threads<float>},
      {"large_calls_from_std_threads<double>", test_large_calls_from_std_threads<double>},
      {"linalg_api<float>", test_linalg_api<float>},
      {"linalg_api<double>", test_linalg_api<double>},
  });
}
