// tests/cpp/test_ops.cpp - the element-wise, softmax, loss and optimizer parts
// of libmatnet's public C++ API (activations.hpp, losses.hpp, optim.hpp,
// errors.hpp, runtime.hpp): results against plain loops in double, special
// values, bad arguments (matnet::invalid_argument, nothing written), and the
// same calls from inside a caller's OpenMP parallel region. ctest runs it on
// every ISA path (MATNET_ISA). Plain CHECKs, no framework (check.hpp).
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <matnet/matnet.hpp>

#include "check.hpp"

namespace {

using matnet::Activation;

constexpr Activation kActs[] = {Activation::identity, Activation::relu,  Activation::leaky_relu,
                                Activation::sigmoid,  Activation::tanh,  Activation::gelu,
                                Activation::gelu_tanh, Activation::silu};

double act_ref(Activation a, double x) {
  const double k0 = std::sqrt(2.0 / M_PI), k1 = 0.044715;
  switch (a) {
    case Activation::identity: return x;
    case Activation::relu: return x < 0 ? 0 : x;
    case Activation::leaky_relu: return x > 0 ? x : 0.01 * x;
    case Activation::sigmoid: return 1 / (1 + std::exp(-x));
    case Activation::tanh: return std::tanh(x);
    case Activation::gelu: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::gelu_tanh: return 0.5 * x * (1 + std::tanh(k0 * (x + k1 * x * x * x)));
    case Activation::silu: return x / (1 + std::exp(-x));
  }
  return NAN;
}

template <typename T>
void test_activations_match_loops() {
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  for (Activation a : kActs) {
    for (std::int64_t n : {0, 1, 7, 8, 9, 100, 5000}) {
      std::vector<T> x(n), y(n, T(-7)), dx(n), g(n, T(1));
      for (std::int64_t i = 0; i < n; ++i) x[i] = T(-6 + 12.0 * i / std::max<std::int64_t>(n, 2));
      matnet::activation_forward(y.data(), x.data(), n, a);
      for (std::int64_t i = 0; i < n; ++i) {
        const double want = act_ref(a, x[i]);
        CHECK(std::fabs(y[i] - want) <= tol * (1 + std::fabs(want)));
      }
      matnet::activation_backward(dx.data(), g.data(), x.data(), n, a);
      for (std::int64_t i = 0; i < n; ++i) {  // central difference of the reference
        const double h = 1e-5, want = (act_ref(a, x[i] + h) - act_ref(a, x[i] - h)) / (2 * h);
        if (std::fabs(double(x[i])) > 1e-4)  // relu's kink
          CHECK(std::fabs(dx[i] - want) <= 1e-4 * (1 + std::fabs(want)));
      }
    }
  }
}

template <typename T>
void test_activation_special_values() {
  const T inf = std::numeric_limits<T>::infinity();
  for (Activation a : {Activation::gelu, Activation::gelu_tanh, Activation::silu,
                       Activation::relu, Activation::leaky_relu}) {
    std::vector<T> x(19, inf), y(19);
    matnet::activation_forward(y.data(), x.data(), 19, a);
    for (T v : y) CHECK(v == inf);  // the limit, not the largest finite value
  }
  std::vector<T> z(19, T(-0.0)), t(19);
  matnet::activation_forward(t.data(), z.data(), 19, Activation::tanh);
  for (T v : t) CHECK(v == 0 && std::signbit(v));  // odd: -0 stays -0
  std::vector<T> nan(3, std::numeric_limits<T>::quiet_NaN()), out(3);
  for (Activation a : kActs) {
    matnet::activation_forward(out.data(), nan.data(), 3, a);
    for (T v : out) CHECK(std::isnan(v));
  }
}

template <typename T>
void test_softmax() {
  const T inf = std::numeric_limits<T>::infinity();
  // rows of 5: ordinary, with +Inf, two +Inf, a NaN
  std::vector<T> x = {1, 2, 3, 4, 5, inf, 1, 2, -inf, 0, inf, inf, 0, 0, 0,
                      1, std::numeric_limits<T>::quiet_NaN(), 0, 0, 0};
  std::vector<T> y(x.size()), ly(x.size());
  matnet::softmax_forward(y.data(), x.data(), 4, 5, 1);
  matnet::log_softmax_forward(ly.data(), x.data(), 4, 5, 1);
  double s = 0;
  for (int i = 0; i < 5; ++i) s += std::exp(double(x[i]) - 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(std::fabs(y[i] - std::exp(double(x[i]) - 5) / s) <= 1e-6);
    CHECK(std::fabs(ly[i] - (double(x[i]) - 5 - std::log(s))) <= 1e-5);
  }
  CHECK(y[5] == 1 && y[6] == 0 && y[7] == 0 && y[8] == 0 && y[9] == 0);
  CHECK(ly[5] == 0 && ly[6] == -inf && ly[8] == -inf);
  CHECK(y[10] == T(0.5) && y[11] == T(0.5) && y[12] == 0);
  for (int i = 15; i < 20; ++i) CHECK(std::isnan(y[i]) && std::isnan(ly[i]));
  // along a middle axis (inner > 1) the same as transposing
  std::vector<T> a = {1, 10, 2, 20, 3, inf}, b(6);  // (outer 1, len 3, inner 2)
  matnet::softmax_forward(b.data(), a.data(), 1, 3, 2);
  CHECK(b[1] == 0 && b[3] == 0 && b[5] == 1);
  CHECK(std::fabs(b[0] + b[2] + b[4] - 1) <= 1e-6);
  // backward: the gradient of sum(g * y) with g = 1 is 0
  std::vector<T> g(5, T(1)), dx(5);
  matnet::softmax_backward(dx.data(), g.data(), y.data(), 1, 5, 1);
  for (T v : dx) CHECK(std::fabs(v) <= 1e-6);
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::softmax_forward(y.data(), x.data(), -1, 5, 1); }));
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::softmax_forward(static_cast<T*>(nullptr), x.data(), 1, 5, 1); }));
}

template <typename T>
void test_losses() {
  const std::int64_t batch = 6, classes = 4;
  std::vector<T> logits(batch * classes), grad(batch * classes);
  std::vector<std::int64_t> labels(batch);
  for (std::int64_t i = 0; i < batch * classes; ++i) logits[i] = T(std::sin(0.7 * i) * 3);
  for (std::int64_t r = 0; r < batch; ++r) labels[r] = r % classes;
  const double loss = matnet::cross_entropy(grad.data(), logits.data(), labels.data(), batch,
                                            classes, 0.1);
  double want = 0;
  for (std::int64_t r = 0; r < batch; ++r) {
    double m = -INFINITY, s = 0;
    for (std::int64_t c = 0; c < classes; ++c) m = std::max(m, double(logits[r * classes + c]));
    for (std::int64_t c = 0; c < classes; ++c) s += std::exp(logits[r * classes + c] - m);
    for (std::int64_t c = 0; c < classes; ++c) {
      const double q = 0.1 / classes + (c == labels[r] ? 0.9 : 0.0);
      const double p = std::exp(logits[r * classes + c] - m) / s;
      want -= q * (logits[r * classes + c] - m - std::log(s));
      CHECK(std::fabs(grad[r * classes + c] - (p - q) / batch) <= 1e-6);
    }
  }
  CHECK(std::fabs(loss - want / batch) <= 1e-5 * (1 + std::fabs(want)));
  std::vector<T> pred = {1, 2, 3}, target = {1, 0, 5}, g(3);
  CHECK(std::fabs(matnet::mse(g.data(), pred.data(), target.data(), 3) - 8.0 / 3) <= 1e-6);
  CHECK(g[1] == T(4.0 / 3) || std::fabs(g[1] - 4.0 / 3) <= 1e-6);
  std::vector<T> t01 = {0, 1, T(0.5)};
  const double bce = matnet::binary_cross_entropy(g.data(), pred.data(), t01.data(), 3);
  double bce_want = 0;
  for (int i = 0; i < 3; ++i)
    bce_want += std::max(double(pred[i]), 0.0) - pred[i] * t01[i] + std::log1p(std::exp(-std::fabs(double(pred[i]))));
  CHECK(std::fabs(bce - bce_want / 3) <= 1e-6);
  CHECK(throws<matnet::invalid_argument>(  // the mean over 0 elements is undefined
      [&] { matnet::binary_cross_entropy(g.data(), pred.data(), t01.data(), 0); }));
  // bad arguments: a label out of range, negative sizes, null pointers; grad untouched
  std::vector<std::int64_t> bad = labels;
  bad[2] = classes;
  std::vector<T> keep = grad;
  CHECK(throws<matnet::invalid_argument>([&] {
    matnet::cross_entropy(grad.data(), logits.data(), bad.data(), batch, classes);
  }));
  CHECK(grad == keep);
  CHECK(throws<matnet::invalid_argument>([&] {
    matnet::cross_entropy(grad.data(), logits.data(), labels.data(), batch, classes, 1.5);
  }));
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::mse(g.data(), pred.data(), target.data(), -1); }));
  CHECK(throws<std::invalid_argument>(
      [&] { matnet::mse(g.data(), nullptr, target.data(), 3); }));
}

template <typename T>
void test_optimizers() {
  const std::int64_t n = 301;
  std::vector<T> p(n), g(n), m(n, 0), v(n, 0), buf(n, 0), ga(n, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    p[i] = T(std::cos(0.3 * i));
    g[i] = T(std::sin(0.5 * i));
  }
  std::vector<T> p0 = p;
  matnet::SgdOptions sgd;
  sgd.lr = 0.1;
  matnet::sgd_update(p.data(), nullptr, g.data(), n, sgd, true);
  for (std::int64_t i = 0; i < n; ++i) CHECK(std::fabs(p[i] - (p0[i] - T(0.1) * g[i])) <= 1e-6);
  matnet::AdamOptions adam;
  adam.lr = 0.01;
  p = p0;
  matnet::adam_update(p.data(), m.data(), v.data(), g.data(), n, 1, adam);
  for (std::int64_t i = 0; i < n; ++i)  // step 1: p - lr * sign(g) (up to eps)
    if (std::fabs(double(g[i])) > 1e-3)
      CHECK(std::fabs(p[i] - (p0[i] - 0.01 * (g[i] > 0 ? 1 : -1))) <= 1e-5);
  matnet::RmspropOptions rms;
  rms.centered = true;
  rms.momentum = 0.5;
  p = p0;
  matnet::rmsprop_update(p.data(), v.data(), buf.data(), ga.data(), g.data(), n, rms);
  for (std::int64_t i = 0; i < n; ++i) CHECK(std::isfinite(double(p[i])));
  // bad options and arguments throw before writing anything
  std::vector<T> keep = p;
  sgd.lr = -1;
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::sgd_update(p.data(), nullptr, g.data(), n, sgd, false); }));
  sgd.lr = 0.1;
  sgd.momentum = 0.9;
  CHECK(throws<matnet::invalid_argument>(  // momentum without a velocity
      [&] { matnet::sgd_update(p.data(), nullptr, g.data(), n, sgd, false); }));
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::adam_update(p.data(), m.data(), v.data(), g.data(), n, 0, adam); }));
  adam.beta1 = 1.0;
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::adam_update(p.data(), m.data(), v.data(), g.data(), n, 1, adam); }));
  CHECK(throws<matnet::invalid_argument>(
      [&] { matnet::rmsprop_update(p.data(), nullptr, nullptr, nullptr, g.data(), n, rms); }));
  CHECK(p == keep);
}

// Every family called from each thread of the caller's own parallel region:
// matnet runs single-threaded there and gives the same results as outside.
template <typename T>
void test_calls_inside_callers_omp_parallel() {
  const std::int64_t n = 4096;
  std::vector<T> x(n), want(n);
  for (std::int64_t i = 0; i < n; ++i) x[i] = T(std::sin(0.01 * i) * 4);
  matnet::activation_forward(want.data(), x.data(), n, Activation::gelu);
  std::vector<T> sm_want(n);
  matnet::softmax_forward(sm_want.data(), x.data(), 64, 64, 1);
  int bad = 0;
#pragma omp parallel num_threads(4) reduction(+ : bad)
  {
    std::vector<T> y(n), sm(n);
    matnet::activation_forward(y.data(), x.data(), n, Activation::gelu);
    matnet::softmax_forward(sm.data(), x.data(), 64, 64, 1);
    bad += (y != want) + (sm != sm_want);
    bad += matnet::get_num_threads() < 1;
  }
  CHECK(bad == 0);
}

void test_thread_cap() {
  const int cap = matnet::max_num_threads();
  CHECK(cap >= 4 && cap == 4 * omp_get_num_procs());
  CHECK(throws<matnet::invalid_argument>([cap] { matnet::set_num_threads(cap + 1); }));
  CHECK(throws<matnet::invalid_argument>([] { matnet::set_num_threads(-5); }));
  const int before = matnet::get_num_threads();
  matnet::set_num_threads(cap);  // the cap runs: a team of cap threads on 2^20 elements
  std::vector<float> x(1 << 20, 1.0f), y(1 << 20);
  matnet::activation_forward(y.data(), x.data(), 1 << 20, Activation::sigmoid);
  CHECK(std::fabs(y[12345] - 0.7310586f) <= 1e-6f);
  matnet::set_num_threads(before);
}

}  // namespace

int main() {
  return run_tests({
      {"activations_match_loops<float>", test_activations_match_loops<float>},
      {"activations_match_loops<double>", test_activations_match_loops<double>},
      {"activation_special_values<float>", test_activation_special_values<float>},
      {"activation_special_values<double>", test_activation_special_values<double>},
      {"softmax<float>", test_softmax<float>},
      {"softmax<double>", test_softmax<double>},
      {"losses<float>", test_losses<float>},
      {"losses<double>", test_losses<double>},
      {"optimizers<float>", test_optimizers<float>},
      {"optimizers<double>", test_optimizers<double>},
      {"calls_inside_callers_omp_parallel<float>", test_calls_inside_callers_omp_parallel<float>},
      {"calls_inside_callers_omp_parallel<double>",
       test_calls_inside_callers_omp_parallel<double>},
      {"thread_cap", test_thread_cap},
  });
}
