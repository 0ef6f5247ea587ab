// Fused dense layer (matnet/dense.hpp).
//
// Legend: N = batch, K = in-features, M = out-features; all row-major.
//   forward:  y (N,M) = act(x (N,K) . w (K,M) + b (M,)), z (N,M) = pre-activation
//   backward: dZ (N,M) = grad_y * act'(z), db (M,) = sum_rows dZ   [one pass]
//             dw (K,M) = x^T . dZ,  dx (N,K) = dZ . w^T           [transposed GEMMs]
//
// Forward adds the bias, saves z and applies the activation in the GEMM's
// tile epilogue, while each MR x NR tile of y is still in L1: y is written to
// memory once and z is a by-product, not an extra pass.
#include "matnet/dense.hpp"

#include <omp.h>

#include <algorithm>

#include "blas3/gemm_driver.hpp"
#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

using detail::EltwiseKernels;

template <class T>
struct BiasActContext {
  const EltwiseKernels<T>* kernels;
  const T* b;      // (M,) or null
  T* z;            // (N, M) or null
  std::int64_t ldz;
  Activation act;
  T slope;
};

template <class T>
void bias_act_tile(const void* ctx, T* c, std::int64_t ldc, std::int64_t i0, std::int64_t j0,
                   int rows, int cols) {
  const auto& e = *static_cast<const BiasActContext<T>*>(ctx);
  e.kernels->forward_tile(c, ldc, e.z != nullptr ? e.z + i0 * e.ldz + j0 : nullptr, e.ldz,
                          e.b != nullptr ? e.b + j0 : nullptr, rows, cols, e.act, e.slope);
}

bool overlaps(const void* a, std::int64_t a_bytes, const void* b, std::int64_t b_bytes) {
  if (a == nullptr || b == nullptr || a_bytes == 0 || b_bytes == 0) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + static_cast<std::uintptr_t>(b_bytes) &&
         pb < pa + static_cast<std::uintptr_t>(a_bytes);
}

void check_dims(const char* fn, std::int64_t n, std::int64_t k, std::int64_t m, Activation act) {
  detail::require_size(fn, "batch", n);
  detail::require_size(fn, "in_features", k);
  detail::require_size(fn, "out_features", m);
  detail::require_activation(fn, act);
}

template <class T>
void forward_impl(T* y, T* z, const T* x, const T* w, const T* b, std::int64_t n, std::int64_t k,
                  std::int64_t m, Activation act, T slope) {
  constexpr const char* fn = "dense_forward";
  check_dims(fn, n, k, m, act);
  if (n == 0 || m == 0) return;
  detail::require_ptr(fn, "y", y);
  if (k > 0) {
    detail::require_ptr(fn, "x", x);
    detail::require_ptr(fn, "w", w);
  }
  if (z == y) {
    if (act != Activation::identity)
      detail::fail(fn, "z must not be y unless the activation is identity");
    z = nullptr;  // y already is the pre-activation
  }
  const std::int64_t ybytes = n * m * static_cast<std::int64_t>(sizeof(T));
  if (overlaps(z, ybytes, y, ybytes)) detail::fail(fn, "z overlaps y");
  const std::int64_t sz = static_cast<std::int64_t>(sizeof(T));
  const void* inputs[] = {x, w, b};
  const std::int64_t in_bytes[] = {n * k * sz, k * m * sz, m * sz};
  const char* names[] = {"x", "w", "b"};
  for (int i = 0; i < 3; ++i) {
    if (overlaps(y, ybytes, inputs[i], in_bytes[i]) || overlaps(z, ybytes, inputs[i], in_bytes[i]))
      detail::fail(fn, std::string("y or z overlaps ") + names[i]);
  }

  const BiasActContext<T> ctx{detail::kernels<T>().eltwise, b, z, m, act, slope};
  const detail::GemmTileEpilogue<T> ep{&bias_act_tile<T>, &ctx};
  const bool need_epilogue = b != nullptr || z != nullptr || act != Activation::identity;
  detail::gemm_run<T>(false, false, n, m, k, T(1), x, std::max<std::int64_t>(1, k), w,
                      std::max<std::int64_t>(1, m), T(0), y, m, need_epilogue ? &ep : nullptr,
                      get_num_threads());
}

template <class T>
void backward_impl(T* dx, T* dw, T* db, const T* gy, const T* x, const T* w, const T* z,
                   std::int64_t n, std::int64_t k, std::int64_t m, Activation act, T slope) {
  constexpr const char* fn = "dense_backward";
  check_dims(fn, n, k, m, act);
  if (k > 0 && m > 0) detail::require_ptr(fn, "dw", dw);
  if (n > 0 && m > 0) {
    detail::require_ptr(fn, "grad_y", gy);
    if (act != Activation::identity) detail::require_ptr(fn, "z", z);
  }
  if (n > 0 && k > 0 && m > 0) {
    detail::require_ptr(fn, "x", x);
    if (dx != nullptr) detail::require_ptr(fn, "w", w);
  }
  const std::int64_t sz = static_cast<std::int64_t>(sizeof(T));
  const void* inputs[] = {gy, x, w, z};
  const std::int64_t in_bytes[] = {n * m * sz, n * k * sz, k * m * sz, n * m * sz};
  const void* outputs[] = {dx, dw, db};
  const std::int64_t out_bytes[] = {n * k * sz, k * m * sz, m * sz};
  for (int o = 0; o < 3; ++o) {
    for (int i = 0; i < 4; ++i)
      if (overlaps(outputs[o], out_bytes[o], inputs[i], in_bytes[i]))
        detail::fail(fn, "an output (dx, dw, db) overlaps an input (grad_y, x, w, z)");
    for (int p = o + 1; p < 3; ++p)
      if (overlaps(outputs[o], out_bytes[o], outputs[p], out_bytes[p]))
        detail::fail(fn, "the outputs dx, dw, db overlap");
  }

  const std::int64_t ldk = std::max<std::int64_t>(1, k), ldm = std::max<std::int64_t>(1, m);
  // Each GEMM is told its thread budget: all threads when it runs alone,
  // one when the two run concurrently below.
  auto gemm_dw = [&](const T* dz, int threads) {  // dw (K, M) = x^T (K, N) . dZ (N, M)
    detail::gemm_run<T>(true, false, k, m, n, T(1), x, ldk, dz, ldm, T(0), dw, ldm, nullptr,
                        threads);
  };
  auto gemm_dx = [&](const T* dz, int threads) {  // dx (N, K) = dZ (N, M) . w^T (M, K)
    detail::gemm_run<T>(false, true, n, k, m, T(1), dz, ldm, w, ldm, T(0), dx, ldk, nullptr,
                        threads);
  };

  // dZ and db in one pass: rows split over threads, each thread sums its
  // rows' dZ into its own db partial; partials are added in thread order.
  const bool has_act = act != Activation::identity;
  const int max_threads = get_num_threads();
  detail::WorkspaceScope scope;
  T* buf = scope.alloc<T>(static_cast<std::size_t>((has_act ? n * m : 0) + max_threads * m));
  T* dzbuf = has_act ? buf : nullptr;
  T* partial = buf + (has_act ? n * m : 0);
  std::fill(partial, partial + max_threads * m, T(0));
  const T* dz = has_act ? dzbuf : gy;
  const auto& kern = *detail::kernels<T>().eltwise;
  // Rows are cut into one block per configured thread ("slot"); a slot's
  // partial db is the same whichever thread computes it, so db does not
  // depend on which path below runs.
  const int slots = max_threads;
  auto dz_slot = [&](int slot) {
    T* acc = db != nullptr ? partial + slot * m : nullptr;
    for (std::int64_t r = n * slot / slots; r < n * (slot + 1) / slots; ++r) {
      if (has_act) {
        kern.backward(dzbuf + r * m, acc, gy + r * m, z + r * m, m, act, slope);
      } else if (acc != nullptr) {
        for (std::int64_t j = 0; j < m; ++j) acc[j] += gy[r * m + j];
      }
    }
  };
  auto reduce_db = [&]() {
    if (db == nullptr) return;
    std::fill(db, db + m, T(0));
    for (int t = 0; t < max_threads; ++t)
      for (std::int64_t j = 0; j < m; ++j) db[j] += partial[t * m + j];
  };

  // With exactly two threads and both GEMMs to do, one parallel region does
  // everything: both threads compute half of dZ, then each runs one GEMM on
  // its own (single-threaded, so no barriers inside the GEMMs). That is one
  // fork/join instead of three, and no thread waits on the other mid-GEMM.
  const double flops = static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(m);
  if (max_threads == 2 && dx != nullptr && flops >= detail::thresholds::dense_concurrent_min_flops &&
      !omp_in_parallel()) {
    detail::RegionErrors errors;
#pragma omp parallel num_threads(2)
    {
      const int t = omp_get_thread_num(), count = omp_get_num_threads();
      for (int slot = slots * t / count; slot < slots * (t + 1) / count; ++slot) dz_slot(slot);
#pragma omp barrier
      errors.run([&] {  // each thread's GEMM runs on that thread alone
        if (t == 0 || count == 1) gemm_dw(dz, 1);
        if (t == 1 || count == 1) gemm_dx(dz, 1);
      });
    }
    errors.rethrow();
    reduce_db();
    return;
  }

  const int nt = detail::threads_for(n * m, max_threads);
  if (has_act || db != nullptr) {
    detail::parallel_split(slots, nt, 1, [&](std::int64_t s0, std::int64_t s1) {
      for (std::int64_t slot = s0; slot < s1; ++slot) dz_slot(static_cast<int>(slot));
    });
  }
  reduce_db();
  gemm_dw(dz, max_threads);
  if (dx != nullptr) gemm_dx(dz, max_threads);
}

}  // namespace

void dense_forward(float* y, float* z, const float* x, const float* w, const float* b,
                   std::int64_t batch, std::int64_t in_features, std::int64_t out_features,
                   Activation act, float negative_slope) {
  forward_impl(y, z, x, w, b, batch, in_features, out_features, act, negative_slope);
}
void dense_forward(double* y, double* z, const double* x, const double* w, const double* b,
                   std::int64_t batch, std::int64_t in_features, std::int64_t out_features,
                   Activation act, double negative_slope) {
  forward_impl(y, z, x, w, b, batch, in_features, out_features, act, negative_slope);
}
void dense_backward(float* dx, float* dw, float* db, const float* grad_y, const float* x,
                    const float* w, const float* z, std::int64_t batch, std::int64_t in_features,
                    std::int64_t out_features, Activation act, float negative_slope) {
  backward_impl(dx, dw, db, grad_y, x, w, z, batch, in_features, out_features, act,
                negative_slope);
}
void dense_backward(double* dx, double* dw, double* db, const double* grad_y, const double* x,
                    const double* w, const double* z, std::int64_t batch,
                    std::int64_t in_features, std::int64_t out_features, Activation act,
                    double negative_slope) {
  backward_impl(dx, dw, db, grad_y, x, w, z, batch, in_features, out_features, act,
                negative_slope);
}

}  // namespace matnet
