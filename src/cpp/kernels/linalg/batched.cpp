// The public entry points of matnet/linalg.hpp: stacks of matrices.
//
// Stacked solve / inv / det of order <= small_lu_max_n run the
// lane-interleaved kernels of linalg/small_lu.hpp, one matrix per SIMD lane
// and whole groups of lanes per thread: a per-matrix loop at n = 8 spends
// its time in pivot-search branches and loop control, and NumPy's gufunc
// loop in LAPACK's fixed per-call overhead. Other small stacks (order <=
// linalg_batch_per_thread_max_n) run one matrix per thread, each
// factorisation on one thread with its unblocked loops in cache. Larger
// matrices run one after another, each with the whole thread budget spent
// in its GEMMs.
#include "matnet/linalg.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "linalg/factor.hpp"
#include "runtime/registry.hpp"

namespace matnet::linalg {

namespace {

using detail::WorkspaceScope;
namespace thresholds = detail::thresholds;

/// body(i, threads) for every matrix i of the stack, on one thread per
/// matrix for small orders; exceptions (bad_alloc) are rethrown here.
template <class F>
void for_each_matrix(std::int64_t batch, std::int64_t order, F&& body) {
  const int budget = get_num_threads();
  if (batch <= 0) return;
  if (batch == 1 || order > detail::thresholds::linalg_batch_per_thread_max_n) {
    for (std::int64_t i = 0; i < batch; ++i) body(i, budget);
    return;
  }
  // Tiny stacks are not worth a fork/join.
  const int nt = detail::threads_for(batch * order * order * order, budget);
  detail::RegionErrors errors;
  detail::parallel_split(batch, nt, 1, [&](std::int64_t b, std::int64_t e) {
    errors.run([&] {
      for (std::int64_t i = b; i < e; ++i) body(i, 1);
    });
  });
  errors.rethrow();
}

template <class T>
bool all_finite(const T* x, std::int64_t count) {
  // A flag reduction (vectorises, unlike a floating-point sum); NaN fails <=.
  bool ok = true;
  for (std::int64_t i = 0; i < count; ++i) ok &= std::abs(x[i]) <= std::numeric_limits<T>::max();
  return ok;
}

bool small_lu_fits(std::int64_t n, std::int64_t nrhs) {
  return n <= thresholds::small_lu_max_n && nrhs <= thresholds::small_lu_max_nrhs;
}

/// body(b, e) for ranges [b, e) of the stack that split it over the
/// threads on whole groups of the small LU kernel's lanes.
template <class T, class F>
void for_each_small_group(std::int64_t batch, std::int64_t n, F&& body) {
  if (batch <= 0) return;
  const int nt = detail::threads_for(batch * n * n * n, get_num_threads());
  detail::parallel_split(batch, nt, detail::kernels<T>().small_lu->lanes, body);
}

/// det, sign and log|det| of a matrix from its LU: U's diagonal at
/// u[k * stride], det(P) = perm.
template <class T>
void det_from_lu(std::int64_t n, const T* u, std::int64_t stride, T perm, T& det, T& sign,
                 T& logabsdet) {
  T prod = 1;
  for (std::int64_t k = 0; k < n; ++k) prod *= u[k * stride];
  const bool singular = prod == T(0) && [&] {
    for (std::int64_t k = 0; k < n; ++k)
      if (u[k * stride] == T(0)) return true;
    return false;  // the product underflowed
  }();
  // The plain product is the accurate one unless it over/underflowed;
  // then (only) the log is summed pivot by pivot (logs cost ~20 ns each).
  T s = 0, logabs = -std::numeric_limits<T>::infinity();
  if (!singular) {
    if (std::isfinite(prod) && prod != T(0)) {
      s = prod < 0 ? -perm : perm;
      logabs = std::log(std::abs(prod));
    } else {
      s = perm;
      logabs = 0;
      for (std::int64_t k = 0; k < n; ++k) {
        const T d = u[k * stride];
        if (d < T(0)) s = -s;
        logabs += std::log(std::abs(d));
      }
    }
  }
  sign = s;
  logabsdet = logabs;
  det = singular ? T(0) : (std::isfinite(prod) && prod != T(0) ? prod * perm : s * std::exp(logabs));
}

/// A copy of the read-only input for the factorisations that overwrite it
/// (the small LU kernels read their input once and need none).
template <class T>
std::unique_ptr<T[]> scratch_copy(const T* a, std::int64_t count) {
  std::unique_ptr<T[]> copy(new T[static_cast<std::size_t>(count)]);
  std::copy(a, a + count, copy.get());
  return copy;
}

/// LU of one matrix of the stack, after checking it for NaN/Inf, then
/// then(piv, info) with the pivots in scratch. Returns lu_factor's info, or
/// -1 (then `then` is not called).
template <class T, class F>
std::int64_t with_lu(std::int64_t n, T* a, int nt, F&& then) {
  if (!all_finite(a, n * n)) return -1;
  WorkspaceScope scope;
  std::int64_t* piv = scope.alloc<std::int64_t>(static_cast<std::size_t>(n));
  const std::int64_t info = detail::lu_factor(n, a, n, piv, nt);
  then(static_cast<const std::int64_t*>(piv), info);
  return info;
}

void check_sizes(const char* fn, std::int64_t batch, std::int64_t m, std::int64_t n,
                 const void* info) {
  detail::require_size(fn, "batch", batch);
  detail::require_size(fn, "m", m);
  detail::require_size(fn, "n", n);
  if (batch > 0) detail::require_ptr(fn, "info", info);
}

void require_data(const char* fn, const char* name, const void* p, std::int64_t batch,
                  std::int64_t count) {
  if (batch > 0 && count > 0) detail::require_ptr(fn, name, p);
}

}  // namespace

template <class T>
void lu_factor(std::int64_t batch, std::int64_t n, T* a, std::int64_t* piv, std::int64_t* info) {
  check_sizes("linalg::lu_factor", batch, n, n, info);
  require_data("linalg::lu_factor", "a", a, batch, n * n);
  require_data("linalg::lu_factor", "piv", piv, batch, n);
  for_each_matrix(batch, n, [&](std::int64_t i, int nt) {
    info[i] = with_lu(n, a + i * n * n, nt,
                      [&](const std::int64_t* p, std::int64_t) {
                        std::copy(p, p + n, piv + i * n);
                      });
  });
}

template <class T>
void solve(std::int64_t batch, std::int64_t n, std::int64_t nrhs, const T* a, T* b,
           std::int64_t* info) {
  check_sizes("linalg::solve", batch, n, nrhs, info);
  require_data("linalg::solve", "a", a, batch, n * n);
  require_data("linalg::solve", "b", b, batch, n * nrhs);
  if (small_lu_fits(n, nrhs)) {
    for_each_small_group<T>(batch, n, [&](std::int64_t b0, std::int64_t e) {
      detail::kernels<T>().small_lu->factor_solve(n, nrhs, e - b0, a + b0 * n * n,
                                                   b + b0 * n * nrhs, false, nullptr, nullptr,
                                                   info + b0);
    });
    return;
  }
  const std::unique_ptr<T[]> lu = scratch_copy(a, batch * n * n);
  for_each_matrix(batch, n, [&](std::int64_t i, int nt) {
    T* ai = lu.get() + i * n * n;
    T* bi = b + i * n * nrhs;
    if (!all_finite(ai, n * n) || !all_finite(bi, n * nrhs)) {
      info[i] = -1;
      return;
    }
    WorkspaceScope scope;
    std::int64_t* piv = scope.alloc<std::int64_t>(static_cast<std::size_t>(n));
    info[i] = detail::lu_factor_solve(n, nrhs, ai, n, piv, bi, nrhs, nt);
  });
}

template <class T>
void det(std::int64_t batch, std::int64_t n, const T* a, T* det, T* sign, T* logabsdet,
         std::int64_t* info) {
  check_sizes("linalg::det", batch, n, n, info);
  require_data("linalg::det", "a", a, batch, n * n);
  require_data("linalg::det", "det", det, batch, 1);
  require_data("linalg::det", "sign", sign, batch, 1);
  require_data("linalg::det", "logabsdet", logabsdet, batch, 1);
  const auto finish = [&](std::int64_t i, const T* u, std::int64_t stride, T perm, bool finite) {
    info[i] = finite ? 0 : -1;  // singular is a valid answer (det 0) here
    if (finite) det_from_lu(n, u, stride, perm, det[i], sign[i], logabsdet[i]);
    else det[i] = sign[i] = logabsdet[i] = std::numeric_limits<T>::quiet_NaN();
  };
  if (small_lu_fits(n, 0)) {
    for_each_small_group<T>(batch, n, [&](std::int64_t b, std::int64_t e) {
      constexpr std::int64_t chunk = 64;  // a multiple of every ISA's lanes
      T diag[chunk * thresholds::small_lu_max_n], perm[chunk];
      std::int64_t fail[chunk];
      for (std::int64_t c0 = b; c0 < e; c0 += chunk) {
        const std::int64_t c = std::min(chunk, e - c0);
        detail::kernels<T>().small_lu->factor_solve(n, 0, c, a + c0 * n * n, nullptr, false, diag,
                                                     perm, fail);
        for (std::int64_t m = 0; m < c; ++m)
          finish(c0 + m, diag + m * n, 1, perm[m], fail[m] >= 0);
      }
    });
    return;
  }
  const std::unique_ptr<T[]> lu = scratch_copy(a, batch * n * n);
  for_each_matrix(batch, n, [&](std::int64_t i, int nt) {
    T* ai = lu.get() + i * n * n;
    const auto from_lu = [&](const std::int64_t* piv, std::int64_t) {
      T perm = 1;
      for (std::int64_t k = 0; k < n; ++k)
        if (piv[k] != k) perm = -perm;
      finish(i, ai, n + 1, perm, true);
    };
    if (with_lu(n, ai, nt, from_lu) < 0) finish(i, ai, n + 1, T(1), false);
  });
}

template <class T>
void inv(std::int64_t batch, std::int64_t n, const T* a, T* out, std::int64_t* info) {
  check_sizes("linalg::inv", batch, n, n, info);
  require_data("linalg::inv", "out", out, batch, n * n);
  require_data("linalg::inv", "a", a, batch, n * n);
  // A X = I, as LAPACK's DGESV with B = I (what NumPy's inv does), for the
  // small orders.
  if (small_lu_fits(n, n)) {
    for_each_small_group<T>(batch, n, [&](std::int64_t b, std::int64_t e) {
      detail::kernels<T>().small_lu->factor_solve(n, n, e - b, a + b * n * n, out + b * n * n,
                                                   true, nullptr, nullptr, info + b);
    });
    return;
  }
  if (n < thresholds::inv_getri_min_n) {
    for (std::int64_t i = 0; i < batch; ++i)
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t c = 0; c < n; ++c) out[(i * n + r) * n + c] = r == c ? T(1) : T(0);
    solve(batch, n, n, a, out, info);
    return;
  }
  // LU, then the inverse from the factors (LAPACK's DGETRI): 25 % fewer
  // flops than the solve with B = I.
  const std::unique_ptr<T[]> lu = scratch_copy(a, batch * n * n);
  for_each_matrix(batch, n, [&](std::int64_t i, int nt) {
    T* ai = lu.get() + i * n * n;
    info[i] = with_lu(n, ai, nt, [&](const std::int64_t* piv, std::int64_t fail) {
      if (fail == 0) detail::lu_inverse(n, ai, n, piv, out + i * n * n, n, nt);
    });
  });
}

template <class T>
void cholesky(std::int64_t batch, std::int64_t n, T* a, std::int64_t* info) {
  check_sizes("linalg::cholesky", batch, n, n, info);
  require_data("linalg::cholesky", "a", a, batch, n * n);
  for_each_matrix(batch, n, [&](std::int64_t i, int nt) {
    T* ai = a + i * n * n;
    bool finite = true;  // only the lower triangle is read
    for (std::int64_t r = 0; r < n && finite; ++r) finite = all_finite(ai + r * n, r + 1);
    info[i] = finite ? detail::cholesky_factor(n, ai, n, nt) : -1;
  });
}

template <class T>
void qr(std::int64_t batch, std::int64_t m, std::int64_t n, T* a, T* q, std::int64_t q_cols,
        std::int64_t* info) {
  constexpr const char* fn = "linalg::qr";
  check_sizes(fn, batch, m, n, info);
  require_data(fn, "a", a, batch, m * n);
  const std::int64_t k = std::min(m, n);
  if (q != nullptr && (q_cols < k || q_cols > m))
    detail::fail(fn, "q_cols must be in [min(m, n), m] = [" + std::to_string(k) + ", " +
                         std::to_string(m) + "], got " + std::to_string(q_cols));
  for_each_matrix(batch, std::max(m, n), [&](std::int64_t i, int nt) {
    T* ai = a + i * m * n;
    if (!all_finite(ai, m * n)) {
      info[i] = -1;
      return;
    }
    WorkspaceScope scope;
    T* tau = scope.alloc<T>(static_cast<std::size_t>(k + 1));
    detail::qr_factor(m, n, ai, n, tau, nt);
    if (q != nullptr) detail::qr_form_q(m, q_cols, k, ai, n, tau, q + i * m * q_cols, q_cols, nt);
    for (std::int64_t r = 1; r < m; ++r)
      std::fill(ai + r * n, ai + r * n + std::min(r, n), T(0));
    info[i] = 0;
  });
}

template <class T>
void eigh(std::int64_t batch, std::int64_t n, const T* a, T* w, T* v, std::int64_t* info) {
  check_sizes("linalg::eigh", batch, n, n, info);
  require_data("linalg::eigh", "a", a, batch, n * n);
  require_data("linalg::eigh", "w", w, batch, n);
  const auto finite = [&](std::int64_t i) {
    const T* ai = a + i * n * n;
    bool ok = true;  // only the lower triangle is read
    for (std::int64_t r = 0; r < n && ok; ++r) ok = all_finite(ai + r * n, r + 1);
    return ok;
  };
  const auto one = [&](std::int64_t i, int nt) {
    info[i] = finite(i) ? detail::eigh_of_copy(n, a + i * n * n, w + i * n,
                                               v != nullptr ? v + i * n * n : nullptr, nt)
                        : -1;
  };
  if (n > thresholds::eigh_small_max_n || batch < 2) {
    for_each_matrix(batch, n, one);
    return;
  }
  // Small orders: chunks of the stack per thread, each streamed through
  // detail::eigh_range (several matrices' QL sweeps interleaved).
  const std::unique_ptr<bool[]> skip(new bool[static_cast<std::size_t>(batch)]);
  for (std::int64_t i = 0; i < batch; ++i) {
    skip[i] = !finite(i);
    if (skip[i]) info[i] = -1;
  }
  const std::int64_t per_thread = (batch + get_num_threads() - 1) / get_num_threads();
  const std::int64_t chunk = std::clamp<std::int64_t>(per_thread, 1, 64);
  for_each_matrix((batch + chunk - 1) / chunk, n, [&](std::int64_t c, int) {
    const std::int64_t b = c * chunk, count = std::min(chunk, batch - b);
    detail::eigh_range(n, count, a + b * n * n, w + b * n, v != nullptr ? v + b * n * n : nullptr,
                       info + b, skip.get() + b);
  });
}

template <class T>
void svd(std::int64_t batch, std::int64_t m, std::int64_t n, T* a, T* s, T* u, T* vt,
         bool full_matrices, std::int64_t* info) {
  constexpr const char* fn = "linalg::svd";
  check_sizes(fn, batch, m, n, info);
  require_data(fn, "a", a, batch, m * n);
  const std::int64_t k = std::min(m, n);
  require_data(fn, "s", s, batch, k);
  if ((u == nullptr) != (vt == nullptr)) detail::fail(fn, "pass both u and vt, or neither");
  const std::int64_t uc = full_matrices ? m : k, vr = full_matrices ? n : k;
  for_each_matrix(batch, std::max(m, n), [&](std::int64_t i, int nt) {
    T* ai = a + i * m * n;
    if (!all_finite(ai, m * n)) {
      info[i] = -1;
      return;
    }
    info[i] = detail::svd(m, n, ai, n, s + i * k, u != nullptr ? u + i * m * uc : nullptr, uc,
                          vt != nullptr ? vt + i * vr * n : nullptr, n, full_matrices, nt);
  });
}

#define MATNET_LINALG_INSTANTIATE(T)                                                            \
  template MATNET_API void lu_factor<T>(std::int64_t, std::int64_t, T*, std::int64_t*,         \
                                        std::int64_t*);                                         \
  template MATNET_API void solve<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*,    \
                                    std::int64_t*);                                             \
  template MATNET_API void det<T>(std::int64_t, std::int64_t, const T*, T*, T*, T*,            \
                                  std::int64_t*);                                               \
  template MATNET_API void inv<T>(std::int64_t, std::int64_t, const T*, T*, std::int64_t*);    \
  template MATNET_API void cholesky<T>(std::int64_t, std::int64_t, T*, std::int64_t*);         \
  template MATNET_API void qr<T>(std::int64_t, std::int64_t, std::int64_t, T*, T*,             \
                                 std::int64_t, std::int64_t*);                                  \
  template MATNET_API void eigh<T>(std::int64_t, std::int64_t, const T*, T*, T*, std::int64_t*);     \
  template MATNET_API void svd<T>(std::int64_t, std::int64_t, std::int64_t, T*, T*, T*, T*,    \
                                  bool, std::int64_t*);
MATNET_LINALG_INSTANTIATE(float)
MATNET_LINALG_INSTANTIATE(double)
#undef MATNET_LINALG_INSTANTIATE

}  // namespace matnet::linalg
