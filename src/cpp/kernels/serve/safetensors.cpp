// See safetensors.hpp.
#include "serve/safetensors.hpp"

#include <algorithm>
#include <limits>

#include "matnet/errors.hpp"
#include "serve/json.hpp"

namespace matnet::detail {

namespace {

// safetensors' own reader refuses headers above 100 MB; so do we.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// No real tensor comes near 2^62 bytes; the bound keeps every product exact.
constexpr std::uint64_t kMaxBytes = std::uint64_t(1) << 62;

[[noreturn]] void fail(const std::string& what, const std::string& msg) {
  throw model_format_error(what + ": " + msg);
}

std::uint64_t nonneg_int(const JsonValue& v, const std::string& what, const std::string& field) {
  if (v.kind != JsonValue::Kind::number || !v.is_int || v.integer < 0)
    fail(what, field + " must be a non-negative integer");
  return static_cast<std::uint64_t>(v.integer);
}

TensorEntry tensor_entry(const std::string& name, const JsonValue& v, const std::string& what) {
  const std::string where = "tensor \"" + name.substr(0, 128) + "\"";
  if (v.kind != JsonValue::Kind::object || v.object.size() != 3)
    fail(what, where + " must be an object with dtype, shape and data_offsets");
  const JsonValue* dtype = v.find("dtype");
  const JsonValue* shape = v.find("shape");
  const JsonValue* offsets = v.find("data_offsets");
  if (dtype == nullptr || shape == nullptr || offsets == nullptr)
    fail(what, where + " must have exactly the keys dtype, shape and data_offsets");
  TensorEntry t;
  t.name = name;
  if (dtype->kind != JsonValue::Kind::string || safetensors_itemsize(dtype->string) == 0)
    fail(what, where + " has an unknown dtype");
  t.dtype = dtype->string;
  if (shape->kind != JsonValue::Kind::array || shape->array.size() > 16)
    fail(what, where + ": shape must be an array of at most 16 sizes");
  std::uint64_t bytes = safetensors_itemsize(t.dtype);
  for (const JsonValue& d : shape->array) {
    const std::uint64_t n = nonneg_int(d, what, where + " shape entry");
    if (n != 0 && bytes > kMaxBytes / n)
      fail(what, where + " declares an absurd size (more than 2^62 bytes)");
    bytes *= n;
    t.shape.push_back(static_cast<std::int64_t>(n));
  }
  // A zero-sized dimension makes the product 0 however large the others are.
  if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) bytes = 0;
  if (offsets->kind != JsonValue::Kind::array || offsets->array.size() != 2)
    fail(what, where + ": data_offsets must be [begin, end]");
  t.begin = nonneg_int(offsets->array[0], what, where + " data_offsets");
  t.end = nonneg_int(offsets->array[1], what, where + " data_offsets");
  if (t.end < t.begin) fail(what, where + " has data_offsets with end before begin");
  if (t.end - t.begin != bytes)
    fail(what, where + " spans " + std::to_string(t.end - t.begin) + " bytes but its dtype and "
                       "shape need " + std::to_string(bytes));
  return t;
}

}  // namespace

std::size_t safetensors_itemsize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2")
    return 1;
  return 0;
}

const TensorEntry* SafetensorsHeader::find(const std::string& name) const {
  for (const TensorEntry& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const std::string* SafetensorsHeader::meta(const std::string& key) const {
  for (const auto& kv : metadata)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

SafetensorsHeader parse_safetensors(const unsigned char* file, std::uint64_t size,
                                    const std::string& what) {
  if (size < 8) fail(what, "too short for a safetensors file (" + std::to_string(size) + " bytes)");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];
  if (n > size - 8)
    fail(what, "the header length " + std::to_string(n) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)");
  if (n > kMaxHeaderBytes) fail(what, "the header length " + std::to_string(n) + " is implausible");
  if (n < 2) fail(what, "the header is empty");
  const JsonValue root =
      parse_json(reinterpret_cast<const char*>(file) + 8, static_cast<std::size_t>(n), what);
  if (root.kind != JsonValue::Kind::object) fail(what, "the header must be a JSON object");

  SafetensorsHeader h;
  h.data_offset = 8 + n;
  h.data_size = size - h.data_offset;
  for (const auto& member : root.object) {
    if (member.first == "__metadata__") {
      if (member.second.kind != JsonValue::Kind::object)
        fail(what, "__metadata__ must be an object of strings");
      for (const auto& kv : member.second.object) {
        if (kv.second.kind != JsonValue::Kind::string)
          fail(what, "__metadata__ value \"" + kv.first.substr(0, 64) + "\" is not a string");
        h.metadata.emplace_back(kv.first, kv.second.string);
      }
      continue;
    }
    h.tensors.push_back(tensor_entry(member.first, member.second, what));
  }
  std::stable_sort(h.tensors.begin(), h.tensors.end(),
                   [](const TensorEntry& a, const TensorEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  std::uint64_t at = 0;
  for (const TensorEntry& t : h.tensors) {
    if (t.begin != at)
      fail(what, "tensor \"" + t.name.substr(0, 128) + "\" starts at data byte " +
                     std::to_string(t.begin) + (t.begin < at ? ", inside the previous tensor"
                                                             : ", leaving a gap") +
                     " (expected " + std::to_string(at) + ")");
    at = t.end;
  }
  if (at != h.data_size)
    fail(what, "the tensors cover " + std::to_string(at) + " data bytes but the file holds " +
                   std::to_string(h.data_size));
  return h;
}

}  // namespace matnet::detail
