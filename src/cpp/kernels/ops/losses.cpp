// Losses with fused gradients (matnet/losses.hpp). Each is one pass over its
// input: the loss is accumulated in double (per thread, then summed in thread
// order, so a given thread count gives bit-identical results), the gradient is
// written in the same pass.
#include "matnet/losses.hpp"

#include <cmath>
#include <algorithm>

#include "core/checks.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

/// Runs body(begin, end) -> double over [0, n) split across threads when
/// `work` pays for it, and returns the sum of the partial results in part
/// order (so a given thread count gives bit-identical results).
template <class F>
double parallel_sum(std::int64_t n, std::int64_t work, std::int64_t align, F&& body) {
  const int nt = detail::threads_for(work);
  detail::WorkspaceScope scope;
  const int parts = detail::parts_for(n, nt);
  double* partial = scope.alloc<double>(static_cast<std::size_t>(parts));
  std::fill(partial, partial + parts, 0.0);
  detail::parallel_parts(n, nt, align, [&](int part, std::int64_t b, std::int64_t e) {
    partial[part] = body(b, e);
  });
  double total = 0.0;
  for (int p = 0; p < parts; ++p) total += partial[p];
  return total;
}

template <class T>
double cross_entropy_impl(T* grad, const T* logits, const std::int64_t* labels,
                          std::int64_t batch, std::int64_t classes, double smoothing) {
  constexpr const char* fn = "cross_entropy";
  detail::require_size(fn, "batch", batch);
  detail::require_size(fn, "classes", classes);
  if (batch == 0) detail::fail(fn, "the batch is empty; the mean over 0 rows is undefined");
  if (classes == 0) detail::fail(fn, "classes must be >= 1");
  if (!(smoothing >= 0.0 && smoothing <= 1.0))
    detail::fail(fn, "label_smoothing must be in [0, 1], got " + std::to_string(smoothing));
  detail::require_ptr(fn, "logits", logits);
  detail::require_ptr(fn, "labels", labels);
  for (std::int64_t r = 0; r < batch; ++r) {
    if (labels[r] < 0 || labels[r] >= classes) {
      detail::fail(fn, "label " + std::to_string(labels[r]) + " at row " + std::to_string(r) +
                           " is outside [0, " + std::to_string(classes) + ")");
    }
  }
  const auto& k = *detail::kernels<T>().eltwise;
  const double on = 1.0 - smoothing, off = smoothing / static_cast<double>(classes);
  const T inv_n = static_cast<T>(1.0 / static_cast<double>(batch));
  const double total = parallel_sum(batch, batch * classes, 1, [&](std::int64_t b, std::int64_t e) {
    double acc = 0.0;
    for (std::int64_t r = b; r < e; ++r) {
      const T* x = logits + r * classes;
      T* g = grad != nullptr ? grad + r * classes : nullptr;
      const std::int64_t label = labels[r];
      // The target term first: with grad == logits, exp_sum overwrites x.
      double target = on * static_cast<double>(x[label]);
      if (off != 0.0) {
        double sx = 0.0;
        for (std::int64_t c = 0; c < classes; ++c) sx += static_cast<double>(x[c]);
        target += off * sx;
      }
      const T m = k.max(x, classes);
      const double s = k.exp_sum(g, x, classes, m);
      const double lse = static_cast<double>(m) + std::log(s);
      acc += lse - target;
      if (g != nullptr) {
        const T scale = static_cast<T>(1.0 / s) * inv_n;
        const T shift = static_cast<T>(off) * inv_n;
        for (std::int64_t c = 0; c < classes; ++c) g[c] = g[c] * scale - shift;
        g[label] -= static_cast<T>(on) * inv_n;
      }
    }
    return acc;
  });
  return total / static_cast<double>(batch);
}

template <class T>
void check_elementwise(const char* fn, T* grad, const T* a, const T* b, std::int64_t n) {
  detail::require_size(fn, "n", n);
  if (n == 0) detail::fail(fn, "the input is empty; the mean over 0 elements is undefined");
  detail::require_ptr(fn, "input", a);
  detail::require_ptr(fn, "target", b);
  (void)grad;
}

template <class T>
double mse_impl(T* grad, const T* pred, const T* target, std::int64_t n) {
  check_elementwise("mse", grad, pred, target, n);
  const T scale = static_cast<T>(2.0 / static_cast<double>(n));
  const double total = parallel_sum(n, n, 64, [&](std::int64_t b, std::int64_t e) {
    double acc = 0.0;
    for (std::int64_t i = b; i < e; ++i) {
      const T d = pred[i] - target[i];
      acc += static_cast<double>(d) * static_cast<double>(d);
      if (grad != nullptr) grad[i] = scale * d;
    }
    return acc;
  });
  return total / static_cast<double>(n);
}

template <class T>
double bce_impl(T* grad, const T* logits, const T* targets, std::int64_t n) {
  check_elementwise("binary_cross_entropy", grad, logits, targets, n);
  const T inv_n = static_cast<T>(1.0 / static_cast<double>(n));
  const double total = parallel_sum(n, n, 64, [&](std::int64_t b, std::int64_t e) {
    double acc = 0.0;
    for (std::int64_t i = b; i < e; ++i) {
      const T x = logits[i], t = targets[i];
      // exp(-|x|) in (0, 1]: log1p never overflows; sigmoid from the same e.
      const T ex = std::exp(-std::fabs(x));
      acc += static_cast<double>(x > T(0) ? x : T(0)) - static_cast<double>(x) * t +
             std::log1p(static_cast<double>(ex));
      if (grad != nullptr) {
        const T r = T(1) / (T(1) + ex);
        const T s = x >= T(0) ? r : ex * r;
        grad[i] = (s - t) * inv_n;
      }
    }
    return acc;
  });
  return total / static_cast<double>(n);
}

}  // namespace

double cross_entropy(float* grad, const float* logits, const std::int64_t* labels,
                     std::int64_t batch, std::int64_t classes, double label_smoothing) {
  return cross_entropy_impl(grad, logits, labels, batch, classes, label_smoothing);
}
double cross_entropy(double* grad, const double* logits, const std::int64_t* labels,
                     std::int64_t batch, std::int64_t classes, double label_smoothing) {
  return cross_entropy_impl(grad, logits, labels, batch, classes, label_smoothing);
}
double mse(float* grad, const float* pred, const float* target, std::int64_t n) {
  return mse_impl(grad, pred, target, n);
}
double mse(double* grad, const double* pred, const double* target, std::int64_t n) {
  return mse_impl(grad, pred, target, n);
}
double binary_cross_entropy(float* grad, const float* logits, const float* targets,
                            std::int64_t n) {
  return bce_impl(grad, logits, targets, n);
}
double binary_cross_entropy(double* grad, const double* logits, const double* targets,
                            std::int64_t n) {
  return bce_impl(grad, logits, targets, n);
}

}  // namespace matnet
