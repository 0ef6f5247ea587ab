// matnet/losses.hpp - losses with their gradient, computed in one pass.
//
// Reduction is 'mean' as in torch.nn and Keras: cross-entropy is averaged over
// the batch; MSE and binary cross-entropy over all elements. Each function
// returns the loss (accumulated in double) and, when `grad` is not null,
// WRITES d loss / d input into it (same shape as the input; grad may equal the
// input pointer for in-place use, no other overlap).
//
// Errors: negative sizes, an empty input (the mean over zero elements is
// undefined), null pointers, and labels outside [0, classes) throw
// matnet::invalid_argument (derived from std::invalid_argument); the gradient
// is not written when the call throws. Threads: single pass, threaded over
// rows/elements when large; concurrent calls on distinct outputs are safe.
#pragma once

#include <cstdint>

#include "matnet/activations.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// Softmax cross-entropy from logits (batch, classes), row-major, integer
/// labels (batch,) in [0, classes). With label smoothing s in [0, 1] the
/// target distribution is q = (1 - s) * onehot(label) + s / classes (as
/// torch.nn.CrossEntropyLoss). Numerically stable for huge logits:
///   loss = mean_r [ logsumexp(x_r) - sum_c q_rc x_rc ]
///   grad = (softmax(x_r) - q_r) / batch
MATNET_API double cross_entropy(float* grad, const float* logits, const std::int64_t* labels,
                                std::int64_t batch, std::int64_t classes,
                                double label_smoothing = 0.0);
MATNET_API double cross_entropy(double* grad, const double* logits, const std::int64_t* labels,
                                std::int64_t batch, std::int64_t classes,
                                double label_smoothing = 0.0);

/// Mean squared error over n elements: loss = mean((pred - target)^2),
/// grad = 2 (pred - target) / n.
MATNET_API double mse(float* grad, const float* pred, const float* target, std::int64_t n);
MATNET_API double mse(double* grad, const double* pred, const double* target, std::int64_t n);

/// Binary cross-entropy with logits over n elements, targets in [0, 1]:
///   loss = mean(max(x, 0) - x t + log1p(exp(-|x|)))   (stable for any x)
///   grad = (sigmoid(x) - t) / n
MATNET_API double binary_cross_entropy(float* grad, const float* logits, const float* targets,
                                       std::int64_t n);
MATNET_API double binary_cross_entropy(double* grad, const double* logits,
                                       const double* targets, std::int64_t n);

}  // namespace matnet
