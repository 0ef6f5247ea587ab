// The safetensors container (internal): an 8-byte little-endian header
// length N, N bytes of JSON, then the tensor data. The JSON maps each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data), plus an optional "__metadata__" of string pairs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace matnet::detail {

struct TensorEntry {
  std::string name;
  std::string dtype;  ///< "F32", "F64", "I64", ... as safetensors spells it
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  ///< byte range within the data section
};

struct SafetensorsHeader {
  std::vector<TensorEntry> tensors;  ///< in data order
  std::vector<std::pair<std::string, std::string>> metadata;
  std::uint64_t data_offset = 0;  ///< where the data section starts in the file
  std::uint64_t data_size = 0;

  const TensorEntry* find(const std::string& name) const;
  const std::string* meta(const std::string& key) const;
};

/// Bytes per element of a safetensors dtype name; 0 for an unknown name.
std::size_t safetensors_itemsize(const std::string& dtype);

/// Parses and validates the header of a file of `size` bytes at `file`.
/// Checks, before anything is returned: the header length fits the file
/// (and a 100 MB cap), the header is a JSON object of the schema above,
/// every dtype is known, every shape is non-negative with a product that
/// does not overflow, each tensor's byte range equals product(shape) x
/// itemsize, and the ranges tile the data section exactly, in order, with
/// no gap and no overlap (as the safetensors specification requires).
/// Throws matnet::model_format_error naming `what` (the file) and the fault.
SafetensorsHeader parse_safetensors(const unsigned char* file, std::uint64_t size,
                                    const std::string& what);

}  // namespace matnet::detail
