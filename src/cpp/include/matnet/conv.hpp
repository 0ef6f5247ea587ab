// matnet/conv.hpp - 2-D convolution (cross-correlation, as PyTorch), forward and backward.
//
// Dimension letters: N = batch, C = in-channels, H x W = input size,
// F = out-channels (filters), KH x KW = kernel, OH x OW = output size,
// G = groups (C and F both divisible by G; C/G = Cg, F/G = Fg).
// All arrays are contiguous, row-major, NCHW like PyTorch:
//   x  (N, C, H, W)        input
//   w  (F, Cg, KH, KW)     weights (PyTorch's layout)
//   b  (F,)                bias, may be null
//   z  (N, F, OH, OW)      pre-activation, kept for backward
//   y  (N, F, OH, OW)      output, y = act(z)
//   z[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] *
//                   x[n, g*Cg + c, i*sh - pad_top + p*dh, j*sw - pad_left + q*dw]
//   with g = f / Fg and x read as 0 outside the image (zero padding).
//   OH = (H + pad_top + pad_bottom - dh*(KH-1) - 1) / sh + 1 (likewise OW).
//
// Gradients are OVERWRITTEN, never accumulated. Errors (matnet::invalid_argument):
// negative sizes, groups not dividing C and F, strides or dilations < 1,
// negative padding, an empty output, null pointers where data is needed.
// Threads: up to get_num_threads() OpenMP threads; concurrent calls on
// distinct outputs are safe. Scratch comes from the per-thread workspace.
#pragma once

#include <cstdint>

#include "matnet/activations.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// The geometry of one convolution.
struct Conv2dShape {
  std::int64_t batch = 0, in_channels = 0, height = 0, width = 0;
  std::int64_t out_channels = 0, kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t groups = 1;

  std::int64_t out_h() const {
    return (height + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
  }
  std::int64_t out_w() const {
    return (width + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
  }
};

/// Throws matnet::invalid_argument (naming fn) unless s is a valid geometry
/// with a non-empty output.
MATNET_API void conv2d_check_shape(const char* fn, const Conv2dShape& s);

/// z = conv(x, w) + b and y = act(z), bias and activation applied to each
/// output tile while it is in cache. z may be null (not kept) or equal to y
/// when act is identity; otherwise it must not overlap y.
MATNET_API void conv2d_forward(float* y, float* z, const float* x, const float* w,
                               const float* b, const Conv2dShape& s, Activation act,
                               float negative_slope = 0.01f);
MATNET_API void conv2d_forward(double* y, double* z, const double* x, const double* w,
                               const double* b, const Conv2dShape& s, Activation act,
                               double negative_slope = 0.01);

/// Backward of conv2d_forward from grad_y = dL/dy (N, F, OH, OW):
///   dZ = grad_y * act'(z);  db = sum of dZ over n, i, j;
///   dw = sum_n dZ[n] . im2col(x[n])^T;   dx = col2im(w^T . dZ).
///   dx: (N, C, H, W) or null to skip it.  dw: (F, Cg, KH, KW), required.
///   db: (F,) or null.  z: may be null when act is identity.
/// Outputs must not overlap each other or the inputs.
MATNET_API void conv2d_backward(float* dx, float* dw, float* db, const float* grad_y,
                                const float* x, const float* w, const float* z,
                                const Conv2dShape& s, Activation act,
                                float negative_slope = 0.01f);
MATNET_API void conv2d_backward(double* dx, double* dw, double* db, const double* grad_y,
                                const double* x, const double* w, const double* z,
                                const Conv2dShape& s, Activation act,
                                double negative_slope = 0.01);

}  // namespace matnet
