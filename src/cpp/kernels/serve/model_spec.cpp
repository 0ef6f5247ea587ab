// See model_spec.hpp. The schema mirrors src/python/matnet/serialization.py
// and each layer's get_config() in src/python/matnet/layers/*.py and model.py
// (Sequential).
#include "serve/model_spec.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "matnet/errors.hpp"
#include "serve/json.hpp"
#include "serve/safetensors.hpp"

namespace matnet::detail {

namespace {

// Far beyond any served model; keeps widths products exact in int64.
constexpr std::int64_t kMaxFeatures = std::int64_t(1) << 31;
constexpr std::size_t kMaxLayers = 100000;

struct Context {
  const std::string& what;
  const SafetensorsHeader& header;
  std::set<std::string> used;

  [[noreturn]] void fail(const std::string& msg) const { throw model_format_error(what + ": " + msg); }
};

const JsonValue& member(const Context& cx, const JsonValue& obj, const char* key,
                        const std::string& where) {
  const JsonValue* v = obj.find(key);
  if (v == nullptr) cx.fail(where + ": missing \"" + key + "\"");
  return *v;
}

std::int64_t features(const Context& cx, const JsonValue& cfg, const char* key,
                      const std::string& where) {
  const JsonValue& v = member(cx, cfg, key, where);
  if (v.kind != JsonValue::Kind::number || !v.is_int || v.integer < 1 || v.integer > kMaxFeatures)
    cx.fail(where + ": " + key + " must be an integer in [1, 2^31]");
  return v.integer;
}

double slope(const Context& cx, const JsonValue& cfg, const std::string& where) {
  const JsonValue* v = cfg.find("negative_slope");
  if (v == nullptr) return 0.01;
  if (v->kind != JsonValue::Kind::number || v->number < 0.0 || v->number > 1e6)
    cx.fail(where + ": negative_slope must be a number in [0, 1e6]");
  return v->number;
}

// Checks tensor `name` exists with the dtype and shape the architecture
// implies, and returns its file offset.
std::uint64_t tensor(Context& cx, const std::string& name, bool float64,
                     std::vector<std::int64_t> shape) {
  const TensorEntry* t = cx.header.find(name);
  if (t == nullptr) cx.fail("missing tensor \"" + name + "\"");
  const char* dtype = float64 ? "F64" : "F32";
  if (t->dtype != dtype)
    cx.fail("tensor \"" + name + "\" has dtype " + t->dtype + ", the architecture says " + dtype);
  if (t->shape != shape) {
    auto show = [](const std::vector<std::int64_t>& s) {
      std::string out = "(";
      for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + (s.size() == 1 ? ",)" : ")");
    };
    cx.fail("tensor \"" + name + "\" has shape " + show(t->shape) + ", the architecture says " +
            show(shape));
  }
  cx.used.insert(name);
  return cx.header.data_offset + t->begin;
}

Activation activation_of(const Context& cx, const JsonValue& v, const std::string& where) {
  if (v.kind == JsonValue::Kind::null) return Activation::identity;
  if (v.kind != JsonValue::Kind::string) cx.fail(where + ": activation must be a string or null");
  try {
    return activation_from_name(v.string);
  } catch (const invalid_argument&) {
    cx.fail(where + ": unknown activation \"" + v.string.substr(0, 64) + "\"");
  }
}

std::int64_t integer(const Context& cx, const JsonValue& cfg, const char* key,
                     const std::string& where, std::int64_t lo, std::int64_t hi) {
  const JsonValue& v = member(cx, cfg, key, where);
  if (v.kind != JsonValue::Kind::number || !v.is_int || v.integer < lo || v.integer > hi)
    cx.fail(where + ": " + key + " must be an integer in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
  return v.integer;
}

bool boolean(const Context& cx, const JsonValue& cfg, const char* key, const std::string& where,
             std::optional<bool> fallback = std::nullopt) {
  const JsonValue* v = cfg.find(key);
  if (v == nullptr && fallback.has_value()) return *fallback;
  if (v == nullptr || v->kind != JsonValue::Kind::boolean)
    cx.fail(where + ": " + key + " must be a boolean");
  return v->boolean;
}

double positive_eps(const Context& cx, const JsonValue& cfg, const std::string& where) {
  const JsonValue& v = member(cx, cfg, "eps", where);
  if (v.kind != JsonValue::Kind::number || !(v.number > 0.0) || !(v.number <= 1.0))
    cx.fail(where + ": eps must be a number in (0, 1]");
  return v.number;
}

// An int or a list of two ints, each in [lo, 2^31].
void pair(const Context& cx, const JsonValue& cfg, const char* key, const std::string& where,
          std::int64_t lo, std::int64_t out[2]) {
  const JsonValue& v = member(cx, cfg, key, where);
  auto ok = [&](const JsonValue& e) {
    return e.kind == JsonValue::Kind::number && e.is_int && e.integer >= lo &&
           e.integer <= kMaxFeatures;
  };
  if (ok(v)) {
    out[0] = out[1] = v.integer;
    return;
  }
  if (v.kind != JsonValue::Kind::array || v.array.size() != 2 || !ok(v.array[0]) ||
      !ok(v.array[1]))
    cx.fail(where + ": " + key + " must be a list of two integers >= " + std::to_string(lo));
  out[0] = v.array[0].integer;
  out[1] = v.array[1].integer;
}

// The layer's "dtype"; all weighted layers of a model must agree.
bool dtype_of(const Context& cx, const JsonValue& cfg, const std::string& at,
              std::optional<bool>& float64) {
  const JsonValue* dt = cfg.find("dtype");
  if (dt == nullptr || dt->kind != JsonValue::Kind::string ||
      (dt->string != "float32" && dt->string != "float64"))
    cx.fail(at + ": dtype must be \"float32\" or \"float64\"");
  const bool f64 = dt->string == "float64";
  if (float64.has_value() && *float64 != f64)
    cx.fail(at + ": layers mix float32 and float64 weights");
  float64 = f64;
  return f64;
}

constexpr int kMaxDepth = 32;

LayerSpec layer(Context& cx, const JsonValue& spec, const std::string& prefix,
                const std::string& where, std::optional<bool>& float64, int depth) {
  if (depth > kMaxDepth) cx.fail(where + ": containers nested too deeply");
  if (spec.kind != JsonValue::Kind::object) cx.fail(where + " must be an object");
  const JsonValue& type = member(cx, spec, "type", where);
  const JsonValue& cfg = member(cx, spec, "config", where);
  if (type.kind != JsonValue::Kind::string) cx.fail(where + ": type must be a string");
  if (cfg.kind != JsonValue::Kind::object) cx.fail(where + ": config must be an object");
  LayerSpec L;
  L.type = type.string;
  const std::string at = where + " (" + L.type.substr(0, 64) + ")";
  auto add = [&](const char* name, bool f64, std::vector<std::int64_t> shape) {
    const std::uint64_t offset = tensor(cx, prefix + name, f64, shape);
    std::int64_t count = 1;  // cannot overflow: the file holds that many values
    for (std::int64_t d : shape) count *= d;
    L.tensors.push_back({offset, count});
    return L.tensors.back().offset;
  };
  if (L.type == "Dense") {
    L.kind = LayerSpec::Kind::dense;
    L.in_features = features(cx, cfg, "in_features", at);
    L.out_features = features(cx, cfg, "out_features", at);
    L.act = activation_of(cx, member(cx, cfg, "activation", at), at);
    L.negative_slope = slope(cx, cfg, at);
    L.use_bias = boolean(cx, cfg, "use_bias", at);
    const bool f64 = dtype_of(cx, cfg, at, float64);
    L.w_offset = add("W", f64, {L.in_features, L.out_features});
    if (L.use_bias) L.b_offset = add("b", f64, {L.out_features});
  } else if (L.type == "Conv2D") {
    L.kind = LayerSpec::Kind::conv2d;
    L.in_channels = features(cx, cfg, "in_channels", at);
    L.out_channels = features(cx, cfg, "out_channels", at);
    L.groups = features(cx, cfg, "groups", at);
    if (L.in_channels % L.groups != 0 || L.out_channels % L.groups != 0)
      cx.fail(at + ": groups must divide in_channels and out_channels");
    pair(cx, cfg, "kernel_size", at, 1, L.kernel);
    pair(cx, cfg, "stride", at, 1, L.stride);
    pair(cx, cfg, "dilation", at, 1, L.dilation);
    if (L.kernel[0] > 4096 || L.kernel[1] > 4096 || L.dilation[0] > 4096 || L.dilation[1] > 4096)
      cx.fail(at + ": kernel_size and dilation must be at most 4096");
    const JsonValue& padding = member(cx, cfg, "padding", at);
    if (padding.kind == JsonValue::Kind::string) {
      if (padding.string == "same") {
        if (L.stride[0] != 1 || L.stride[1] != 1) cx.fail(at + ": padding \"same\" needs stride 1");
        const std::int64_t th = L.dilation[0] * (L.kernel[0] - 1);
        const std::int64_t tw = L.dilation[1] * (L.kernel[1] - 1);
        L.pad[0] = th / 2, L.pad[1] = th - th / 2, L.pad[2] = tw / 2, L.pad[3] = tw - tw / 2;
      } else if (padding.string != "valid") {
        cx.fail(at + ": padding must be \"same\", \"valid\" or two integers");
      }
    } else {
      std::int64_t p[2];
      pair(cx, cfg, "padding", at, 0, p);
      L.pad[0] = L.pad[1] = p[0];
      L.pad[2] = L.pad[3] = p[1];
    }
    L.act = activation_of(cx, member(cx, cfg, "activation", at), at);
    L.negative_slope = slope(cx, cfg, at);
    L.use_bias = boolean(cx, cfg, "use_bias", at);
    const bool f64 = dtype_of(cx, cfg, at, float64);
    add("W", f64, {L.out_channels, L.in_channels / L.groups, L.kernel[0], L.kernel[1]});
    if (L.use_bias) add("b", f64, {L.out_channels});
  } else if (L.type == "MaxPool2D" || L.type == "AvgPool2D") {
    L.kind = L.type == "MaxPool2D" ? LayerSpec::Kind::max_pool2d : LayerSpec::Kind::avg_pool2d;
    pair(cx, cfg, "kernel_size", at, 1, L.kernel);
    pair(cx, cfg, "stride", at, 1, L.stride);
    std::int64_t p[2];
    pair(cx, cfg, "padding", at, 0, p);
    if (2 * p[0] > L.kernel[0] || 2 * p[1] > L.kernel[1])
      cx.fail(at + ": padding must be at most half the window");
    L.pad[0] = L.pad[1] = p[0];
    L.pad[2] = L.pad[3] = p[1];
    if (L.kind == LayerSpec::Kind::avg_pool2d)
      L.count_include_pad = boolean(cx, cfg, "count_include_pad", at, true);
  } else if (L.type == "GlobalAvgPool2D") {
    L.kind = LayerSpec::Kind::global_avg_pool2d;
  } else if (L.type == "BatchNorm" || L.type == "LayerNorm") {
    // BatchNorm: [gamma, beta,] running_mean, running_var (+ num_batches_tracked,
    // checked but unused at inference); LayerNorm: [weight, bias].
    const bool batch = L.type == "BatchNorm";
    L.kind = batch ? LayerSpec::Kind::batch_norm : LayerSpec::Kind::layer_norm;
    L.features = features(cx, cfg, batch ? "num_features" : "features", at);
    L.eps = positive_eps(cx, cfg, at);
    L.affine = boolean(cx, cfg, batch ? "affine" : "elementwise_affine", at);
    const bool f64 = dtype_of(cx, cfg, at, float64);
    if (L.affine) {
      add(batch ? "gamma" : "weight", f64, {L.features});
      add(batch ? "beta" : "bias", f64, {L.features});
    }
    if (batch) {
      add("running_mean", f64, {L.features});
      add("running_var", f64, {L.features});
      tensor(cx, prefix + "num_batches_tracked", f64, {});
    }
  } else if (L.type == "MultiHeadAttention") {
    L.kind = LayerSpec::Kind::attention;
    L.features = integer(cx, cfg, "embed_dim", at, 1, std::int64_t(1) << 20);
    L.num_heads = integer(cx, cfg, "num_heads", at, 1, L.features);
    if (L.features % L.num_heads != 0) cx.fail(at + ": embed_dim must be a multiple of num_heads");
    L.causal = boolean(cx, cfg, "causal", at);
    const bool f64 = dtype_of(cx, cfg, at, float64);
    add("W_qkv", f64, {L.features, 3 * L.features});
    add("b_qkv", f64, {3 * L.features});
    add("W_o", f64, {L.features, L.features});
    add("b_o", f64, {L.features});
  } else if (L.type == "PositionalEmbedding") {
    L.kind = LayerSpec::Kind::positional_embedding;
    L.length = integer(cx, cfg, "length", at, 1, std::int64_t(1) << 20);
    L.features = integer(cx, cfg, "features", at, 1, std::int64_t(1) << 20);
    const bool f64 = dtype_of(cx, cfg, at, float64);
    add("P", f64, {L.length, L.features});
  } else if (L.type == "SequenceMean") {
    L.kind = LayerSpec::Kind::sequence_mean;
  } else if (L.type == "Reshape") {
    L.kind = LayerSpec::Kind::identity;
    const JsonValue& t = member(cx, cfg, "target_shape", at);
    if (t.kind != JsonValue::Kind::array || t.array.empty() || t.array.size() > 8)
      cx.fail(at + ": target_shape must be a list of 1 to 8 integers");
    std::int64_t count = 1;
    for (const JsonValue& d : t.array) {
      if (d.kind != JsonValue::Kind::number || !d.is_int || d.integer < 1 ||
          d.integer > kMaxFeatures || count > kMaxFeatures / d.integer)
        cx.fail(at + ": target_shape must hold positive integers with a product <= 2^31");
      count *= d.integer;
      L.out_shape.push_back(d.integer);  // the target, until shapes are inferred
    }
  } else if (L.type == "Residual") {
    L.kind = LayerSpec::Kind::residual;
    L.children.push_back(layer(cx, member(cx, cfg, "layer", at), prefix + "layer.",
                               where + ".layer", float64, depth + 1));
  } else if (L.type == "Sequential") {
    L.kind = LayerSpec::Kind::sequential;
    const JsonValue& layers = member(cx, cfg, "layers", at);
    if (layers.kind != JsonValue::Kind::array || layers.array.empty() ||
        layers.array.size() > kMaxLayers)
      cx.fail(at + ": \"layers\" must be a non-empty array");
    for (std::size_t j = 0; j < layers.array.size(); ++j)
      L.children.push_back(layer(cx, layers.array[j], prefix + "layers." + std::to_string(j) + ".",
                                 where + "." + std::to_string(j), float64, depth + 1));
  } else if (L.type == "ReLU" || L.type == "Sigmoid" || L.type == "Tanh" || L.type == "SiLU") {
    L.kind = LayerSpec::Kind::activation;
    L.act = L.type == "ReLU" ? Activation::relu
            : L.type == "Sigmoid" ? Activation::sigmoid
            : L.type == "Tanh" ? Activation::tanh : Activation::silu;
  } else if (L.type == "LeakyReLU") {
    L.kind = LayerSpec::Kind::activation;
    L.act = Activation::leaky_relu;
    L.negative_slope = slope(cx, cfg, at);
  } else if (L.type == "GELU") {
    L.kind = LayerSpec::Kind::activation;
    const JsonValue* approx = cfg.find("approximate");
    const std::string a = approx != nullptr && approx->kind == JsonValue::Kind::string
                              ? approx->string : "none";
    if (approx != nullptr && approx->kind != JsonValue::Kind::string)
      cx.fail(at + ": approximate must be a string");
    if (a != "none" && a != "tanh") cx.fail(at + ": approximate must be \"none\" or \"tanh\"");
    L.act = a == "tanh" ? Activation::gelu_tanh : Activation::gelu;
  } else if (L.type == "Softmax" || L.type == "LogSoftmax") {
    L.kind = L.type == "Softmax" ? LayerSpec::Kind::softmax : LayerSpec::Kind::log_softmax;
    const JsonValue* axis = cfg.find("axis");
    // Only the last axis is served (axis 1 is the last one of flat samples,
    // checked with the shapes).
    if (axis != nullptr && !(axis->kind == JsonValue::Kind::number && axis->is_int &&
                             (axis->integer == -1 || axis->integer == 1)))
      cx.fail(at + ": only axis -1 (the features) can be served");
    L.axis = axis != nullptr ? axis->integer : -1;
  } else if (L.type == "Dropout" || L.type == "Flatten") {
    L.kind = LayerSpec::Kind::identity;  // inference: Dropout passes through; Flatten reshapes
  } else {
    cx.fail(where + ": unknown layer type \"" + L.type.substr(0, 64) + "\"");
  }
  return L;
}

// ---- shapes

std::string show(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

constexpr std::int64_t kMaxElements = std::int64_t(1) << 31;  // per sample

// The product, saturating just above kMaxElements (every factor is >= 0).
std::int64_t elements(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n = d != 0 && n > kMaxElements / d ? kMaxElements + 1 : n * d;
  return n;
}

// The per-sample input shape the first layers fix, if they do: Dense ->
// (in_features,), Reshape -> (product,) (rows come in flat), a
// PositionalEmbedding -> (length, features); activations, Dropout and
// Flatten before it do not care. `blocked` names a layer that needs a known
// shape before anything fixed one.
std::optional<Shape> input_shape_of(const std::vector<LayerSpec>& layers, std::string& blocked) {
  using K = LayerSpec::Kind;
  for (const LayerSpec& L : layers) {
    switch (L.kind) {
      case K::dense: return Shape{L.in_features};
      case K::identity:
        if (L.type == "Reshape") return Shape{elements(L.out_shape)};
        break;
      case K::positional_embedding: return Shape{L.length, L.features};
      case K::activation: case K::softmax: case K::log_softmax: break;
      case K::residual: case K::sequential: {
        std::optional<Shape> s = input_shape_of(L.children, blocked);
        if (s.has_value() || !blocked.empty()) return s;
        break;
      }
      default:
        blocked = L.type;
        return std::nullopt;
    }
  }
  return std::nullopt;
}

Shape infer(const Context& cx, LayerSpec& L, const Shape& in, const std::string& where);

Shape infer_all(const Context& cx, std::vector<LayerSpec>& layers, Shape shape,
                const std::string& where) {
  for (std::size_t i = 0; i < layers.size(); ++i)
    shape = infer(cx, layers[i], shape, where + std::to_string(i));
  return shape;
}

Shape infer(const Context& cx, LayerSpec& L, const Shape& in, const std::string& where) {
  using K = LayerSpec::Kind;
  const std::string at = where + " (" + L.type.substr(0, 64) + ")";
  auto need = [&](bool ok, const std::string& what) {
    if (!ok)
      cx.fail(at + " expects samples of shape " + what + ", the layer before gives " + show(in));
  };
  Shape out = in;
  switch (L.kind) {
    case K::dense:
      need(in.back() == L.in_features, "(..., " + std::to_string(L.in_features) + ")");
      out.back() = L.out_features;
      break;
    case K::activation: break;
    case K::softmax: case K::log_softmax:
      need(L.axis == -1 || in.size() == 1, "(features,) for axis 1");
      break;
    case K::identity:
      if (L.type == "Flatten") {
        out = Shape{elements(in)};
      } else if (L.type == "Reshape") {
        need(elements(in) == elements(L.out_shape), show(L.out_shape) + " or as many values");
        out = L.out_shape;
      }
      break;
    case K::conv2d: {
      need(in.size() == 3 && in[0] == L.in_channels,
           "(" + std::to_string(L.in_channels) + ", H, W)");
      const std::int64_t oh = (in[1] + L.pad[0] + L.pad[1] - L.dilation[0] * (L.kernel[0] - 1) - 1);
      const std::int64_t ow = (in[2] + L.pad[2] + L.pad[3] - L.dilation[1] * (L.kernel[1] - 1) - 1);
      if (oh < 0 || ow < 0) cx.fail(at + ": the kernel does not fit samples of shape " + show(in));
      out = Shape{L.out_channels, oh / L.stride[0] + 1, ow / L.stride[1] + 1};
      break;
    }
    case K::max_pool2d: case K::avg_pool2d: {
      need(in.size() == 3, "(C, H, W)");
      const std::int64_t oh = in[1] + 2 * L.pad[0] - L.kernel[0];
      const std::int64_t ow = in[2] + 2 * L.pad[2] - L.kernel[1];
      if (oh < 0 || ow < 0) cx.fail(at + ": the window does not fit samples of shape " + show(in));
      out = Shape{in[0], oh / L.stride[0] + 1, ow / L.stride[1] + 1};
      break;
    }
    case K::global_avg_pool2d:
      need(in.size() == 3, "(C, H, W)");
      out = Shape{in[0]};
      break;
    case K::batch_norm:
      need(in[0] == L.features, "(" + std::to_string(L.features) + ", ...)");
      break;
    case K::layer_norm:
      need(in.back() == L.features, "(..., " + std::to_string(L.features) + ")");
      break;
    case K::attention:
      need(in.size() == 2 && in[1] == L.features, "(L, " + std::to_string(L.features) + ")");
      break;
    case K::positional_embedding:
      need(in == Shape{L.length, L.features}, show(Shape{L.length, L.features}));
      break;
    case K::sequence_mean:
      need(in.size() == 2, "(L, E)");
      out = Shape{in[1]};
      break;
    case K::residual:
      out = infer(cx, L.children[0], in, where + ".layer");
      if (out != in)
        cx.fail(at + ": the inner layer maps " + show(in) + " to " + show(out) +
                "; a residual needs the same shape");
      break;
    case K::sequential:
      out = infer_all(cx, L.children, in, where + ".");
      break;
  }
  if (elements(out) > kMaxElements)
    cx.fail(at + ": " + show(out) + " is too large per sample (more than 2^31 values)");
  L.in_shape = in;
  L.out_shape = out;
  return out;
}

}  // namespace

ModelSpec parse_model_file(const unsigned char* file, std::uint64_t size, const std::string& what) {
  const SafetensorsHeader header = parse_safetensors(file, size, what);
  Context cx{what, header, {}};
  const std::string* format = header.meta("format");
  if (format == nullptr || *format != kModelFormat)
    cx.fail("not a matnet model (its safetensors metadata has no \"format\": \"" +
            std::string(kModelFormat) + "\")");
  const std::string* version = header.meta("format_version");
  if (version == nullptr || *version != kModelFormatVersion)
    cx.fail("format version " + (version ? "\"" + version->substr(0, 32) + "\"" : "(none)") +
            " is not supported (this reader reads version " + kModelFormatVersion + ")");
  const std::string* config_text = header.meta("matnet_config");
  if (config_text == nullptr) cx.fail("no \"matnet_config\" (the architecture) in the metadata");
  const JsonValue config = parse_json(config_text->data(), config_text->size(),
                                      what + ": matnet_config");
  if (config.kind != JsonValue::Kind::object) cx.fail("matnet_config must be a JSON object");
  const JsonValue& layers = member(cx, config, "layers", "matnet_config");
  if (layers.kind != JsonValue::Kind::array || layers.array.empty() ||
      layers.array.size() > kMaxLayers)
    cx.fail("matnet_config: \"layers\" must be a non-empty array");

  ModelSpec model;
  std::optional<bool> float64;
  for (std::size_t i = 0; i < layers.array.size(); ++i)
    model.layers.push_back(layer(cx, layers.array[i], "layers." + std::to_string(i) + ".",
                                 "layer " + std::to_string(i), float64, 0));
  std::string blocked;
  const std::optional<Shape> input = input_shape_of(model.layers, blocked);
  if (!input.has_value())
    cx.fail(blocked.empty()
                ? "no layer fixes the model's input shape (a Dense, Reshape or "
                  "PositionalEmbedding); it cannot be served"
                : "the model's input shape is unknown where " + blocked.substr(0, 64) +
                      " needs it (put a Reshape first); it cannot be served");
  model.input_shape = *input;
  model.output_shape = infer_all(cx, model.layers, *input, "layer ");
  model.input_size = elements(model.input_shape);
  model.output_size = elements(model.output_shape);
  model.float64 = float64.value_or(false);
  for (const TensorEntry& t : header.tensors)
    if (cx.used.count(t.name) == 0 && t.name.rfind("optimizer.", 0) != 0)
      cx.fail("unexpected tensor \"" + t.name.substr(0, 128) + "\" (not in the architecture)");
  return model;
}

}  // namespace matnet::detail
