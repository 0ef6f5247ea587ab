// matnet/norm.hpp - batch normalization, forward (training and evaluation) and backward.
//
// Dimension letters: N = batch, C = channels (features), S = spatial size
// (H*W for 2-D inputs, 1 for (N, C) features). x and y are contiguous
// (N, C, S); per-channel vectors are (C,). For channel c, over the N*S values:
//   training:   mean, var = mean and biased variance of the batch,
//               invstd = 1 / sqrt(var + eps),
//               y = (x - mean) * invstd * gamma + beta,
//               running_mean = (1 - momentum) * running_mean + momentum * mean,
//               running_var  = (1 - momentum) * running_var
//                              + momentum * var * M / (M - 1)   (unbiased, M = N*S),
//               exactly as PyTorch's BatchNorm1d/2d. M == 1 is an error
//               (PyTorch: "Expected more than 1 value per channel").
//   evaluation: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
// gamma and beta may be null (affine = False: 1 and 0). Statistics are
// accumulated in double. Gradients are OVERWRITTEN. Errors:
// matnet::invalid_argument. Threads: channels split over get_num_threads().
#pragma once

#include <cstdint>

#include "matnet/export.hpp"

namespace matnet {

/// Training forward. mean and invstd (C,) receive the batch statistics that
/// backward needs; running_mean/running_var (C,) are updated in place (both
/// null to skip).
MATNET_API void batchnorm_forward_train(float* y, float* mean, float* invstd,
                                        float* running_mean, float* running_var, const float* x,
                                        const float* gamma, const float* beta, std::int64_t n,
                                        std::int64_t c, std::int64_t spatial, float momentum,
                                        float eps);
MATNET_API void batchnorm_forward_train(double* y, double* mean, double* invstd,
                                        double* running_mean, double* running_var,
                                        const double* x, const double* gamma, const double* beta,
                                        std::int64_t n, std::int64_t c, std::int64_t spatial,
                                        double momentum, double eps);

/// Evaluation forward with the running statistics.
MATNET_API void batchnorm_forward_eval(float* y, const float* x, const float* gamma,
                                       const float* beta, const float* running_mean,
                                       const float* running_var, std::int64_t n, std::int64_t c,
                                       std::int64_t spatial, float eps);
MATNET_API void batchnorm_forward_eval(double* y, const double* x, const double* gamma,
                                       const double* beta, const double* running_mean,
                                       const double* running_var, std::int64_t n, std::int64_t c,
                                       std::int64_t spatial, double eps);

/// Backward from grad_y (N, C, S) given the statistics the forward used
/// (mean, invstd (C,)). batch_stats = true for a training forward (the
/// statistics depend on x):
///   dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat));
/// false for an evaluation forward (constant statistics): dx = dy * gamma * invstd.
/// dgamma = sum(dy * xhat), dbeta = sum(dy); dx, dgamma, dbeta may each be null.
MATNET_API void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* grad_y,
                                   const float* x, const float* gamma, const float* mean,
                                   const float* invstd, std::int64_t n, std::int64_t c,
                                   std::int64_t spatial, bool batch_stats);
MATNET_API void batchnorm_backward(double* dx, double* dgamma, double* dbeta,
                                   const double* grad_y, const double* x, const double* gamma,
                                   const double* mean, const double* invstd, std::int64_t n,
                                   std::int64_t c, std::int64_t spatial, bool batch_stats);

}  // namespace matnet
