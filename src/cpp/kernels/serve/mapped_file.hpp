// A read-only memory mapping of a whole regular file (internal).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace matnet::detail {

class MappedFile {
 public:
  /// Maps `path` read-only. Throws std::runtime_error when it cannot be
  /// opened, is not a regular file (a directory, /dev/zero, a pipe: things
  /// whose size means nothing), or cannot be mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  std::uint64_t size() const { return size_; }

 private:
  MappedFile() = default;
  const unsigned char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace matnet::detail
