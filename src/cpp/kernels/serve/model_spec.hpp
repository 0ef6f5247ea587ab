// What a matnet safetensors model file says, validated (internal).
//
// The file is a safetensors container whose __metadata__ holds
//   "format": "matnet.Sequential", "format_version": "1",
//   "matnet_config": the architecture JSON Python's save_model writes,
// and whose tensors are "layers.<i>.<name>" (and, when the optimizer was
// saved, "optimizer.<j>.<slot>", which serving ignores). parse_model_file
// checks all of it against itself and returns plain numbers: where each
// weight lies in the file, never a pointer. It touches no kernel, so the
// fuzz test links it alone under the sanitizers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "matnet/activations.hpp"

namespace matnet::detail {

struct LayerSpec {
  enum class Kind { dense, activation, softmax, log_softmax, identity };
  std::string type;  ///< the Python class name
  Kind kind = Kind::identity;
  Activation act = Activation::identity;
  double negative_slope = 0.01;
  std::int64_t in_features = 0, out_features = 0;
  bool use_bias = false;
  std::uint64_t w_offset = 0, b_offset = 0;  ///< file offsets of W (in, out) and b (out,)
};

struct ModelSpec {
  bool float64 = false;
  std::int64_t input_size = 0, output_size = 0;
  std::vector<LayerSpec> layers;
};

/// The format this reader understands ("format_version" in the metadata).
constexpr const char* kModelFormat = "matnet.Sequential";
constexpr const char* kModelFormatVersion = "1";

/// Validates a whole model file held in memory. Throws
/// matnet::model_format_error with `what` (the path) and the reason.
ModelSpec parse_model_file(const unsigned char* file, std::uint64_t size, const std::string& what);

}  // namespace matnet::detail
