// Argument checks shared by the kernels, and the default thread budget of
// the public entry points (internal).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/parallel.hpp"
#include "matnet/activations.hpp"
#include "matnet/runtime.hpp"

namespace matnet::detail {

[[noreturn]] inline void fail(const char* fn, const std::string& what) {
  throw matnet::invalid_argument(std::string("matnet::") + fn + ": " + what);
}

inline void require_size(const char* fn, const char* name, std::int64_t v) {
  if (v < 0) fail(fn, std::string(name) + " must be >= 0, got " + std::to_string(v));
}

inline void require_ptr(const char* fn, const char* name, const void* p) {
  if (p == nullptr) fail(fn, std::string(name) + " is null");
}

inline void require_activation(const char* fn, Activation act) {
  const int a = static_cast<int>(act);
  if (a < static_cast<int>(Activation::identity) || a > static_cast<int>(Activation::silu))
    fail(fn, "unknown activation value " + std::to_string(a));
}

/// Threads worth using for `work` element-operations on the default budget
/// (get_num_threads()); for the public entry points.
inline int threads_for(std::int64_t work) { return threads_for(work, get_num_threads()); }

/// parallel_split for a flat element-wise pass over n elements.
template <class F>
void parallel_ranges(std::int64_t n, F&& body) {
  parallel_split(n, threads_for(n), 64, body);
}

}  // namespace matnet::detail
