// softmax / log_softmax along one axis, forward and backward
// (matnet/activations.hpp). The array is viewed as (outer, len, inner); the
// axis is `len`. inner == 1 (the last axis, the common case) runs row by row
// through the kernel table's max and exp_sum; inner > 1 works on whole
// `inner`-long rows at a time, with per-column running maxima and sums, so
// every pass is still over contiguous memory.
//
// Threads: over `outer` when outer * len * inner is large enough.
#include <cmath>
#include <limits>

#include "matnet/activations.hpp"
#include "core/checks.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

using detail::EltwiseKernels;

constexpr std::int64_t kBlock = 256;  // stack buffer for chunked exp in backward

/// x - m, with its limit where the maximum m is +Inf: 0 for the +Inf
/// entries (they share the mass), -Inf for the finite ones; NaN stays NaN.
/// So a slice holding +Inf gives [1/k ...] and [-log k ...] (k entries at
/// +Inf) and 0 / -Inf elsewhere, not NaN.
template <class T>
inline T shifted(T x, T m) {
  if (m != std::numeric_limits<T>::infinity()) return x - m;
  return x == m ? T(0) : (x != x ? x : -m);
}

void check(const char* fn, const void* out, const void* in, std::int64_t outer, std::int64_t len,
           std::int64_t inner) {
  detail::require_size(fn, "outer", outer);
  detail::require_size(fn, "len", len);
  detail::require_size(fn, "inner", inner);
  if (outer == 0 || len == 0 || inner == 0) return;
  detail::require_ptr(fn, "output", out);
  detail::require_ptr(fn, "input", in);
}

/// Runs body(o) for every outer index o, threaded when the total pays; each
/// part of the split gets `per_thread` scratch elements (for inner > 1
/// paths), taken from the caller's workspace before the region.
template <class T, class F>
void for_each_outer(std::int64_t outer, std::int64_t len, std::int64_t inner,
                    std::int64_t per_thread, F&& body) {
  const int nt = detail::threads_for(outer * len * inner);
  detail::WorkspaceScope scope;
  T* scratch = per_thread > 0 ? scope.alloc<T>(static_cast<std::size_t>(per_thread) *
                                               detail::parts_for(outer, nt))
                              : nullptr;
  detail::parallel_parts(outer, nt, 1, [&](int part, std::int64_t b, std::int64_t e) {
    T* mine = scratch != nullptr ? scratch + per_thread * part : nullptr;
    for (std::int64_t o = b; o < e; ++o) body(o, mine);
  });
}

template <class T>
void softmax_impl(T* y, const T* x, std::int64_t outer, std::int64_t len, std::int64_t inner,
                  bool log) {
  check(log ? "log_softmax_forward" : "softmax_forward", y, x, outer, len, inner);
  if (outer == 0 || len == 0 || inner == 0) return;
  const EltwiseKernels<T>& k = *detail::kernels<T>().eltwise;
  if (inner == 1) {
    for_each_outer<T>(outer, len, 1, 0, [&](std::int64_t o, T*) {
      const T* xr = x + o * len;
      T* yr = y + o * len;
      const T m = k.max(xr, len);
      if (m == std::numeric_limits<T>::infinity()) {  // the kernels would give Inf - Inf
        for (std::int64_t i = 0; i < len; ++i) yr[i] = shifted(xr[i], m);
        const double sum = k.exp_sum(log ? nullptr : yr, yr, len, T(0));
        if (log) {
          const T lse = static_cast<T>(std::log(sum));
          for (std::int64_t i = 0; i < len; ++i) yr[i] -= lse;
        } else {
          const T inv = static_cast<T>(1.0 / sum);
          for (std::int64_t i = 0; i < len; ++i) yr[i] *= inv;
        }
        return;
      }
      if (log) {
        const T lse = static_cast<T>(std::log(k.exp_sum(nullptr, xr, len, m)));
        for (std::int64_t i = 0; i < len; ++i) yr[i] = (xr[i] - m) - lse;
      } else {
        const T inv = static_cast<T>(1.0 / k.exp_sum(yr, xr, len, m));
        for (std::int64_t i = 0; i < len; ++i) yr[i] *= inv;
      }
    });
    return;
  }
  for_each_outer<T>(outer, len, inner, 3 * inner, [&](std::int64_t o, T* scratch) {
    const T* xo = x + o * len * inner;
    T* yo = y + o * len * inner;
    T* m = scratch;
    T* s = scratch + inner;
    T* tmp = scratch + 2 * inner;
    for (std::int64_t j = 0; j < inner; ++j) {
      m[j] = xo[j];
      s[j] = T(0);
    }
    for (std::int64_t i = 1; i < len; ++i)
      for (std::int64_t j = 0; j < inner; ++j) {
        const T v = xo[i * inner + j];
        m[j] = v > m[j] ? v : m[j];
      }
    for (std::int64_t i = 0; i < len; ++i) {
      const T* xr = xo + i * inner;
      T* dst = log ? tmp : yo + i * inner;
      for (std::int64_t j = 0; j < inner; ++j) dst[j] = shifted(xr[j], m[j]);
      k.exp_sum(dst, dst, inner, T(0));
      for (std::int64_t j = 0; j < inner; ++j) s[j] += dst[j];
    }
    if (log) {
      for (std::int64_t j = 0; j < inner; ++j) s[j] = std::log(s[j]);
      for (std::int64_t i = 0; i < len; ++i)
        for (std::int64_t j = 0; j < inner; ++j)
          yo[i * inner + j] = shifted(xo[i * inner + j], m[j]) - s[j];
    } else {
      for (std::int64_t j = 0; j < inner; ++j) s[j] = T(1) / s[j];
      for (std::int64_t i = 0; i < len; ++i)
        for (std::int64_t j = 0; j < inner; ++j) yo[i * inner + j] *= s[j];
    }
  });
}

/// softmax: dx = y (g - sum(g y));  log_softmax: dx = g - exp(y) sum(g).
template <class T>
void softmax_backward_impl(T* dx, const T* g, const T* y, std::int64_t outer, std::int64_t len,
                           std::int64_t inner, bool log) {
  const char* fn = log ? "log_softmax_backward" : "softmax_backward";
  check(fn, dx, g, outer, len, inner);
  if (outer == 0 || len == 0 || inner == 0) return;
  detail::require_ptr(fn, "y", y);
  const EltwiseKernels<T>& k = *detail::kernels<T>().eltwise;
  if (inner == 1) {
    for_each_outer<T>(outer, len, 1, 0, [&](std::int64_t o, T*) {
      const T* gr = g + o * len;
      const T* yr = y + o * len;
      T* dr = dx + o * len;
      if (log) {
        const T sg = static_cast<T>(k.dot(gr, nullptr, len));
        T buf[kBlock];
        for (std::int64_t i0 = 0; i0 < len; i0 += kBlock) {
          const std::int64_t nb = std::min(kBlock, len - i0);
          k.exp_sum(buf, yr + i0, nb, T(0));
          for (std::int64_t i = 0; i < nb; ++i) dr[i0 + i] = gr[i0 + i] - buf[i] * sg;
        }
      } else {
        const T dot = static_cast<T>(k.dot(gr, yr, len));
        for (std::int64_t i = 0; i < len; ++i) dr[i] = yr[i] * (gr[i] - dot);
      }
    });
    return;
  }
  for_each_outer<T>(outer, len, inner, 2 * inner, [&](std::int64_t o, T* scratch) {
    const std::int64_t off = o * len * inner;
    const T* go = g + off;
    const T* yo = y + off;
    T* d = dx + off;
    T* acc = scratch;
    T* tmp = scratch + inner;
    for (std::int64_t j = 0; j < inner; ++j) acc[j] = T(0);
    for (std::int64_t i = 0; i < len; ++i)
      for (std::int64_t j = 0; j < inner; ++j)
        acc[j] += log ? go[i * inner + j] : go[i * inner + j] * yo[i * inner + j];
    for (std::int64_t i = 0; i < len; ++i) {
      if (log) {
        k.exp_sum(tmp, yo + i * inner, inner, T(0));
        for (std::int64_t j = 0; j < inner; ++j)
          d[i * inner + j] = go[i * inner + j] - tmp[j] * acc[j];
      } else {
        for (std::int64_t j = 0; j < inner; ++j)
          d[i * inner + j] = yo[i * inner + j] * (go[i * inner + j] - acc[j]);
      }
    }
  });
}

}  // namespace

void softmax_forward(float* y, const float* x, std::int64_t outer, std::int64_t len,
                     std::int64_t inner) {
  softmax_impl(y, x, outer, len, inner, false);
}
void softmax_forward(double* y, const double* x, std::int64_t outer, std::int64_t len,
                     std::int64_t inner) {
  softmax_impl(y, x, outer, len, inner, false);
}
void log_softmax_forward(float* y, const float* x, std::int64_t outer, std::int64_t len,
                         std::int64_t inner) {
  softmax_impl(y, x, outer, len, inner, true);
}
void log_softmax_forward(double* y, const double* x, std::int64_t outer, std::int64_t len,
                         std::int64_t inner) {
  softmax_impl(y, x, outer, len, inner, true);
}
void softmax_backward(float* dx, const float* grad, const float* y, std::int64_t outer,
                      std::int64_t len, std::int64_t inner) {
  softmax_backward_impl(dx, grad, y, outer, len, inner, false);
}
void softmax_backward(double* dx, const double* grad, const double* y, std::int64_t outer,
                      std::int64_t len, std::int64_t inner) {
  softmax_backward_impl(dx, grad, y, outer, len, inner, false);
}
void log_softmax_backward(float* dx, const float* grad, const float* y, std::int64_t outer,
                          std::int64_t len, std::int64_t inner) {
  softmax_backward_impl(dx, grad, y, outer, len, inner, true);
}
void log_softmax_backward(double* dx, const double* grad, const double* y, std::int64_t outer,
                          std::int64_t len, std::int64_t inner) {
  softmax_backward_impl(dx, grad, y, outer, len, inner, true);
}

}  // namespace matnet
