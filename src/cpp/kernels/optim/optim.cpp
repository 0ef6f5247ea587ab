// Optimizer updates (matnet/optim.hpp): one in-place pass over a parameter
// and its state, in the order of operations of torch.optim's single-tensor
// code, in T with the hyper-parameters rounded to T (so float32 results match
// PyTorch's float32 results up to the last bits).
#include "matnet/optim.hpp"

#include <cmath>
#include <string>

#include "core/checks.hpp"
#include "optim/optim_loops.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

using detail::AdamScalars;

template <class T>
const detail::OptimLoops<T>& loops() {
  return *detail::kernels<T>().optim;
}

void require_param(const char* fn, const char* name, double v, bool ok) {
  if (!ok) detail::fail(fn, std::string("invalid ") + name + "=" + std::to_string(v));
}

/// Threads for an update pass over n elements touching `streams` arrays
/// (each read or written once): 1 below detail::thresholds::optim_parallel_min_bytes, where the
/// fork/join (a few microseconds) costs more than a second core saves.
int optim_threads(std::int64_t n, std::int64_t streams, std::size_t elem) {
  return static_cast<std::int64_t>(elem) * n * streams < detail::thresholds::optim_parallel_min_bytes
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
  const int mom_kind = !use_mom ? 0 : (nesterov ? 2 : 0) + (first ? 1 : 2);
  const detail::SgdRange<T> range = loops<T>().sgd[use_wd][mom_kind];
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
  const detail::AdamRange<T> range =
      loops<T>().adam[s.wd == T(0) ? 0 : o.decoupled ? 2 : 1];
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
  const detail::RmspropRange<T> range = loops<T>().rmsprop[wd != T(0)][centered][use_mom];
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

namespace detail {

const OptimLoops<float>& optim_loops_generic_f32() {
  static constexpr OptimLoops<float> loops = make_optim_loops<float>();
  return loops;
}

const OptimLoops<double>& optim_loops_generic_f64() {
  static constexpr OptimLoops<double> loops = make_optim_loops<double>();
  return loops;
}

}  // namespace detail

}  // namespace matnet
