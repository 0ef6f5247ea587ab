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

/// Bytes moved by an update pass (elements x arrays read or written x size)
/// from which it is split over threads. Measured on Zen 3, 2 threads, float32,
/// medians of 4 interleaved runs: with a 1 MiB threshold vs this 128 KiB one,
/// Adam at n = 8192 / 32768 / 65536 ran 16.0 / 46.8 / 64.6 us vs 10.6 / 29.7 /
/// 49.2 us (Adam's sqrt and divide make it partly compute-bound), SGD with
/// momentum at n = 8192 (128 KiB) 7.6 vs 7.4 us, i.e. break-even there.
constexpr std::int64_t kOptimParallelMinBytes = std::int64_t{1} << 17;

// The update loops. Each is a free function over one range [b, e) with the
// hyper-parameters passed by value, the arrays __restrict__ (the API forbids
// overlap) and the option branches lifted into template flags, so that the
// compiler vectorises the loop body: a lambda that captures the settings by
// reference and tests them per element did not vectorise, and ran 5-8x
// slower. Only IEEE add/mul/div/sqrt are used, element by element in
// torch's order: the vector code gives the scalar code's bits.

template <class T, bool kWd, bool kMom, bool kNesterov, bool kFirst>
void sgd_range(T* __restrict p, T* __restrict buf, const T* __restrict g, std::int64_t b,
               std::int64_t e, T lr, T wd, T mom, T damp) {
  for (std::int64_t i = b; i < e; ++i) {
    T d = g[i];
    if constexpr (kWd) d = d + wd * p[i];
    if constexpr (kMom) {
      T v;
      if constexpr (kFirst) v = d;
      else v = mom * buf[i] + damp * d;
      buf[i] = v;
      if constexpr (kNesterov) d = d + mom * v;
      else d = v;
    }
    p[i] = p[i] - lr * d;
  }
}

/// The hyper-parameters of one Adam step, rounded to T.
template <class T>
struct AdamScalars {
  T step_size, bc2_sqrt, one_m_b1, b2, one_m_b2, eps, wd, decay;
};

/// kDecay: 0 none, 1 L2 (added to the gradient), 2 decoupled (AdamW).
template <class T, int kDecay>
void adam_range(T* __restrict p, T* __restrict m, T* __restrict v, const T* __restrict g,
                std::int64_t b, std::int64_t e, const AdamScalars<T> s) {
  const T step_size = s.step_size, bc2_sqrt = s.bc2_sqrt, one_m_b1 = s.one_m_b1;
  const T b2 = s.b2, one_m_b2 = s.one_m_b2, eps = s.eps, wd = s.wd, decay = s.decay;
  for (std::int64_t i = b; i < e; ++i) {
    T pi = p[i];
    T gi = g[i];
    if constexpr (kDecay == 2) pi = pi * decay;
    if constexpr (kDecay == 1) gi = gi + wd * pi;
    const T mi = m[i] + (gi - m[i]) * one_m_b1;
    const T vi = v[i] * b2 + one_m_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * (mi / denom);
  }
}

template <class T, bool kWd, bool kCentered, bool kMom>
void rmsprop_range(T* __restrict p, T* __restrict sq, T* __restrict buf, T* __restrict ga,
                   const T* __restrict g, std::int64_t b, std::int64_t e, T lr, T alpha,
                   T one_m_alpha, T eps, T wd, T mom) {
  for (std::int64_t i = b; i < e; ++i) {
    T gi = g[i];
    if constexpr (kWd) gi = gi + wd * p[i];
    const T s = sq[i] * alpha + one_m_alpha * gi * gi;
    sq[i] = s;
    T avg;
    if constexpr (kCentered) {
      const T a = ga[i] + (gi - ga[i]) * one_m_alpha;
      ga[i] = a;
      avg = std::sqrt(s - a * a) + eps;
    } else {
      avg = std::sqrt(s) + eps;
    }
    if constexpr (kMom) {
      const T bi = buf[i] * mom + gi / avg;
      buf[i] = bi;
      p[i] = p[i] - lr * bi;
    } else {
      p[i] = p[i] - lr * (gi / avg);
    }
  }
}

/// Threads for an update pass over n elements touching `streams` arrays
/// (each read or written once): 1 below kOptimParallelMinBytes, where the
/// fork/join (a few microseconds) costs more than a second core saves.
int optim_threads(std::int64_t n, std::int64_t streams, std::size_t elem) {
  return static_cast<std::int64_t>(elem) * n * streams < kOptimParallelMinBytes
             ? 1 : get_num_threads();
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
  const bool use_wd = wd != T(0), nesterov = o.nesterov;
  using Range = void (*)(T*, T*, const T*, std::int64_t, std::int64_t, T, T, T, T);
  // [weight decay][momentum: 0 none, 1 first step, 2 later; x2 for nesterov]
  static constexpr Range table[2][5] = {
      {sgd_range<T, false, false, false, false>, sgd_range<T, false, true, false, true>,
       sgd_range<T, false, true, false, false>, sgd_range<T, false, true, true, true>,
       sgd_range<T, false, true, true, false>},
      {sgd_range<T, true, false, false, false>, sgd_range<T, true, true, false, true>,
       sgd_range<T, true, true, false, false>, sgd_range<T, true, true, true, true>,
       sgd_range<T, true, true, true, false>}};
  const int mom_kind = !use_mom ? 0 : (nesterov ? 2 : 0) + (first ? 1 : 2);
  const Range range = table[use_wd][mom_kind];
  detail::parallel_split(n, optim_threads(n, use_mom ? 5 : 3, sizeof(T)), 64,
                         [=](std::int64_t b, std::int64_t e) {
                           range(p, buf, g, b, e, lr, wd, mom, damp);
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
  AdamScalars<T> s;
  s.step_size = static_cast<T>(o.lr / bc1);
  s.bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  s.one_m_b1 = static_cast<T>(1.0 - o.beta1);
  s.b2 = static_cast<T>(o.beta2);
  s.one_m_b2 = static_cast<T>(1.0 - o.beta2);
  s.eps = static_cast<T>(o.eps);
  s.wd = static_cast<T>(o.weight_decay);
  s.decay = static_cast<T>(1.0 - o.lr * o.weight_decay);
  using Range = void (*)(T*, T*, T*, const T*, std::int64_t, std::int64_t, AdamScalars<T>);
  const Range range = s.wd == T(0) ? adam_range<T, 0>
                      : o.decoupled ? adam_range<T, 2>
                                    : adam_range<T, 1>;
  detail::parallel_split(n, optim_threads(n, 7, sizeof(T)), 64,
                         [=](std::int64_t b, std::int64_t e) { range(p, m, v, g, b, e, s); });
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
  using Range = void (*)(T*, T*, T*, T*, const T*, std::int64_t, std::int64_t, T, T, T, T, T, T);
  // [weight decay][centered][momentum]
  static constexpr Range table[2][2][2] = {
      {{rmsprop_range<T, false, false, false>, rmsprop_range<T, false, false, true>},
       {rmsprop_range<T, false, true, false>, rmsprop_range<T, false, true, true>}},
      {{rmsprop_range<T, true, false, false>, rmsprop_range<T, true, false, true>},
       {rmsprop_range<T, true, true, false>, rmsprop_range<T, true, true, true>}}};
  const Range range = table[wd != T(0)][centered][use_mom];
  const std::int64_t streams = 5 + (use_mom ? 2 : 0) + (centered ? 2 : 0);
  detail::parallel_split(n, optim_threads(n, streams, sizeof(T)), 64,
                         [=](std::int64_t b, std::int64_t e) {
                           range(p, sq, buf, ga, g, b, e, lr, alpha, one_m_alpha, eps, wd, mom);
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
