// Splitting work over a given number of threads (internal).
//
// Every driver is told how many threads it may use (its budget) and never
// reads or sets OpenMP's global thread count itself: the public entry points
// pass get_num_threads(), and a kernel that runs inside one of matnet's own
// parallel regions passes what it was given there (usually 1).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "core/thresholds.hpp"

namespace matnet::detail {

/// Calls body(part, begin, end) over [0, n) split into contiguous ranges
/// (inner starts rounded to `align`), one per thread of a team of at most
/// max_threads; part is the range's index in [0, parts_for(n, max_threads)),
/// so per-part scratch can be laid out before the region. On the calling
/// thread alone when max_threads <= 1. body must not throw.
template <class F>
void parallel_parts(std::int64_t n, int max_threads, std::int64_t align, F&& body) {
  const int nt = static_cast<int>(std::min<std::int64_t>(std::max(max_threads, 1), n));
  if (nt <= 1) {
    if (n > 0) body(0, std::int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    // The team may be smaller than asked (nested region, OMP_THREAD_LIMIT):
    // split for the team that runs.
    const int t = omp_get_thread_num(), count = omp_get_num_threads();
    auto split = [&](int i) { return std::min(n, (n * i / count + align - 1) / align * align); };
    const std::int64_t b = t == 0 ? 0 : split(t);
    const std::int64_t e = t == count - 1 ? n : split(t + 1);
    if (b < e) body(t, b, e);
  }
}

/// Number of parts parallel_parts(n, max_threads, ...) may use.
inline int parts_for(std::int64_t n, int max_threads) {
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(std::max(max_threads, 1), n)));
}

/// parallel_parts without the part index.
template <class F>
void parallel_split(std::int64_t n, int max_threads, std::int64_t align, F&& body) {
  parallel_parts(n, max_threads, align,
                 [&](int, std::int64_t b, std::int64_t e) { body(b, e); });
}

/// Threads worth using for `work` element-operations out of a budget: 1
/// below thresholds::parallel_min_elements.
inline int threads_for(std::int64_t work, int budget) {
  return work < thresholds::parallel_min_elements ? 1 : std::max(budget, 1);
}

}  // namespace matnet::detail
