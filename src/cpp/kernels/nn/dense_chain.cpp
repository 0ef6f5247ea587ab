// Inference through a chain of dense layers (matnet/dense.hpp): one call per
// request instead of one per layer, intermediates in the workspace.
#include <omp.h>

#include <algorithm>
#include <string>

#include "core/checks.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "matnet/dense.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

/// A few rows through every layer, as thread t of team threads (team = 1:
/// the caller alone, no parallel region): each thread multiplies its block
/// of input features (rows of W) into its own partial output, then each
/// thread sums the partials of its block of output columns and applies bias
/// and activation; two barriers per layer instead of a fork/join per layer.
/// A thread reads the same rows of every W on every call, so with a private
/// L2 per core its share of the weights stays there between requests.
/// Allocation-free (the sup or GEMV kernels, never the driver: one row
/// through 784-256-128-10 pays ~0.4 us of driver calls and checks per
/// layer, against ~10 us of kernel time in all).
template <class T>
void chain_layers(const DenseLayerRef<T>* layers, std::int64_t count, const T* x,
                  std::int64_t batch, T* y, T* act_buf, std::int64_t act_stride, T* partial,
                  std::int64_t widest_out, int t, int team) {
  const auto& ks = detail::kernels<T>();
  const detail::GemmKernel<T>& gk = *ks.gemm;
  // rows x (k1 - k0) of in times rows k0..k1 of w into dst (ld m).
  auto multiply = [&](const T* in, std::int64_t k_ld, const T* w, std::int64_t k, std::int64_t m,
                      T* dst) {
    if (gk.sup != nullptr && batch > 1) {
      gk.sup(batch, m, k, T(1), in, k_ld, 1, w, m, T(0), dst, m);
    } else {
      for (std::int64_t r = 0; r < batch; ++r) ks.gemv->t(k, m, T(1), w, m, in + r * k_ld, T(0), dst + r * m);
    }
  };
  auto finish = [&](const DenseLayerRef<T>& L, T* o, std::int64_t j0, std::int64_t j1) {
    ks.eltwise->forward(o + j0, nullptr, o + j0, L.b != nullptr ? L.b + j0 : nullptr, j1 - j0,
                        L.act, L.negative_slope);
  };
  const T* in = x;
  for (std::int64_t l = 0; l < count; ++l) {
    const DenseLayerRef<T>& L = layers[l];
    const std::int64_t K = L.in_features, M = L.out_features;
    T* out = l + 1 == count ? y : act_buf + (l % 2) * act_stride;
    if (team == 1 || (l + 1 == count &&
                      static_cast<double>(K) * static_cast<double>(M) * sizeof(T) <
                          static_cast<double>(detail::thresholds::chain_split_last_min_bytes))) {
      // One thread does the layer alone: always on a team of one; for a
      // small output layer (128 -> 10), which costs less than the two
      // barriers of a split, the first thread while the others are done.
      if (t == 0) {
        multiply(in, K, L.w, K, M, out);
        for (std::int64_t r = 0; r < batch; ++r) finish(L, out + r * M, 0, M);
      }
      if (l + 1 == count) break;
      if (team > 1) {
#pragma omp barrier
      }
      in = out;
      continue;
    }
    // Features split in blocks of 8 (whole cache lines of W per thread).
    const std::int64_t k0 = std::min(K, (K * t / team + 7) / 8 * 8);
    const std::int64_t k1 = t == team - 1 ? K : std::min(K, (K * (t + 1) / team + 7) / 8 * 8);
    T* mine = partial + static_cast<std::int64_t>(t) * batch * widest_out;
    if (k0 >= k1) {
      std::fill(mine, mine + batch * M, T(0));
    } else {
      multiply(in + k0, K, L.w + k0 * M, k1 - k0, M, mine);
    }
#pragma omp barrier
    const std::int64_t j0 = std::min(M, (M * t / team + 15) / 16 * 16);
    const std::int64_t j1 = t == team - 1 ? M : std::min(M, (M * (t + 1) / team + 15) / 16 * 16);
    for (std::int64_t r = 0; r < batch && j0 < j1; ++r) {
      T* o = out + r * M;
      for (std::int64_t j = j0; j < j1; ++j) {
        T v = partial[r * M + j];
        for (int q = 1; q < team; ++q) v += partial[q * batch * widest_out + r * M + j];
        o[j] = v;
      }
      finish(L, o, j0, j1);
    }
    if (l + 1 == count) break;  // the end of the region is the barrier
#pragma omp barrier
    in = out;
  }
}

template <class T>
void chain_impl(const DenseLayerRef<T>* layers, std::int64_t count, const T* x,
                std::int64_t batch, T* y) {
  constexpr const char* fn = "dense_chain_forward";
  detail::require_size(fn, "batch", batch);
  if (count < 1) detail::fail(fn, "count must be >= 1, got " + std::to_string(count));
  detail::require_ptr(fn, "layers", layers);
  for (std::int64_t i = 1; i < count; ++i) {
    if (layers[i].in_features != layers[i - 1].out_features) {
      detail::fail(fn, "layer " + std::to_string(i) + " takes " +
                           std::to_string(layers[i].in_features) + " features but layer " +
                           std::to_string(i - 1) + " gives " +
                           std::to_string(layers[i - 1].out_features));
    }
  }
  if (batch == 0) return;
  std::int64_t widest = 0, widest_all = 0;
  double weight_bytes = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    if (i + 1 < count) widest = std::max(widest, layers[i].out_features);
    widest_all = std::max(widest_all, layers[i].out_features);
    weight_bytes += static_cast<double>(layers[i].in_features) *
                    static_cast<double>(layers[i].out_features) * sizeof(T);
  }
  for (std::int64_t i = 0; i < count; ++i) {
    detail::require_size(fn, "in_features", layers[i].in_features);
    detail::require_size(fn, "out_features", layers[i].out_features);
    detail::require_activation(fn, layers[i].act);
    if (layers[i].in_features > 0 && layers[i].out_features > 0)
      detail::require_ptr(fn, "w", layers[i].w);
  }
  detail::require_ptr(fn, "x", x);
  detail::require_ptr(fn, "y", y);
  detail::WorkspaceScope scope;
  if (batch <= detail::thresholds::sup_max_m) {
    const int nt = weight_bytes >= static_cast<double>(detail::thresholds::gemv_parallel_min_bytes)
                       ? std::max(get_num_threads(), 1)
                       : 1;
    const std::int64_t stride = batch * std::max<std::int64_t>(widest, 1);
    T* act_buf = scope.alloc<T>(static_cast<std::size_t>(2 * stride));
    if (nt == 1) {
      chain_layers<T>(layers, count, x, batch, y, act_buf, stride, nullptr, 0, 0, 1);
      return;
    }
    T* partial = scope.alloc<T>(static_cast<std::size_t>(nt * batch * widest_all));
#pragma omp parallel num_threads(nt)
    chain_layers<T>(layers, count, x, batch, y, act_buf, stride, partial, widest_all,
                    omp_get_thread_num(), omp_get_num_threads());
    return;
  }
  // Two ping-pong buffers for the intermediate activations.
  T* buf[2] = {nullptr, nullptr};
  if (count > 1) {
    buf[0] = scope.alloc<T>(static_cast<std::size_t>(batch * widest));
    buf[1] = count > 2 ? scope.alloc<T>(static_cast<std::size_t>(batch * widest)) : nullptr;
  }
  const T* in = x;
  for (std::int64_t i = 0; i < count; ++i) {
    const DenseLayerRef<T>& l = layers[i];
    T* out = i + 1 == count ? y : buf[i % 2];
    dense_forward(out, nullptr, in, l.w, l.b, batch, l.in_features, l.out_features, l.act,
                  l.negative_slope);
    in = out;
  }
}

}  // namespace

void dense_chain_forward(const DenseLayerRef<float>* layers, std::int64_t count, const float* x,
                         std::int64_t batch, float* y) {
  chain_impl(layers, count, x, batch, y);
}

void dense_chain_forward(const DenseLayerRef<double>* layers, std::int64_t count,
                         const double* x, std::int64_t batch, double* y) {
  chain_impl(layers, count, x, batch, y);
}

}  // namespace matnet
