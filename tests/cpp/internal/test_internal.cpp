// tests/cpp/internal/test_internal.cpp - the kernel core's internal contracts,
// which libmatnet does not export and its public API cannot reach:
//   - GEMM operands given by strides (neither row- nor column-major) and by
//     packing callbacks (here a 1-D convolution as an implicit GEMM: A is a
//     Toeplitz matrix that exists only in its packer);
//   - the explicit thread budget (1, 2, 3 threads; from inside the test's own
//     parallel region);
//   - the workspace: nested scopes, 64-byte alignment, reuse without growth;
//   - parallel_parts: every part run once, part indices in range.
// Built from the kernel sources with -DMATNET_BUILD_EXAMPLES=ON and run by
// ctest and tests/test_internal_cpp.py. Data are multiples of 1/8 in [-1, 1]
// with sums far below 2^16, so every result is exact in any summation order.
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../check.hpp"
#include "blas3/gemm_driver.hpp"
#include "core/parallel.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace {

double exact_value(std::int64_t i) { return static_cast<double>((i * 7919 + 13) % 17 - 8) / 8.0; }

using matnet::detail::GemmOperand;

/// The implicit A of a 1-D convolution: A[i, p] = signal[i + p] (valid
/// correlation of a signal with a k-tap filter, rows = output positions).
template <class T>
struct Toeplitz {
  const T* signal;
};

template <class T>
void pack_toeplitz_a(const void* ctx, std::int64_t i0, std::int64_t p0, std::int64_t rows,
                     std::int64_t kc, int mr, T* dst) {
  const T* s = static_cast<const Toeplitz<T>*>(ctx)->signal;
  for (std::int64_t i = 0; i < rows; i += mr) {
    T* panel = dst + i * kc;
    for (std::int64_t p = 0; p < kc; ++p)
      for (int r = 0; r < mr; ++r)
        panel[p * mr + r] = i + r < rows ? s[i0 + i + r + p0 + p] : T(0);
  }
}

/// B given by a callback: B[p, j] = w[p * ldw + j] read through the packer.
template <class T>
struct Dense {
  const T* w;
  std::int64_t ldw;
};

template <class T>
void pack_dense_b(const void* ctx, std::int64_t p0, std::int64_t j0, std::int64_t kc,
                  std::int64_t cols, int nr, T* dst) {
  const auto& d = *static_cast<const Dense<T>*>(ctx);
  for (std::int64_t p = 0; p < kc; ++p)
    for (int j = 0; j < nr; ++j) dst[p * nr + j] = j < cols ? d.w[(p0 + p) * d.ldw + j0 + j] : T(0);
}

template <class T>
void test_operands(std::int64_t m, std::int64_t n, std::int64_t k, int threads) {
  std::vector<T> signal(static_cast<std::size_t>(m + k)), w(static_cast<std::size_t>(k * n));
  for (std::size_t i = 0; i < signal.size(); ++i) signal[i] = static_cast<T>(exact_value(static_cast<std::int64_t>(i)));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<T>(exact_value(static_cast<std::int64_t>(i) + 5));
  // Reference: C[i, j] = sum_p signal[i + p] * w[p, j].
  std::vector<double> ref(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t p = 0; p < k; ++p)
      for (std::int64_t j = 0; j < n; ++j)
        ref[i * n + j] += static_cast<double>(signal[i + p]) * static_cast<double>(w[p * n + j]);

  const Toeplitz<T> toe{signal.data()};
  const Dense<T> dense{w.data(), n};
  GemmOperand<T> a_cb, b_cb;
  a_cb.pack = &pack_toeplitz_a<T>;
  a_cb.ctx = &toe;
  b_cb.pack = &pack_dense_b<T>;
  b_cb.ctx = &dense;
  // The same A as a genuinely strided operand (neither stride 1):
  // A[i, p] at as[i * (2k + 1) + p * 2].
  const std::int64_t rsa = 2 * k + 1;
  std::vector<T> as(static_cast<std::size_t>(rsa * m + 1), T(-99));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t p = 0; p < k; ++p) as[i * rsa + p * 2] = signal[i + p];
  GemmOperand<T> a_strided;
  a_strided.data = as.data();
  a_strided.rs = rsa;
  a_strided.cs = 2;
  // B strided too: B[p, j] at bs[p * 2n + j * 2].
  std::vector<T> bs(static_cast<std::size_t>(2 * n * k + 2 * n + 1), T(-99));
  for (std::int64_t p = 0; p < k; ++p)
    for (std::int64_t j = 0; j < n; ++j) bs[p * 2 * n + j * 2] = w[p * n + j];
  GemmOperand<T> b_strided;
  b_strided.data = bs.data();
  b_strided.rs = 2 * n;
  b_strided.cs = 2;

  const GemmOperand<T> as_[] = {a_cb, a_strided};
  const GemmOperand<T> bs_[] = {b_cb, b_strided, GemmOperand<T>::blas(w.data(), n, false)};
  for (const auto& a : as_) {
    for (const auto& b : bs_) {
      std::vector<T> c(static_cast<std::size_t>(m * n), T(7));
      matnet::detail::gemm_operands<T>(m, n, k, T(1), a, b, T(0), c.data(), n, nullptr, threads);
      std::int64_t bad = -1;
      for (std::size_t i = 0; i < c.size() && bad < 0; ++i)
        if (static_cast<double>(c[i]) != ref[i]) bad = static_cast<std::int64_t>(i);
      CHECK(bad < 0);
      if (bad >= 0) {
        std::fprintf(stderr, "  m=%lld n=%lld k=%lld threads=%d a.pack=%d b.pack=%d b.rs=%lld: C[%lld,%lld] = %g, want %g\n",
                     (long long)m, (long long)n, (long long)k, threads, a.pack != nullptr,
                     b.pack != nullptr, (long long)b.rs, (long long)(bad / n), (long long)(bad % n),
                     static_cast<double>(c[static_cast<std::size_t>(bad)]), ref[static_cast<std::size_t>(bad)]);
      }
    }
  }
}

void test_workspace() {
  using matnet::detail::WorkspaceScope;
  {
    WorkspaceScope outer;
    float* a = outer.alloc<float>(1000);
    CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
    for (int i = 0; i < 1000; ++i) a[i] = static_cast<float>(i);
    {
      WorkspaceScope inner;  // grows past the first chunk: a must stay valid
      double* b = inner.alloc<double>(1 << 20);
      CHECK(reinterpret_cast<std::uintptr_t>(b) % 64 == 0);
      b[0] = 1.0;
      b[(1 << 20) - 1] = 2.0;
      CHECK(static_cast<void*>(b) != static_cast<void*>(a));
    }
    bool intact = true;
    for (int i = 0; i < 1000; ++i) intact = intact && a[i] == static_cast<float>(i);
    CHECK(intact);
  }
  // After the outermost scope the chunks are merged: the same requests again
  // fit without growing.
  const std::size_t cap = matnet::detail::workspace_capacity();
  {
    WorkspaceScope outer;
    outer.alloc<float>(1000);
    WorkspaceScope inner;
    inner.alloc<double>(1 << 20);
  }
  CHECK(matnet::detail::workspace_capacity() == cap);
}

void test_parallel_parts() {
  for (int budget : {1, 2, 3, 8}) {
    for (std::int64_t n : {0, 1, 5, 64, 1000}) {
      std::vector<std::atomic<int>> seen(static_cast<std::size_t>(n));
      std::atomic<bool> parts_ok{true};
      const int parts = matnet::detail::parts_for(n, budget);
      matnet::detail::parallel_parts(n, budget, 8, [&](int part, std::int64_t b, std::int64_t e) {
        if (part < 0 || part >= parts) parts_ok = false;
        for (std::int64_t i = b; i < e; ++i) ++seen[static_cast<std::size_t>(i)];
      });
      bool once = true;
      for (auto& s : seen) once = once && s.load() == 1;
      CHECK(once);
      CHECK(parts_ok.load());
    }
  }
}

}  // namespace

int main() {
  std::printf("isa: %s\n", matnet::isa_name(matnet::detail::kernel_table().isa));
  const std::int64_t sizes[][3] = {{1, 1, 1},   {7, 5, 3},     {17, 33, 9},   {150, 40, 300},
                                   {300, 130, 257}, {200, 300, 400}, {16, 300, 700}};
  for (const auto& s : sizes) {
    for (int threads : {1, 2, 3}) {
      test_operands<float>(s[0], s[1], s[2], threads);
      test_operands<double>(s[0], s[1], s[2], threads);
    }
  }
  // From inside the caller's own parallel region, each thread its own product.
#pragma omp parallel num_threads(2)
  { test_operands<float>(120, 70, 90, 2); }
  test_workspace();
  test_parallel_parts();
  if (g_failures != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all internal checks passed\n");
  return 0;
}
