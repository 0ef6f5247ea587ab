// Optimizer update loops (internal): the element-wise bodies of
// matnet/optim.hpp, one function per combination of options, included by
// optim.cpp (portable build) and optim_avx2.cpp (the same loops compiled for
// AVX2). Each TU gets its own copies (anonymous namespace), so the two builds
// of a loop never merge at link time; each TU exports only its table.
#pragma once

#include <cmath>
#include <cstdint>

namespace matnet::detail {

/// The hyper-parameters of one Adam step, rounded to T.
template <class T>
struct AdamScalars {
  T step_size, bc2_sqrt, one_m_b1, b2, one_m_b2, eps, wd, decay;
};

template <class T>
using SgdRange = void (*)(T*, T*, const T*, std::int64_t, std::int64_t, T, T, T, T);
template <class T>
using AdamRange = void (*)(T*, T*, T*, const T*, std::int64_t, std::int64_t, AdamScalars<T>);
template <class T>
using RmspropRange = void (*)(T*, T*, T*, T*, const T*, std::int64_t, std::int64_t, T, T, T, T,
                              T, T);

/// Every loop of one build, indexed by its options:
///   sgd[weight decay][momentum: 0 none, 1 first step, 2 later, 3/4 Nesterov first/later]
///   adam[decay: 0 none, 1 L2 (added to the gradient), 2 decoupled (AdamW)]
///   rmsprop[weight decay][centered][momentum]
template <class T>
struct OptimLoops {
  SgdRange<T> sgd[2][5];
  AdamRange<T> adam[3];
  RmspropRange<T> rmsprop[2][2][2];
};

/// The portable loops (optim.cpp) and the loops compiled for AVX2
/// (optim_avx2.cpp; reached only through the registry).
const OptimLoops<float>& optim_loops_generic_f32();
const OptimLoops<double>& optim_loops_generic_f64();
const OptimLoops<float>& optim_loops_avx2_f32();
const OptimLoops<double>& optim_loops_avx2_f64();

namespace {

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

template <class T>
constexpr OptimLoops<T> make_optim_loops() {
  return OptimLoops<T>{
      {{sgd_range<T, false, false, false, false>, sgd_range<T, false, true, false, true>,
        sgd_range<T, false, true, false, false>, sgd_range<T, false, true, true, true>,
        sgd_range<T, false, true, true, false>},
       {sgd_range<T, true, false, false, false>, sgd_range<T, true, true, false, true>,
        sgd_range<T, true, true, false, false>, sgd_range<T, true, true, true, true>,
        sgd_range<T, true, true, true, false>}},
      {adam_range<T, 0>, adam_range<T, 1>, adam_range<T, 2>},
      {{{rmsprop_range<T, false, false, false>, rmsprop_range<T, false, false, true>},
        {rmsprop_range<T, false, true, false>, rmsprop_range<T, false, true, true>}},
       {{rmsprop_range<T, true, false, false>, rmsprop_range<T, true, false, true>},
        {rmsprop_range<T, true, true, false>, rmsprop_range<T, true, true, true>}}}};
}

}  // namespace
}  // namespace matnet::detail
