// matnet/model.hpp - serve models saved by Python's model.save("m.safetensors").
//
//   matnet::Model model = matnet::load_model("model.safetensors");
//   std::vector<float> out(rows * model.output_size());
//   model.predict(x.data(), rows, out.data());   // x: rows x input_size, row-major
//
// load_model memory-maps the file, validates it completely (the safetensors
// header, the architecture JSON in its metadata, and every tensor's dtype,
// shape and byte range against both) and copies the weights into aligned
// memory owned by the Model; the file is closed before load_model returns.
// A malformed or hostile file throws matnet::model_format_error (derived
// from matnet::invalid_argument) and never causes a read outside the file.
//
// A Model runs every layer type Python can save:
//   Dense (with its fused activation; on (..., features) samples too),
//   ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Softmax and LogSoftmax over
//   the last axis, Dropout (the identity at inference), Flatten, Reshape,
//   Conv2D (NCHW, stride/padding/dilation/groups, fused bias + activation),
//   MaxPool2D, AvgPool2D, GlobalAvgPool2D, BatchNorm (evaluation: the saved
//   running statistics), LayerNorm (last axis), MultiHeadAttention (causal
//   or not), PositionalEmbedding, SequenceMean, Residual and Sequential
//   nested as a layer.
// Runs of Dense layers go through dense_chain_forward. Every layer's
// per-sample shape is inferred at load time; input rows are flat: the
// model's input shape is fixed by its first Dense ((in_features,)),
// Reshape ((product of its shape,)) or PositionalEmbedding ((L, E)), and a
// model whose input shape nothing fixes (e.g. one starting with Conv2D) is
// refused with model_format_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

class Model;
/// Loads a model written by matnet's Python `model.save("....safetensors")`.
/// Throws std::runtime_error when the file cannot be read, and
/// matnet::model_format_error when it is not a valid matnet model (with
/// the reason: truncated, bad header, unknown layer type, a tensor whose
/// dtype or shape contradicts the architecture, ...).
MATNET_API Model load_model(const std::string& path);

/// One tensor of a TensorFile. `data` points into the mapped file: it stays
/// valid while any copy of the TensorFile lives, and it may NOT be aligned
/// for the element type (safetensors does not promise alignment), so read
/// it with std::memcpy.
struct TensorView {
  std::string dtype;                ///< safetensors name: "F32", "F64", "I64", "U8", ...
  std::vector<std::int64_t> shape;  ///< row-major
  const void* data = nullptr;
  std::size_t nbytes = 0;
};

/// A read-only, memory-mapped safetensors file, validated on open (header
/// length, JSON, dtypes, shapes, and byte ranges that tile the data exactly).
/// Copies share the mapping.
class MATNET_API TensorFile {
 public:
  /// Throws std::runtime_error when the file cannot be opened or is not a
  /// regular file, matnet::model_format_error when it is malformed.
  static TensorFile open(const std::string& path);

  /// Tensor names in data order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  /// Throws matnet::invalid_argument when there is no tensor `name`.
  TensorView tensor(const std::string& name) const;
  /// The value of a __metadata__ key, if present.
  std::optional<std::string> metadata(const std::string& key) const;

  struct Impl;

 private:
  explicit TensorFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// A loaded model, ready to predict. Copies share the (immutable) weights;
/// predict is const and may be called from several threads at once: each
/// call keeps its intermediates in the calling thread's workspace, which is
/// reused from call to call, so steady-state requests allocate nothing.
class MATNET_API Model {
 public:
  /// Values per input row (the product of the inferred input shape).
  std::int64_t input_size() const;
  /// Values per output row.
  std::int64_t output_size() const;
  /// "float32" or "float64": the dtype of the weights, and of predict's x and out.
  const char* dtype() const;
  /// Number of top-level layers in the file (including those that are
  /// identities here; a nested Sequential or Residual counts once).
  std::size_t layer_count() const;
  /// Top-level layer type names, in order, as Python names them ("Dense", "ReLU", ...).
  std::vector<std::string> layer_types() const;

  /// out (rows x output_size) = model(x (rows x input_size)), both row-major
  /// and dense. rows == 0 does nothing. Throws matnet::invalid_argument for
  /// rows < 0, null pointers (when rows > 0), or a dtype that is not the
  /// model's; out must not overlap x. Uses up to the thread count of the
  /// calling thread (omp_get_max_threads / matnet's setting).
  void predict(const float* x, std::int64_t rows, float* out) const;
  void predict(const double* x, std::int64_t rows, double* out) const;

  struct Impl;

 private:
  friend Model load_model(const std::string& path);
  explicit Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace matnet
