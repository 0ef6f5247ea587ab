// Argument checks and the threading helper shared by the NN kernels (internal).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "matnet/activations.hpp"
#include "matnet/runtime.hpp"

namespace matnet::detail {

/// Element counts from which an element-wise pass is split over threads: below
/// this a fork/join (a few microseconds) costs more than the second core saves.
inline constexpr std::int64_t kParallelMinElements = 1 << 16;

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

/// Calls body(begin, end) over [0, n) split into contiguous ranges (starts
/// rounded to `align`) on up to max_threads threads; on the calling thread
/// alone when max_threads <= 1. body must not throw.
template <class F>
void parallel_split(std::int64_t n, int max_threads, std::int64_t align, F&& body) {
  const int nt = static_cast<int>(std::min<std::int64_t>(max_threads, n));
  if (nt <= 1) {
    if (n > 0) body(std::int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), count = omp_get_num_threads();
    auto split = [&](int i) { return std::min(n, (n * i / count + align - 1) / align * align); };
    const std::int64_t b = t == 0 ? 0 : split(t);
    const std::int64_t e = t == count - 1 ? n : split(t + 1);
    if (b < e) body(b, e);
  }
}

/// Threads worth using for `work` element-operations: 1 below
/// kParallelMinElements, then up to get_num_threads().
inline int threads_for(std::int64_t work) {
  return work < kParallelMinElements ? 1 : get_num_threads();
}

/// parallel_split for a flat element-wise pass over n elements.
template <class F>
void parallel_ranges(std::int64_t n, F&& body) {
  parallel_split(n, threads_for(n), 64, body);
}

}  // namespace matnet::detail
