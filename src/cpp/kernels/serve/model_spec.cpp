// See model_spec.hpp. The schema mirrors src/python/matnet/serialization.py
// and each layer's get_config() in src/python/matnet/layers.py.
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

LayerSpec layer(Context& cx, const JsonValue& spec, std::size_t i, std::optional<bool>& float64) {
  const std::string where = "layer " + std::to_string(i);
  if (spec.kind != JsonValue::Kind::object) cx.fail(where + " must be an object");
  const JsonValue& type = member(cx, spec, "type", where);
  const JsonValue& cfg = member(cx, spec, "config", where);
  if (type.kind != JsonValue::Kind::string) cx.fail(where + ": type must be a string");
  if (cfg.kind != JsonValue::Kind::object) cx.fail(where + ": config must be an object");
  LayerSpec L;
  L.type = type.string;
  const std::string at = where + " (" + L.type.substr(0, 64) + ")";
  if (L.type == "Dense") {
    L.kind = LayerSpec::Kind::dense;
    L.in_features = features(cx, cfg, "in_features", at);
    L.out_features = features(cx, cfg, "out_features", at);
    L.act = activation_of(cx, member(cx, cfg, "activation", at), at);
    L.negative_slope = slope(cx, cfg, at);
    const JsonValue& bias = member(cx, cfg, "use_bias", at);
    if (bias.kind != JsonValue::Kind::boolean) cx.fail(at + ": use_bias must be a boolean");
    L.use_bias = bias.boolean;
    const JsonValue* dt = cfg.find("dtype");
    if (dt == nullptr || dt->kind != JsonValue::Kind::string ||
        (dt->string != "float32" && dt->string != "float64"))
      cx.fail(at + ": dtype must be \"float32\" or \"float64\"");
    const bool f64 = dt->string == "float64";
    if (float64.has_value() && *float64 != f64)
      cx.fail(at + ": layers mix float32 and float64 weights");
    float64 = f64;
    const std::string prefix = "layers." + std::to_string(i) + ".";
    L.w_offset = tensor(cx, prefix + "W", f64, {L.in_features, L.out_features});
    if (L.use_bias) L.b_offset = tensor(cx, prefix + "b", f64, {L.out_features});
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
    // Served inputs are (rows, features): only the feature axis exists.
    if (axis != nullptr && !(axis->kind == JsonValue::Kind::number && axis->is_int &&
                             (axis->integer == -1 || axis->integer == 1)))
      cx.fail(at + ": only axis -1 (the features) can be served");
  } else if (L.type == "Dropout" || L.type == "Flatten") {
    L.kind = LayerSpec::Kind::identity;  // inference: Dropout passes through; inputs are flat
  } else {
    cx.fail(where + ": unknown layer type \"" + L.type.substr(0, 64) + "\"");
  }
  return L;
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
  std::int64_t width = 0;  // features flowing between layers; 0 = not yet known
  for (std::size_t i = 0; i < layers.array.size(); ++i) {
    LayerSpec L = layer(cx, layers.array[i], i, float64);
    if (L.kind == LayerSpec::Kind::dense) {
      if (width != 0 && L.in_features != width)
        cx.fail("layer " + std::to_string(i) + " (Dense) takes " + std::to_string(L.in_features) +
                " features but the layer before gives " + std::to_string(width));
      if (width == 0) model.input_size = L.in_features;
      width = L.out_features;
    }
    model.layers.push_back(std::move(L));
  }
  if (model.input_size == 0)
    cx.fail("the model has no Dense layer, so its input size is unknown; it cannot be served");
  model.output_size = width;
  model.float64 = float64.value_or(false);
  for (const TensorEntry& t : header.tensors)
    if (cx.used.count(t.name) == 0 && t.name.rfind("optimizer.", 0) != 0)
      cx.fail("unexpected tensor \"" + t.name.substr(0, 128) + "\" (not in the architecture)");
  return model;
}

}  // namespace matnet::detail
