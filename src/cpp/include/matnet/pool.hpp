// matnet/pool.hpp - 2-D max and average pooling, forward and backward.
//
// Dimension letters: N = batch, C = channels, H x W input, KH x KW window,
// OH x OW output. Arrays are contiguous NCHW (each of the N*C planes pools
// on its own):
//   x  (N, C, H, W)   input          y  (N, C, OH, OW)   output
//   OH = (H + 2*pad_h - KH) / stride_h + 1 (floor, as PyTorch), likewise OW.
// Padding is implicit: -inf for max pooling, zeros counted in the divisor for
// average pooling when count_include_pad (PyTorch's default), else excluded.
// pad_h <= KH / 2 and pad_w <= KW / 2 (PyTorch's rule: every window then
// holds at least one real element).
// Gradients are OVERWRITTEN. Errors: matnet::invalid_argument. Threads: the
// planes are split over up to get_num_threads() threads.
#pragma once

#include <cstdint>

#include "matnet/export.hpp"

namespace matnet {

struct Pool2dShape {
  std::int64_t batch = 0, channels = 0, height = 0, width = 0;
  std::int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  std::int64_t out_h() const { return (height + 2 * pad_h - kernel_h) / stride_h + 1; }
  std::int64_t out_w() const { return (width + 2 * pad_w - kernel_w) / stride_w + 1; }
};

/// Throws matnet::invalid_argument (naming fn) unless s is valid with a non-empty output.
MATNET_API void pool2d_check_shape(const char* fn, const Pool2dShape& s);

/// y = max over each window; argmax (N, C, OH, OW) receives the index
/// (row * W + col, within the input plane) of the maximum, for backward
/// (NaN wins, so NaN propagates as in PyTorch). argmax may be null.
MATNET_API void max_pool2d_forward(float* y, std::int64_t* argmax, const float* x,
                                   const Pool2dShape& s);
MATNET_API void max_pool2d_forward(double* y, std::int64_t* argmax, const double* x,
                                   const Pool2dShape& s);
/// dx (N, C, H, W) = grad_y routed to the argmax positions (summed where windows overlap).
MATNET_API void max_pool2d_backward(float* dx, const float* grad_y, const std::int64_t* argmax,
                                    const Pool2dShape& s);
MATNET_API void max_pool2d_backward(double* dx, const double* grad_y,
                                    const std::int64_t* argmax, const Pool2dShape& s);

/// y = mean over each window.
MATNET_API void avg_pool2d_forward(float* y, const float* x, const Pool2dShape& s,
                                   bool count_include_pad = true);
MATNET_API void avg_pool2d_forward(double* y, const double* x, const Pool2dShape& s,
                                   bool count_include_pad = true);
/// dx (N, C, H, W): each grad_y element spread evenly over its window.
MATNET_API void avg_pool2d_backward(float* dx, const float* grad_y, const Pool2dShape& s,
                                    bool count_include_pad = true);
MATNET_API void avg_pool2d_backward(double* dx, const double* grad_y, const Pool2dShape& s,
                                    bool count_include_pad = true);

}  // namespace matnet
