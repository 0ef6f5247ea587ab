// tests/cpp/test_api.cpp - the C++ contract of libmatnet's public API, as an
// embedding program sees it: results, the exceptions it promises (caught
// across the shared-library boundary), "nothing is written when a call
// throws", and calls made concurrently from several std::threads.
//
// The numerics of every kernel are tested in depth from Python (tests/*.py);
// here all data are small binary fractions (multiples of 1/8 in [-1, 1]) and
// sizes stay below 128, so every product and partial sum is exact in float
// and double and results must equal the naive loops bit for bit, in any
// summation order, on any thread count (see exact_value()).
//
// Run by ctest, and by tests/test_embed.py against the installed package.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <matnet/matnet.hpp>

namespace {

int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                               \
  } while (0)

// True when f() throws Ex (or a type derived from it); false for no exception
// or another type.
template <typename Ex>
bool throws(const std::function<void()>& f) {
  try {
    f();
  } catch (const Ex&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

// Element `i` of a pseudo-random stream: a multiple of 1/8 in [-1, 1].
// Products of two are multiples of 1/64 in [-1, 1]; a sum of fewer than 128
// of them is a multiple of 1/64 below 128 in magnitude: 13 significant bits,
// exact in float (24) and double (53).
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
T op_at(const std::vector<T>& x, std::int64_t ld, bool trans, std::int64_t i, std::int64_t p) {
  return trans ? x[p * ld + i] : x[i * ld + p];
}

// ------------------------------------------------------------ gemm

template <typename T>
void naive_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                const std::vector<T>& a, std::int64_t lda, const std::vector<T>& b,
                std::int64_t ldb, T beta, std::vector<T>& c, std::int64_t ldc) {
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
  for (std::int64_t i = 0; i < a_rows; ++i)
    for (std::int64_t j = 0; j < a_cols; ++j) a[i * lda + j] = exact_value<T>(seed, i * 1000 + j);
  for (std::int64_t i = 0; i < b_rows; ++i)
    for (std::int64_t j = 0; j < b_cols; ++j)
      b[i * ldb + j] = exact_value<T>(seed + 1, i * 1000 + j);
  if (beta != T(0))
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = exact_value<T>(seed + 2, i * 1000 + j);
  std::vector<T> expected = c;
  const T alpha = T(0.75);
  naive_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, expected, ldc);
  matnet::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      if (!(c[i * ldc + j] == expected[i * ldc + j])) return false;  // NaN fails too
  for (std::int64_t i = 0; i < m; ++i)  // C's padding is never written
    for (std::int64_t j = n; j < ldc; ++j)
      if (!std::isnan(c[i * ldc + j])) return false;
  return true;
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

void test_threads_are_per_calling_thread() {
  CHECK(throws<matnet::invalid_argument>([] { matnet::set_num_threads(0); }));
  const int before = matnet::get_num_threads();
  CHECK(before >= 1);
  int inside = 0;
  std::thread worker([&] {
    matnet::set_num_threads(1);
    inside = matnet::get_num_threads();
  });
  worker.join();
  CHECK(inside == 1);
  CHECK(matnet::get_num_threads() == before);  // the setting stayed on the worker
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

}  // namespace

int main() {
  const struct {
    const char* name;
    void (*run)();
  } tests[] = {
      {"gemm_matches_naive_loops<float>", test_gemm_matches_naive_loops<float>},
      {"gemm_matches_naive_loops<double>", test_gemm_matches_naive_loops<double>},
      {"gemm_bad_arguments_throw_and_write_nothing",
       test_gemm_bad_arguments_throw_and_write_nothing},
      {"nn_bad_arguments_throw_matnet_invalid_argument",
       test_nn_bad_arguments_throw_matnet_invalid_argument},
      {"activation_names_round_trip", test_activation_names_round_trip},
      {"threads_are_per_calling_thread", test_threads_are_per_calling_thread},
      {"concurrent_calls_from_std_threads", test_concurrent_calls_from_std_threads},
  };
  int failed_tests = 0;
  for (const auto& t : tests) {
    const int before = g_failures;
    try {
      t.run();
    } catch (const std::exception& e) {
      ++g_failures;
      std::fprintf(stderr, "%s: unexpected exception: %s\n", t.name, e.what());
    }
    const bool passed = g_failures == before;
    failed_tests += !passed;
    std::printf("%s %s\n", passed ? "PASS" : "FAIL", t.name);
  }
  std::printf("%d of %zu tests failed (isa %s)\n", failed_tests, sizeof(tests) / sizeof(tests[0]),
              matnet::isa_name(matnet::active_isa()));
  return failed_tests == 0 ? 0 : 1;
}
