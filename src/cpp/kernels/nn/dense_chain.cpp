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

/// A thread's block of d features or columns: blocks of 16 (whole cache
/// lines of W), the same rule for every layer, so the block of output
/// columns thread t finishes in one layer is its block of input features in
/// the next.
inline std::int64_t chain_block(std::int64_t d, int t, int team) {
  return t >= team ? d : std::min(d, (d * t / team + 15) / 16 * 16);
}

/// out[r, j0:j1) = the sum of the team's partials of layer L (team blocks
/// of batch x widest_out, rows M = L.out_features apart), then L's bias and
/// activation.
template <class T>
void sum_partials(const DenseLayerRef<T>& L, const T* partials, std::int64_t batch,
                  std::int64_t widest_out, int team, T* out, std::int64_t j0, std::int64_t j1) {
  const std::int64_t M = L.out_features;
  const auto& ks = detail::kernels<T>();
  for (std::int64_t r = 0; r < batch && j0 < j1; ++r) {
    T* o = out + r * M;
    for (std::int64_t j = j0; j < j1; ++j) {
      T v = partials[r * M + j];
      for (int q = 1; q < team; ++q) v += partials[q * batch * widest_out + r * M + j];
      o[j] = v;
    }
    ks.eltwise->forward(o + j0, nullptr, o + j0, L.b != nullptr ? L.b + j0 : nullptr, j1 - j0,
                        L.act, L.negative_slope);
  }
}

/// A few rows through every layer, as thread t of team threads. On a team
/// of one (no parallel region): each layer in turn. On more: every layer is
/// split by input features, each thread multiplying its block of features
/// (rows of W) into its own partial output; after one barrier each thread
/// sums the partials of its block of output columns and applies bias and
/// activation. Those columns are its block of features in the next layer,
/// so it goes on without waiting: one barrier per hidden layer, none for
/// the output layer, whose partials the caller sums after the region's
/// join (784-256-128-10, one row, 2 threads: two barriers and the join
/// instead of four and the join). Partials alternate between two buffers
/// by layer: a thread ahead writes the next layer's while the others still
/// read this one's, and cannot get two layers ahead (the next barrier
/// waits for them). A thread reads the same rows of every W on every call,
/// so with a private L2 per core its share of the weights stays there
/// between requests. Allocation-free (the sup or GEMV kernels, never the
/// driver: one row through 784-256-128-10 pays ~0.4 us of driver calls and
/// checks per layer, against ~10 us of kernel time in all).
template <class T>
void chain_layers(const DenseLayerRef<T>* layers, std::int64_t count, const T* x,
                  std::int64_t batch, T* y, T* act_buf, std::int64_t act_stride, T* partial,
                  std::int64_t widest_out, int t, int team) {
  const auto& ks = detail::kernels<T>();
  const detail::GemmKernel<T>& gk = *ks.gemm;
  // rows x k of in (ld k_ld) times k rows of w (m wide) into dst (ld m).
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
    if (team == 1) {
      multiply(in, K, L.w, K, M, out);
      for (std::int64_t r = 0; r < batch; ++r) finish(L, out + r * M, 0, M);
      in = out;
      continue;
    }
    const std::int64_t k0 = chain_block(K, t, team), k1 = chain_block(K, t + 1, team);
    T* layer_partials = partial + (l % 2) * team * batch * widest_out;
    T* mine = layer_partials + static_cast<std::int64_t>(t) * batch * widest_out;
    if (k0 >= k1) {
      std::fill(mine, mine + batch * M, T(0));
    } else {
      multiply(in + k0, K, L.w + k0 * M, k1 - k0, M, mine);
    }
    if (l + 1 == count) break;  // the caller sums these after the join
#pragma omp barrier
    sum_partials(L, layer_partials, batch, widest_out, team, out, chain_block(M, t, team),
                 chain_block(M, t + 1, team));
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
    T* partial = scope.alloc<T>(static_cast<std::size_t>(2 * nt * batch * widest_all));
    int team = 1;
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      if (t == 0) team = omp_get_num_threads();  // fewer than nt when nested
      chain_layers<T>(layers, count, x, batch, y, act_buf, stride, partial, widest_all, t,
                      omp_get_num_threads());
    }
    if (team > 1) {  // the output layer's partials (see chain_layers)
      const DenseLayerRef<T>& last = layers[count - 1];
      sum_partials(last, partial + ((count - 1) % 2) * team * batch * widest_all, batch,
                   widest_all, team, y, 0, last.out_features);
    }
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
