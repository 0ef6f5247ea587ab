// A small JSON reader for the headers of model files (internal).
//
// safetensors headers and matnet's architecture description are a few KiB
// of JSON written by a program, but a served file may come from anywhere,
// so the reader trusts nothing: nesting depth and the number of values are
// bounded, strings must be valid UTF-8 (escapes included), numbers must be
// finite, duplicate object keys are refused, and every error throws
// matnet::model_format_error naming the byte offset. It never reads outside
// [text, text + size).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace matnet::detail {

struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  double number = 0.0;
  /// True when the number was written as an integer that fits int64 exactly.
  bool is_int = false;
  std::int64_t integer = 0;
  std::string string;
  std::vector<JsonValue> array;
  /// Members in file order (keys are unique).
  std::vector<std::pair<std::string, JsonValue>> object;

  /// The member named key, or nullptr (objects only).
  const JsonValue* find(const std::string& key) const;
  const char* kind_name() const;
};

/// Parses text[0:size) as one JSON value (surrounding whitespace allowed).
/// Throws matnet::model_format_error with `what` as the message prefix.
JsonValue parse_json(const char* text, std::size_t size, const std::string& what);

}  // namespace matnet::detail
