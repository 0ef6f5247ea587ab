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
#include <exception>

#include "core/thresholds.hpp"
#include "core/workspace.hpp"

namespace matnet::detail {

/// An exception may not leave an OpenMP region: each thread runs its share
/// through run(), which keeps the first exception thrown (bad_alloc from a
/// workspace, an error from a kernel), and rethrow() raises it after the
/// region, on the calling thread.
class RegionErrors {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
#pragma omp critical(matnet_region_errors)
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::exception_ptr first_;
};

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

/// Calls body(thread, task) for every task in [0, n), handed out one at a
/// time (dynamic schedule: for tasks of unequal cost, such as causal
/// attention's) to a team of at most max_threads; thread is in
/// [0, parts_for(n, max_threads)), so per-thread scratch can be laid out
/// before the region. On the calling thread alone when max_threads <= 1.
/// body must not throw.
template <class F>
void parallel_tasks(std::int64_t n, int max_threads, F&& body) {
  const int nt = static_cast<int>(std::min<std::int64_t>(std::max(max_threads, 1), n));
  if (nt <= 1) {
    for (std::int64_t t = 0; t < n; ++t) body(0, t);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int me = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < n; ++t) body(me, t);
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

/// A reduction dimension of length k split over threads, for products whose
/// output is too small to split (GEMV with A^T, few-row GEMM): each part
/// computes body(part, k0, k1, dst, ld, beta) for its block [k0, k1) of k
/// (block starts multiples of `align`); part 0 writes the rows x cols output
/// `out` (leading dimension ld_out) with beta, the others zeroed partials
/// (leading dimension cols) with beta 0, added into `out` in part order, so
/// a given thread count gives the same bits every time. The partials come
/// from the calling thread's workspace before the region. body must not
/// throw.
template <class T, class F>
void parallel_k_sum(std::int64_t k, std::int64_t align, int max_threads, std::int64_t rows,
                    std::int64_t cols, T* out, std::int64_t ld_out, T beta, F&& body) {
  const std::int64_t blocks = (k + align - 1) / align;
  const int parts = parts_for(blocks, max_threads);
  if (parts <= 1) {
    body(0, std::int64_t{0}, k, out, ld_out, beta);
    return;
  }
  WorkspaceScope scope;
  const std::int64_t size = rows * cols;
  T* partial = scope.alloc<T>(static_cast<std::size_t>((parts - 1) * size));
  // Zeroed: the team may run fewer parts than asked for.
  std::fill(partial, partial + (parts - 1) * size, T(0));
  parallel_parts(blocks, max_threads, 1, [&](int part, std::int64_t q0, std::int64_t q1) {
    const std::int64_t k0 = q0 * align, k1 = std::min(k, q1 * align);
    if (part == 0) {
      body(0, k0, k1, out, ld_out, beta);
    } else {
      body(part, k0, k1, partial + (part - 1) * size, cols, T(0));
    }
  });
  for (int part = 1; part < parts; ++part) {
    const T* src = partial + (part - 1) * size;
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) out[i * ld_out + j] += src[i * cols + j];
  }
}

}  // namespace matnet::detail
