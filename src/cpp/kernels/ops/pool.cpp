// 2-D max and average pooling (matnet/pool.hpp).
//
// Legend: N batch, C channels, H x W input, KH x KW window, OH x OW output;
// NCHW, so every one of the N*C planes is pooled on its own and the planes
// are what is split over threads (backward writes each dx plane from one
// thread: no atomics, deterministic sums). The window loops are plain
// scalar loops the compiler vectorises where it can: pooling moves each
// input element once or a few times and is memory-bound.
#include "matnet/pool.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/checks.hpp"
#include "core/parallel.hpp"

namespace matnet {

namespace {

using I = std::int64_t;

/// Runs body(plane) for each of the N*C planes, split over threads when
/// the element count pays for it.
template <class F>
void for_planes(const Pool2dShape& s, F&& body) {
  const I planes = s.batch * s.channels;
  const I work = planes * std::max(s.height * s.width, s.out_h() * s.out_w() * s.kernel_h * s.kernel_w);
  detail::parallel_split(planes, detail::threads_for(work), 1, [&](I b, I e) {
    for (I p = b; p < e; ++p) body(p);
  });
}

/// Window rows [y0, y1) and columns [x0, x1) of output (i, j), clipped to the image.
struct Window {
  I y0, y1, x0, x1;
};

Window window(const Pool2dShape& s, I i, I j) {
  const I ys = i * s.stride_h - s.pad_h, xs = j * s.stride_w - s.pad_w;
  return {std::max<I>(ys, 0), std::min(ys + s.kernel_h, s.height), std::max<I>(xs, 0),
          std::min(xs + s.kernel_w, s.width)};
}

/// body(plane, o, window, i, j) for every output (i, j) of every plane,
/// o = its flat index in y; planes split over threads as for_planes.
template <class F>
void for_windows(const Pool2dShape& s, F&& body) {
  const I oh = s.out_h(), ow = s.out_w();
  for_planes(s, [&](I p) {
    for (I i = 0; i < oh; ++i)
      for (I j = 0; j < ow; ++j) body(p, (p * oh + i) * ow + j, window(s, i, j), i, j);
  });
}

/// The divisor of average pooling for a window (PyTorch's rule: with
/// count_include_pad the padded window clipped to the padded image).
I divisor(const Pool2dShape& s, I i, I j, bool include_pad) {
  if (!include_pad) {
    const Window w = window(s, i, j);
    return (w.y1 - w.y0) * (w.x1 - w.x0);
  }
  const I ys = i * s.stride_h - s.pad_h, xs = j * s.stride_w - s.pad_w;
  const I ye = std::min(ys + s.kernel_h, s.height + s.pad_h);
  const I xe = std::min(xs + s.kernel_w, s.width + s.pad_w);
  return (ye - ys) * (xe - xs);
}

void check_ptrs(const char* fn, const Pool2dShape& s, const void* out, const void* in) {
  pool2d_check_shape(fn, s);
  if (s.batch * s.channels == 0) return;
  detail::require_ptr(fn, "output", out);
  detail::require_ptr(fn, "input", in);
}

template <class T>
void max_forward(T* y, I* argmax, const T* x, const Pool2dShape& s) {
  check_ptrs("max_pool2d_forward", s, y, x);
  const I hw = s.height * s.width;
  for_windows(s, [&](I p, I o, const Window& w, I, I) {
    const T* xp = x + p * hw;
    T best = -std::numeric_limits<T>::infinity();
    I at = w.y0 * s.width + w.x0;
    for (I r = w.y0; r < w.y1; ++r) {
      for (I c = w.x0; c < w.x1; ++c) {
        const T v = xp[r * s.width + c];
        if (v > best || std::isnan(v)) {
          best = v;
          at = r * s.width + c;
          if (std::isnan(v)) r = w.y1 - 1, c = w.x1;  // NaN wins: stop
        }
      }
    }
    y[o] = best;
    if (argmax != nullptr) argmax[o] = at;
  });
}

template <class T>
void max_backward(T* dx, const T* gy, const I* argmax, const Pool2dShape& s) {
  constexpr const char* fn = "max_pool2d_backward";
  check_ptrs(fn, s, dx, gy);
  if (s.batch * s.channels > 0) detail::require_ptr(fn, "argmax", argmax);
  const I sl = s.out_h() * s.out_w(), hw = s.height * s.width;
  for_planes(s, [&](I p) {
    T* d = dx + p * hw;
    std::fill(d, d + hw, T(0));
    for (I o = 0; o < sl; ++o) {
      const I at = argmax[p * sl + o];
      if (at >= 0 && at < hw) d[at] += gy[p * sl + o];
    }
  });
}

template <class T>
void avg_forward(T* y, const T* x, const Pool2dShape& s, bool include_pad) {
  check_ptrs("avg_pool2d_forward", s, y, x);
  const I hw = s.height * s.width;
  for_windows(s, [&](I p, I o, const Window& w, I i, I j) {
    const T* xp = x + p * hw;
    T acc = 0;
    for (I r = w.y0; r < w.y1; ++r)
      for (I c = w.x0; c < w.x1; ++c) acc += xp[r * s.width + c];
    y[o] = acc / static_cast<T>(divisor(s, i, j, include_pad));
  });
}

/// Backward of avg pooling; each plane of dx is zeroed then written by the
/// thread that owns the plane (for_windows visits a plane's outputs in order
/// on one thread).
template <class T>
void avg_backward(T* dx, const T* gy, const Pool2dShape& s, bool include_pad) {
  check_ptrs("avg_pool2d_backward", s, dx, gy);
  const I hw = s.height * s.width, sl = s.out_h() * s.out_w();
  for_windows(s, [&](I p, I o, const Window& w, I i, I j) {
    T* d = dx + p * hw;
    if (o == p * sl) std::fill(d, d + hw, T(0));
    const T g = gy[o] / static_cast<T>(divisor(s, i, j, include_pad));
    for (I r = w.y0; r < w.y1; ++r)
      for (I c = w.x0; c < w.x1; ++c) d[r * s.width + c] += g;
  });
}

}  // namespace

void pool2d_check_shape(const char* fn, const Pool2dShape& s) {
  const std::pair<const char*, I> sizes[] = {{"batch", s.batch}, {"channels", s.channels},
                                             {"height", s.height}, {"width", s.width},
                                             {"pad_h", s.pad_h}, {"pad_w", s.pad_w}};
  for (const auto& [name, v] : sizes) detail::require_size(fn, name, v);
  const std::pair<const char*, I> positive[] = {{"kernel_h", s.kernel_h}, {"kernel_w", s.kernel_w},
                                                {"stride_h", s.stride_h}, {"stride_w", s.stride_w}};
  for (const auto& [name, v] : positive)
    if (v < 1) detail::fail(fn, std::string(name) + " must be >= 1, got " + std::to_string(v));
  if (2 * s.pad_h > s.kernel_h || 2 * s.pad_w > s.kernel_w)
    detail::fail(fn, "padding must be at most half the window");
  if (s.height + 2 * s.pad_h < s.kernel_h || s.width + 2 * s.pad_w < s.kernel_w)
    detail::fail(fn, "the window is larger than the padded input");
}

void max_pool2d_forward(float* y, std::int64_t* argmax, const float* x, const Pool2dShape& s) {
  max_forward(y, argmax, x, s);
}
void max_pool2d_forward(double* y, std::int64_t* argmax, const double* x, const Pool2dShape& s) {
  max_forward(y, argmax, x, s);
}
void max_pool2d_backward(float* dx, const float* grad_y, const std::int64_t* argmax,
                         const Pool2dShape& s) {
  max_backward(dx, grad_y, argmax, s);
}
void max_pool2d_backward(double* dx, const double* grad_y, const std::int64_t* argmax,
                         const Pool2dShape& s) {
  max_backward(dx, grad_y, argmax, s);
}
void avg_pool2d_forward(float* y, const float* x, const Pool2dShape& s, bool include_pad) {
  avg_forward(y, x, s, include_pad);
}
void avg_pool2d_forward(double* y, const double* x, const Pool2dShape& s, bool include_pad) {
  avg_forward(y, x, s, include_pad);
}
void avg_pool2d_backward(float* dx, const float* grad_y, const Pool2dShape& s, bool include_pad) {
  avg_backward(dx, grad_y, s, include_pad);
}
void avg_pool2d_backward(double* dx, const double* grad_y, const Pool2dShape& s,
                         bool include_pad) {
  avg_backward(dx, grad_y, s, include_pad);
}

}  // namespace matnet
