// What a matnet safetensors model file says, validated (internal).
//
// The file is a safetensors container whose __metadata__ holds
//   "format": "matnet.Sequential", "format_version": "1",
//   "matnet_config": the architecture JSON Python's save_model writes,
// and whose tensors are "layers.<i>.<name>" (and, when the optimizer was
// saved, "optimizer.<j>.<slot>", which serving ignores). parse_model_file
// checks all of it against itself and returns plain numbers: where each
// weight lies in the file, never a pointer, and every layer's per-sample
// input and output shapes. It touches no kernel, so the
// fuzz test links it alone under the sanitizers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "matnet/activations.hpp"

namespace matnet::detail {

/// One weight or buffer tensor: where it lies in the file, and its element count.
struct TensorSpec {
  std::uint64_t offset = 0;
  std::int64_t count = 0;
};

using Shape = std::vector<std::int64_t>;  ///< a per-sample shape (no batch axis)

struct LayerSpec {
  enum class Kind {
    dense, activation, softmax, log_softmax, identity,  // identity: Dropout, Flatten, Reshape
    conv2d, max_pool2d, avg_pool2d, global_avg_pool2d, batch_norm, layer_norm,
    attention, positional_embedding, sequence_mean, residual, sequential
  };
  std::string type;  ///< the Python class name
  Kind kind = Kind::identity;
  Activation act = Activation::identity;
  double negative_slope = 0.01;
  std::int64_t in_features = 0, out_features = 0;  ///< Dense
  bool use_bias = false;
  std::uint64_t w_offset = 0, b_offset = 0;  ///< Dense: file offsets of W (in, out) and b (out,)
  /// Conv2D: channels in/out, kernel, stride, padding (top, bottom, left,
  /// right), dilation, groups. Pools: kernel, stride, padding (pad[0] = h,
  /// pad[2] = w).
  std::int64_t in_channels = 0, out_channels = 0, groups = 1;
  std::int64_t kernel[2] = {1, 1}, stride[2] = {1, 1}, dilation[2] = {1, 1};
  std::int64_t pad[4] = {0, 0, 0, 0};
  bool count_include_pad = true;  ///< AvgPool2D
  double eps = 1e-5;              ///< BatchNorm, LayerNorm
  bool affine = false;            ///< BatchNorm (gamma, beta), LayerNorm (weight, bias)
  std::int64_t features = 0;      ///< BatchNorm/LayerNorm/PositionalEmbedding/MHA width
  std::int64_t num_heads = 0, length = 0;
  bool causal = false;
  std::int64_t axis = -1;  ///< Softmax, LogSoftmax
  /// The weights in a fixed order per kind: Dense/Conv2D: W[, b];
  /// BatchNorm: [gamma, beta,] running_mean, running_var; LayerNorm:
  /// [weight, bias]; MultiHeadAttention: W_qkv, b_qkv, W_o, b_o;
  /// PositionalEmbedding: P.
  std::vector<TensorSpec> tensors;
  Shape in_shape, out_shape;        ///< per sample, inferred
  std::vector<LayerSpec> children;  ///< Residual: one; Sequential: its layers
};

struct ModelSpec {
  bool float64 = false;
  std::int64_t input_size = 0, output_size = 0;
  Shape input_shape, output_shape;
  std::vector<LayerSpec> layers;
};

/// The format this reader understands ("format_version" in the metadata).
constexpr const char* kModelFormat = "matnet.Sequential";
constexpr const char* kModelFormatVersion = "1";

/// Validates a whole model file held in memory. Throws
/// matnet::model_format_error with `what` (the path) and the reason.
ModelSpec parse_model_file(const unsigned char* file, std::uint64_t size, const std::string& what);

}  // namespace matnet::detail
