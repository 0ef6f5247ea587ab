// Inference through a chain of dense layers (matnet/dense.hpp): one call per
// request instead of one per layer, intermediates in the workspace.
#include <algorithm>
#include <string>

#include "core/checks.hpp"
#include "core/workspace.hpp"
#include "matnet/dense.hpp"

namespace matnet {

namespace {

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
  std::int64_t widest = 0;
  for (std::int64_t i = 0; i + 1 < count; ++i) widest = std::max(widest, layers[i].out_features);
  detail::WorkspaceScope scope;
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
