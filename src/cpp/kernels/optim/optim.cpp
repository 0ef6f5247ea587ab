// Optimizer updates (matnet/optim.hpp): one in-place pass over a parameter
// and its state, in the order of operations of torch.optim's single-tensor
// code, in T with the hyper-parameters rounded to T (so float32 results match
// PyTorch's float32 results up to the last bits).
#include "matnet/optim.hpp"

#include <cmath>
#include <string>

#include "ops/common.hpp"

namespace matnet {

namespace {

void require_param(const char* fn, const char* name, double v, bool ok) {
  if (!ok) detail::fail(fn, std::string("invalid ") + name + "=" + std::to_string(v));
}

template <class T>
void sgd_impl(T* p, T* buf, const T* g, std::int64_t n, const SgdOptions& o, bool first) {
  constexpr const char* fn = "sgd_update";
  detail::require_size(fn, "n", n);
  require_param(fn, "lr", o.lr, o.lr >= 0.0);
  require_param(fn, "momentum", o.momentum, o.momentum >= 0.0);
  require_param(fn, "dampening", o.dampening, std::isfinite(o.dampening));
  require_param(fn, "weight_decay", o.weight_decay, o.weight_decay >= 0.0);
  if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0))
    detail::fail(fn, "nesterov momentum requires momentum > 0 and dampening == 0");
  if (n == 0) return;
  detail::require_ptr(fn, "param", p);
  detail::require_ptr(fn, "grad", g);
  const bool use_mom = o.momentum != 0.0;
  if (use_mom) detail::require_ptr(fn, "velocity", buf);
  const T lr = static_cast<T>(o.lr), wd = static_cast<T>(o.weight_decay);
  const T mom = static_cast<T>(o.momentum), damp = static_cast<T>(1.0 - o.dampening);
  const bool nesterov = o.nesterov;
  detail::parallel_ranges(n, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      T d = g[i];
      if (wd != T(0)) d = d + wd * p[i];
      if (use_mom) {
        const T v = first ? d : mom * buf[i] + damp * d;
        buf[i] = v;
        d = nesterov ? d + mom * v : v;
      }
      p[i] = p[i] - lr * d;
    }
  });
}

template <class T>
void adam_impl(T* p, T* m, T* v, const T* g, std::int64_t n, std::int64_t step,
               const AdamOptions& o) {
  constexpr const char* fn = "adam_update";
  detail::require_size(fn, "n", n);
  if (step < 1) detail::fail(fn, "step must be >= 1 (1-based), got " + std::to_string(step));
  require_param(fn, "lr", o.lr, o.lr >= 0.0);
  require_param(fn, "beta1", o.beta1, o.beta1 >= 0.0 && o.beta1 < 1.0);
  require_param(fn, "beta2", o.beta2, o.beta2 >= 0.0 && o.beta2 < 1.0);
  require_param(fn, "eps", o.eps, o.eps >= 0.0);
  require_param(fn, "weight_decay", o.weight_decay, o.weight_decay >= 0.0);
  if (n == 0) return;
  detail::require_ptr(fn, "param", p);
  detail::require_ptr(fn, "grad", g);
  detail::require_ptr(fn, "m", m);
  detail::require_ptr(fn, "v", v);
  // Scalars as torch computes them (Python floats, i.e. double), then to T.
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(o.lr / bc1);
  const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  const T one_m_b1 = static_cast<T>(1.0 - o.beta1);
  const T b2 = static_cast<T>(o.beta2), one_m_b2 = static_cast<T>(1.0 - o.beta2);
  const T eps = static_cast<T>(o.eps), wd = static_cast<T>(o.weight_decay);
  const T decay = static_cast<T>(1.0 - o.lr * o.weight_decay);
  const bool decoupled = o.decoupled;
  detail::parallel_ranges(n, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      T pi = p[i];
      T gi = g[i];
      if (wd != T(0)) {
        if (decoupled) pi = pi * decay;
        else gi = gi + wd * pi;
      }
      const T mi = m[i] + (gi - m[i]) * one_m_b1;
      const T vi = v[i] * b2 + one_m_b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const T denom = std::sqrt(vi) / bc2_sqrt + eps;
      p[i] = pi - step_size * (mi / denom);
    }
  });
}

template <class T>
void rmsprop_impl(T* p, T* sq, T* buf, T* ga, const T* g, std::int64_t n,
                  const RmspropOptions& o) {
  constexpr const char* fn = "rmsprop_update";
  detail::require_size(fn, "n", n);
  require_param(fn, "lr", o.lr, o.lr >= 0.0);
  require_param(fn, "alpha", o.alpha, o.alpha >= 0.0 && o.alpha <= 1.0);
  require_param(fn, "eps", o.eps, o.eps >= 0.0);
  require_param(fn, "weight_decay", o.weight_decay, o.weight_decay >= 0.0);
  require_param(fn, "momentum", o.momentum, o.momentum >= 0.0);
  if (n == 0) return;
  detail::require_ptr(fn, "param", p);
  detail::require_ptr(fn, "grad", g);
  detail::require_ptr(fn, "square_avg", sq);
  const bool use_mom = o.momentum > 0.0, centered = o.centered;
  if (use_mom) detail::require_ptr(fn, "momentum_buffer", buf);
  if (centered) detail::require_ptr(fn, "grad_avg", ga);
  const T lr = static_cast<T>(o.lr), alpha = static_cast<T>(o.alpha);
  const T one_m_alpha = static_cast<T>(1.0 - o.alpha), eps = static_cast<T>(o.eps);
  const T wd = static_cast<T>(o.weight_decay), mom = static_cast<T>(o.momentum);
  detail::parallel_ranges(n, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      T gi = g[i];
      if (wd != T(0)) gi = gi + wd * p[i];
      const T s = sq[i] * alpha + one_m_alpha * gi * gi;
      sq[i] = s;
      T avg;
      if (centered) {
        const T a = ga[i] + (gi - ga[i]) * one_m_alpha;
        ga[i] = a;
        avg = std::sqrt(s - a * a) + eps;
      } else {
        avg = std::sqrt(s) + eps;
      }
      if (use_mom) {
        const T bi = buf[i] * mom + gi / avg;
        buf[i] = bi;
        p[i] = p[i] - lr * bi;
      } else {
        p[i] = p[i] - lr * (gi / avg);
      }
    }
  });
}

}  // namespace

void sgd_update(float* param, float* velocity, const float* grad, std::int64_t n,
                const SgdOptions& opt, bool first_step) {
  sgd_impl(param, velocity, grad, n, opt, first_step);
}
void sgd_update(double* param, double* velocity, const double* grad, std::int64_t n,
                const SgdOptions& opt, bool first_step) {
  sgd_impl(param, velocity, grad, n, opt, first_step);
}
void adam_update(float* param, float* m, float* v, const float* grad, std::int64_t n,
                 std::int64_t step, const AdamOptions& opt) {
  adam_impl(param, m, v, grad, n, step, opt);
}
void adam_update(double* param, double* m, double* v, const double* grad, std::int64_t n,
                 std::int64_t step, const AdamOptions& opt) {
  adam_impl(param, m, v, grad, n, step, opt);
}
void rmsprop_update(float* param, float* square_avg, float* momentum_buffer, float* grad_avg,
                    const float* grad, std::int64_t n, const RmspropOptions& opt) {
  rmsprop_impl(param, square_avg, momentum_buffer, grad_avg, grad, n, opt);
}
void rmsprop_update(double* param, double* square_avg, double* momentum_buffer,
                    double* grad_avg, const double* grad, std::int64_t n,
                    const RmspropOptions& opt) {
  rmsprop_impl(param, square_avg, momentum_buffer, grad_avg, grad, n, opt);
}

}  // namespace matnet
