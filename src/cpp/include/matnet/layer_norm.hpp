// matnet/layer_norm.hpp - layer normalization over the last dimension,
// forward and backward (as torch.nn.functional.layer_norm with
// normalized_shape = (C,)).
//
// Dimension letters: N rows (every leading dimension flattened), C the
// normalized (last) dimension. Contiguous, row-major:
//   x, y, grad_y, dx  (N, C)
//   weight, bias      (C,)   may be null: weight 1, bias 0
//   mean, rstd        (N,)   per-row statistics saved for backward
//
//   mean = sum_c x / C,  var = sum_c (x - mean)^2 / C  (biased, as PyTorch)
//   rstd = 1 / sqrt(var + eps),  xhat = (x - mean) * rstd
//   y = xhat * weight + bias
// Backward, g = grad_y * weight:
//   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//   dweight = sum_n grad_y * xhat,  dbias = sum_n grad_y
//
// Gradients are OVERWRITTEN. Sums are accumulated in double. Errors:
// matnet::invalid_argument for negative sizes, eps < 0 or NaN, or null
// pointers where data is read or written. Threads: rows are split over up to
// get_num_threads() OpenMP threads when the array is large; dweight and
// dbias are summed per thread and added in a fixed order (the same bits for
// a given thread count).
#pragma once

#include <cstdint>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// y = layer_norm(x) * weight + bias; mean and rstd (each may be null)
/// receive the per-row statistics. y may equal x (in place).
MATNET_API void layer_norm_forward(float* y, float* mean, float* rstd, const float* x,
                                   const float* weight, const float* bias, std::int64_t rows,
                                   std::int64_t cols, float eps);
MATNET_API void layer_norm_forward(double* y, double* mean, double* rstd, const double* x,
                                   const double* weight, const double* bias, std::int64_t rows,
                                   std::int64_t cols, double eps);

/// dx (required), dweight and dbias (each may be null: not computed) from
/// grad_y, the forward input x, weight (null: 1) and the forward's mean and
/// rstd. dx may equal grad_y.
MATNET_API void layer_norm_backward(float* dx, float* dweight, float* dbias, const float* grad_y,
                                    const float* x, const float* weight, const float* mean,
                                    const float* rstd, std::int64_t rows, std::int64_t cols);
MATNET_API void layer_norm_backward(double* dx, double* dweight, double* dbias,
                                    const double* grad_y, const double* x, const double* weight,
                                    const double* mean, const double* rstd, std::int64_t rows,
                                    std::int64_t cols);

}  // namespace matnet
