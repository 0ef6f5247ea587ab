// matnet/optim.hpp - optimizer updates: one in-place pass over a parameter and its state.
//
// The formulas are those of torch.optim (single-tensor implementation), in the
// same order, so results match PyTorch step for step up to rounding:
// arithmetic is done in T with the hyper-parameters rounded to T.
//
// All arrays hold n contiguous elements. param and the state arrays are
// updated in place; grad is only read. No array may overlap another.
// Errors: negative n, null pointers for arrays the options need, and invalid
// hyper-parameters (lr < 0, momentum < 0, eps < 0, betas outside [0, 1),
// step < 1, nesterov without momentum or with dampening) throw
// matnet::invalid_argument (derived from std::invalid_argument; see
// activations.hpp); nothing is written when the call throws. Threads: large
// arrays are split over up to get_num_threads() OpenMP threads.
#pragma once

#include <cstdint>

#include "matnet/activations.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// torch.optim.SGD:
///   g = grad + weight_decay * param
///   if momentum != 0:
///     buf = g                                    on the first step
///     buf = momentum * buf + (1 - dampening) * g otherwise
///     g = nesterov ? g + momentum * buf : buf
///   param -= lr * g
struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

/// velocity: the momentum buffer (n,), may be null when momentum == 0.
/// first_step: true on the first update (the buffer is then set to g, its
/// previous contents are not read).
MATNET_API void sgd_update(float* param, float* velocity, const float* grad, std::int64_t n,
                           const SgdOptions& opt, bool first_step);
MATNET_API void sgd_update(double* param, double* velocity, const double* grad, std::int64_t n,
                           const SgdOptions& opt, bool first_step);

/// torch.optim.Adam (decoupled = false) and torch.optim.AdamW (decoupled = true):
///   if weight_decay != 0: decoupled ? param *= 1 - lr * weight_decay
///                                   : g = grad + weight_decay * param
///   m += (1 - beta1) * (g - m)
///   v = beta2 * v + (1 - beta2) * g * g
///   param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled = false;
};

/// m, v: first and second moment estimates (n,), zero before the first step.
/// step: the 1-based number of this update (bias correction).
MATNET_API void adam_update(float* param, float* m, float* v, const float* grad, std::int64_t n,
                            std::int64_t step, const AdamOptions& opt);
MATNET_API void adam_update(double* param, double* m, double* v, const double* grad,
                            std::int64_t n, std::int64_t step, const AdamOptions& opt);

/// torch.optim.RMSprop:
///   g = grad + weight_decay * param
///   sq = alpha * sq + (1 - alpha) * g * g
///   centered: ga += (1 - alpha) * (g - ga);  avg = sqrt(sq - ga * ga) + eps
///   else:     avg = sqrt(sq) + eps
///   momentum > 0: buf = momentum * buf + g / avg;  param -= lr * buf
///   else:         param -= lr * g / avg
struct RmspropOptions {
  double lr = 0.01;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};

/// square_avg: (n,), zero before the first step. momentum_buffer: (n,),
/// required when momentum > 0 (zero before the first step), else may be null.
/// grad_avg: (n,), required when centered (zero before the first step), else
/// may be null.
MATNET_API void rmsprop_update(float* param, float* square_avg, float* momentum_buffer,
                               float* grad_avg, const float* grad, std::int64_t n,
                               const RmspropOptions& opt);
MATNET_API void rmsprop_update(double* param, double* square_avg, double* momentum_buffer,
                               double* grad_avg, const double* grad, std::int64_t n,
                               const RmspropOptions& opt);

}  // namespace matnet
