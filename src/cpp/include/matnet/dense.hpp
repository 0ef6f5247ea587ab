// matnet/dense.hpp - fused fully-connected layer, forward and backward.
//
// Dimension letters: N = batch rows, K = in-features, M = out-features.
// All matrices are contiguous and row-major:
//   x  (N, K)    input
//   w  (K, M)    weights            (a Dense(K -> M) layer: z = x . w + b)
//   b  (M,)      bias, may be null (no bias)
//   z  (N, M)    pre-activation, kept for backward
//   y  (N, M)    output, y = act(z)
//
// Gradients are OVERWRITTEN, never accumulated. Errors: negative sizes, null
// pointers where data must be read or written, and forbidden overlaps throw
// matnet::invalid_argument (derived from std::invalid_argument; see
// activations.hpp). Threads: the GEMMs and the element-wise passes run on up
// to get_num_threads() OpenMP threads; concurrent calls on distinct outputs
// are safe.
#pragma once

#include <cstdint>

#include "matnet/activations.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// z = x . w + b and y = act(z), with the bias and the activation applied to
/// each tile of the product while it is still in cache (one pass over y).
///   y: (N, M) output, required.
///   z: (N, M) pre-activation, or null when backward does not need it. When
///      act is identity z may be null or equal to y; otherwise z must not
///      overlap y. z may be null for relu too: dense_backward then accepts y
///      in place of z (relu'(z) = [y > 0]).
///   x: (N, K), w: (K, M), b: (M,) or null. y and z must not overlap x, w, b.
/// K == 0 gives z = b (broadcast) or 0.
MATNET_API void dense_forward(float* y, float* z, const float* x, const float* w, const float* b,
                              std::int64_t batch, std::int64_t in_features,
                              std::int64_t out_features, Activation act,
                              float negative_slope = 0.01f);
MATNET_API void dense_forward(double* y, double* z, const double* x, const double* w,
                              const double* b, std::int64_t batch, std::int64_t in_features,
                              std::int64_t out_features, Activation act,
                              double negative_slope = 0.01);

/// Backward of dense_forward, from grad_y = dL/dy (N, M):
///   dZ = grad_y * act'(z)      fused with   db = sum over rows of dZ   (one pass)
///   dw = x^T . dZ              (K, M)   transposed GEMM, no transpose stored
///   dx = dZ . w^T              (N, K)   transposed GEMM
///   dx: (N, K) or null to skip it (first layer).
///   dw: (K, M), required.   db: (M,) or null to skip it (layer without bias).
///   grad_y: (N, M).  x: (N, K).  w: (K, M).
///   z: (N, M) pre-activation saved by dense_forward; may be null when act is
///      identity.
/// Outputs must not overlap each other or the inputs. A scratch buffer of
/// N * M elements is used for dZ (kept per calling thread, reused).
/// N == 0 gives dw = 0 and db = 0.
MATNET_API void dense_backward(float* dx, float* dw, float* db, const float* grad_y,
                               const float* x, const float* w, const float* z,
                               std::int64_t batch, std::int64_t in_features,
                               std::int64_t out_features, Activation act,
                               float negative_slope = 0.01f);
MATNET_API void dense_backward(double* dx, double* dw, double* db, const double* grad_y,
                               const double* x, const double* w, const double* z,
                               std::int64_t batch, std::int64_t in_features,
                               std::int64_t out_features, Activation act,
                               double negative_slope = 0.01);

/// One layer of a dense_chain_forward: y = act(x . w + b), w (in, out)
/// row-major, b (out,) or null.
template <class T>
struct DenseLayerRef {
  const T* w;
  const T* b;
  std::int64_t in_features, out_features;
  Activation act;
  T negative_slope;
};

/// Inference through `count` dense layers in a row: y = L_{count-1}(...L_0(x)),
/// x (N, layers[0].in_features), y (N, layers[count-1].out_features). No
/// pre-activation is kept; the intermediate activations live in per-thread
/// workspace reused from call to call, so serving one request allocates
/// nothing. Each layer's in_features must equal the previous out_features.
/// count == 0 is an error. y must not overlap x or any weight.
MATNET_API void dense_chain_forward(const DenseLayerRef<float>* layers, std::int64_t count,
                                    const float* x, std::int64_t batch, float* y);
MATNET_API void dense_chain_forward(const DenseLayerRef<double>* layers, std::int64_t count,
                                    const double* x, std::int64_t batch, double* y);

}  // namespace matnet
