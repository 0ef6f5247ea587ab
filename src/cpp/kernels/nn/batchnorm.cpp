// Batch normalization over (N, C, S) arrays (matnet/norm.hpp).
//
// Legend: N batch, C channels, S spatial size, M = N*S values per channel.
// Channel c's values are N runs of S contiguous elements (NCHW), so the
// channels are split over threads and each runs its own two passes (mean,
// then the centred sum of squares: stable where E[x^2] - E[x]^2 is not),
// accumulated in double. Backward needs sum(dy) and sum(dy * xhat) per
// channel, then one elementwise pass.
#include "matnet/norm.hpp"

#include <cmath>
#include <string>

#include "core/checks.hpp"
#include "core/parallel.hpp"

namespace matnet {

namespace {

using I = std::int64_t;

void check_dims(const char* fn, I n, I c, I spatial) {
  detail::require_size(fn, "n", n);
  detail::require_size(fn, "c", c);
  detail::require_size(fn, "spatial", spatial);
}

/// body(ch) for each channel, split over threads when there is enough data.
template <class F>
void for_channels(I n, I c, I spatial, F&& body) {
  detail::parallel_split(c, detail::threads_for(n * c * spatial), 1, [&](I b, I e) {
    for (I ch = b; ch < e; ++ch) body(ch);
  });
}

/// y = (x - mean) * scale + shift on channel ch.
template <class T>
void affine_channel(T* y, const T* x, I n, I c, I spatial, I ch, T mean, T scale, T shift) {
  for (I i = 0; i < n; ++i) {
    const T* xs = x + (i * c + ch) * spatial;
    T* ys = y + (i * c + ch) * spatial;
    for (I t = 0; t < spatial; ++t) ys[t] = (xs[t] - mean) * scale + shift;
  }
}

template <class T>
void forward_train(T* y, T* mean, T* invstd, T* rmean, T* rvar, const T* x, const T* gamma,
                   const T* beta, I n, I c, I spatial, T momentum, T eps) {
  constexpr const char* fn = "batchnorm_forward_train";
  check_dims(fn, n, c, spatial);
  const I m = n * spatial;
  if (c == 0) return;
  if (m <= 1)
    detail::fail(fn, "expected more than 1 value per channel in training (got batch " +
                         std::to_string(n) + " x spatial " + std::to_string(spatial) + ")");
  for (auto [p, name] : {std::pair<const void*, const char*>{y, "y"}, {mean, "mean"},
                         {invstd, "invstd"}, {x, "x"}})
    detail::require_ptr(fn, name, p);
  if ((rmean == nullptr) != (rvar == nullptr))
    detail::fail(fn, "running_mean and running_var must both be given or both be null");
  for_channels(n, c, spatial, [&](I ch) {
    double sum = 0;
    for (I i = 0; i < n; ++i) {
      const T* xs = x + (i * c + ch) * spatial;
      for (I t = 0; t < spatial; ++t) sum += xs[t];
    }
    const double mu = sum / static_cast<double>(m);
    double sq = 0;
    for (I i = 0; i < n; ++i) {
      const T* xs = x + (i * c + ch) * spatial;
      for (I t = 0; t < spatial; ++t) {
        const double d = xs[t] - mu;
        sq += d * d;
      }
    }
    const double var = sq / static_cast<double>(m);
    const double is = 1.0 / std::sqrt(var + static_cast<double>(eps));
    mean[ch] = static_cast<T>(mu);
    invstd[ch] = static_cast<T>(is);
    if (rmean != nullptr) {
      const double mom = momentum;
      rmean[ch] = static_cast<T>((1.0 - mom) * rmean[ch] + mom * mu);
      rvar[ch] = static_cast<T>((1.0 - mom) * rvar[ch] +
                                mom * var * static_cast<double>(m) / static_cast<double>(m - 1));
    }
    const double g = gamma != nullptr ? gamma[ch] : 1.0;
    affine_channel<T>(y, x, n, c, spatial, ch, static_cast<T>(mu), static_cast<T>(is * g),
                      beta != nullptr ? beta[ch] : T(0));
  });
}

template <class T>
void forward_eval(T* y, const T* x, const T* gamma, const T* beta, const T* rmean,
                  const T* rvar, I n, I c, I spatial, T eps) {
  constexpr const char* fn = "batchnorm_forward_eval";
  check_dims(fn, n, c, spatial);
  if (n * c * spatial == 0) return;
  for (auto [p, name] : {std::pair<const void*, const char*>{y, "y"}, {x, "x"},
                         {rmean, "running_mean"}, {rvar, "running_var"}})
    detail::require_ptr(fn, name, p);
  for_channels(n, c, spatial, [&](I ch) {
    const double is = 1.0 / std::sqrt(static_cast<double>(rvar[ch]) + static_cast<double>(eps));
    const double g = gamma != nullptr ? gamma[ch] : 1.0;
    affine_channel<T>(y, x, n, c, spatial, ch, rmean[ch], static_cast<T>(is * g),
                      beta != nullptr ? beta[ch] : T(0));
  });
}

template <class T>
void backward(T* dx, T* dgamma, T* dbeta, const T* gy, const T* x, const T* gamma,
              const T* mean, const T* invstd, I n, I c, I spatial, bool batch_stats) {
  constexpr const char* fn = "batchnorm_backward";
  check_dims(fn, n, c, spatial);
  if (c == 0) return;
  for (auto [p, name] : {std::pair<const void*, const char*>{mean, "mean"}, {invstd, "invstd"}})
    detail::require_ptr(fn, name, p);
  if (n * spatial > 0) {
    detail::require_ptr(fn, "grad_y", gy);
    detail::require_ptr(fn, "x", x);
  }
  const I m = n * spatial;
  for_channels(n, c, spatial, [&](I ch) {
    const double mu = mean[ch], is = invstd[ch];
    double sdy = 0, sdyx = 0;
    for (I i = 0; i < n; ++i) {
      const T* xs = x + (i * c + ch) * spatial;
      const T* gs = gy + (i * c + ch) * spatial;
      for (I t = 0; t < spatial; ++t) {
        sdy += gs[t];
        sdyx += gs[t] * (xs[t] - mu);
      }
    }
    sdyx *= is;  // sum(dy * xhat)
    if (dgamma != nullptr) dgamma[ch] = static_cast<T>(sdyx);
    if (dbeta != nullptr) dbeta[ch] = static_cast<T>(sdy);
    if (dx == nullptr) return;
    const double g = gamma != nullptr ? gamma[ch] : 1.0;
    const double k = g * is;
    // dx = k * (dy - mean(dy) - xhat * mean(dy * xhat))  (batch statistics)
    const double a = batch_stats ? sdy / static_cast<double>(m) : 0.0;
    const double bq = batch_stats ? sdyx / static_cast<double>(m) * is : 0.0;
    for (I i = 0; i < n; ++i) {
      const T* xs = x + (i * c + ch) * spatial;
      const T* gs = gy + (i * c + ch) * spatial;
      T* ds = dx + (i * c + ch) * spatial;
      for (I t = 0; t < spatial; ++t)
        ds[t] = static_cast<T>(k * (gs[t] - a - (xs[t] - mu) * bq));
    }
  });
}

}  // namespace

void batchnorm_forward_train(float* y, float* mean, float* invstd, float* running_mean,
                             float* running_var, const float* x, const float* gamma,
                             const float* beta, std::int64_t n, std::int64_t c,
                             std::int64_t spatial, float momentum, float eps) {
  forward_train(y, mean, invstd, running_mean, running_var, x, gamma, beta, n, c, spatial,
                momentum, eps);
}
void batchnorm_forward_train(double* y, double* mean, double* invstd, double* running_mean,
                             double* running_var, const double* x, const double* gamma,
                             const double* beta, std::int64_t n, std::int64_t c,
                             std::int64_t spatial, double momentum, double eps) {
  forward_train(y, mean, invstd, running_mean, running_var, x, gamma, beta, n, c, spatial,
                momentum, eps);
}
void batchnorm_forward_eval(float* y, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, std::int64_t n,
                            std::int64_t c, std::int64_t spatial, float eps) {
  forward_eval(y, x, gamma, beta, running_mean, running_var, n, c, spatial, eps);
}
void batchnorm_forward_eval(double* y, const double* x, const double* gamma, const double* beta,
                            const double* running_mean, const double* running_var,
                            std::int64_t n, std::int64_t c, std::int64_t spatial, double eps) {
  forward_eval(y, x, gamma, beta, running_mean, running_var, n, c, spatial, eps);
}
void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* grad_y,
                        const float* x, const float* gamma, const float* mean,
                        const float* invstd, std::int64_t n, std::int64_t c, std::int64_t spatial,
                        bool batch_stats) {
  backward(dx, dgamma, dbeta, grad_y, x, gamma, mean, invstd, n, c, spatial, batch_stats);
}
void batchnorm_backward(double* dx, double* dgamma, double* dbeta, const double* grad_y,
                        const double* x, const double* gamma, const double* mean,
                        const double* invstd, std::int64_t n, std::int64_t c,
                        std::int64_t spatial, bool batch_stats) {
  backward(dx, dgamma, dbeta, grad_y, x, gamma, mean, invstd, n, c, spatial, batch_stats);
}

}  // namespace matnet
