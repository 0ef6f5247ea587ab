// Symmetric eigensolver (see factor.hpp).
//
// 1. Householder tridiagonalisation A = Q T Q^T on the full symmetric
//    matrix (its lower triangle is mirrored first; tridiagonal.cpp,
//    blocked for large n).
// 2. Implicit QL with Wilkinson shifts on T (the EISPACK/LAPACK DSTEQR
//    iteration), the plane rotations accumulated into Z^T, whose rows
//    they combine (contiguous in row-major storage, so each rotation is
//    two streaming row updates; batches of them are split over the
//    threads by columns). Backward stable: ~n eps ||A|| errors.
// 3. Eigenvectors V = Q Z: the rotations start from Q^T (formed from the
//    reflectors in blocks, compact WY, householder.cpp) rather than from I,
//    so that they accumulate V^T.
// Chosen for being simple and backward stable. Where the time goes (n =
// 512, float64, 1 thread): ~45% the rotations, whose kernel is near the
// FMA ports' bound already (4 multiplies per element pair), ~25% the
// reduction, ~7% the QL sweeps themselves (a sqrt-divide dependency chain).
// Divide and conquer (LAPACK's DSTEDC) would replace most of the rotation
// flops by GEMMs and is the next step for the vectors at large n.
//
// Small n (thresholds::eigh_small_max_n) is bound by that chain instead
// (~50 cycles a step, ~1300 steps at n = 32): there the sweeps advance a
// step at a time (Sweep), and eigh_range runs four matrices' sweeps
// interleaved, four independent chains in one loop. Steps 1 and 3's Q^T
// are then the registry's small_tridiag kernel (unblocked, one padded copy
// of the matrix, whole-vector loops), which reads the input itself.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <tuple>

#include "blas2/dot.hpp"
#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "linalg/factor.hpp"
#include "linalg/rotations.hpp"
#include "linalg/small_tridiag.hpp"
#include "linalg/sort_vectors.hpp"
#include "runtime/registry.hpp"

namespace matnet::detail {

namespace {

/// The arithmetic of one QL step once e[i + 1] = r is known to be nonzero
/// (f = s e[i], b = c e[i] of the previous rotation): the new rotation
/// (c, s), d[i + 1] (di1) and the carried g and p. Written once for
/// ql_sweep and Sweep::step; always inlined, so that its operands stay in
/// the callers' registers.
template <class T>
[[gnu::always_inline]] inline void ql_step(T f, T r, T b, T di, T& di1, T& s, T& c, T& g, T& p) {
  // One divide, not two: the divider, shared by the interleaved sweeps'
  // chains, bounds them (with the sqrt of fast_hypot).
  const T q = T(1) / r;
  s = f * q;
  c = g * q;
  g = di1 - p;
  const T t = (di - g) * s + T(2) * c * b;
  di1 = g + (p = s * t);
  g = c * t - b;
}

/// One QL sweep from m down to l with shift-derived start g: updates d and
/// e and leaves rotation k (rows k + 1, k) in cs[k], sn[k]. Returns the
/// last index rotated, l normally, or i + 1 > l when e[i + 1] underflowed
/// to zero (the sweep deflated there and must restart). Its own function,
/// so that its variables stay in registers: on the sqrt-divide chain that
/// bounds the sweep, each trip through memory adds a store-to-load delay.
template <class T>
[[gnu::noinline]] std::int64_t ql_sweep(std::int64_t l, std::int64_t m, T g, T* d, T* e, T* cs,
                                        T* sn) {
  T s = 1, c = 1, p = 0;
  for (std::int64_t i = m - 1; i >= l; --i) {
    const T f = s * e[i];
    const T b = c * e[i];
    const T r = fast_hypot(f, g);
    e[i + 1] = r;
    if (r == T(0)) {  // underflow: deflate and restart
      d[i + 1] -= p;
      e[m] = 0;
      return i + 1;
    }
    ql_step(f, r, b, d[i], d[i + 1], s, c, g, p);
    cs[i] = c;
    sn[i] = s;
  }
  d[l] -= p;
  e[l] = g;
  e[m] = 0;
  return l;
}

/// ql_sweep a step at a time (small n), so that two matrices' sweeps can
/// advance together. Rotation k is written to ops[m - 1 - k] (when ops
/// is not null: RowRotations' buffer, in order of application), one step late (rotation i + 1 at the end of step i): the
/// stores then have their operands and stay off the chain. Applying the
/// rotations to Z^T right there instead (portable SSE2 code, its work in
/// the chain's shadow) measured slower than recording them for
/// RowRotations' AVX2 batches: 56 vs 48 us per 32 x 32 matrix.
template <class T>
struct QlProblem;

template <class T>
struct Sweep {
  T* d;
  T* e;
  std::int64_t l, m, i;  // i: the next step; done when i < l
  T s, c, p, g;
  RowRotation<T>* ops;
  QlProblem<T>* ql;       // sets up the sweep that follows this one
  std::int64_t last = 0;  // once done: the last index rotated (see ql_sweep)

  /// The matrix's QL iteration has ended (converged, or failed: ql->info).
  bool done() const { return i < l; }

  void rotate(std::int64_t k, T ck, T sk) {
    if (ops != nullptr) {
      RowRotation<T>& op = ops[m - 1 - k];
      op.i = k + 1;
      op.j = k;
      op.c = ck;
      op.s = sk;
    }
  }

  /// One step. When the sweep ends (l reached, or e[i + 1] underflowed
  /// and the sweep deflated there) the next sweep is set up in place
  /// (ql->next), so that the interleaved group runs on: false only when
  /// the matrix has none left. Leaving the group at every sweep's end cost
  /// a copy of every slot's state out and back and the mispredictions of
  /// the way round, ~70 times per 32 x 32 matrix.
  [[gnu::always_inline]] inline bool step() {
    const T f = s * e[i];
    const T b = c * e[i];
    const T r = fast_hypot(f, g);
    e[i + 1] = r;
    if (r == T(0)) [[unlikely]] {
      if (i + 1 < m) rotate(i + 1, c, s);
      d[i + 1] -= p;
      e[m] = 0;
      last = i + 1;
      i = l - 1;
      return ql->next(*this);
    }
    const T cp = c, sp = s;
    ql_step(f, r, b, d[i], d[i + 1], s, c, g, p);
    if (i + 1 < m) rotate(i + 1, cp, sp);
    if (--i >= l) return true;
    rotate(l, c, s);
    last = l;
    d[l] -= p;
    e[l] = g;
    e[m] = 0;
    return ql->next(*this);
  }
};

/// Sweeps of different matrices interleaved until any matrix has no sweep
/// left: independent dependency chains in one loop, each in the others'
/// latency. Copied in and out so that their states live in registers.
template <class... S>
[[gnu::noinline]] void sweep_group(S*... sweeps) {
  const auto run = [](S... a) {
    while ((a.step() & ...)) {
    }
    return std::tuple<S...>(a...);
  };
  std::tie(*sweeps...) = run(*sweeps...);
}

/// The QL iteration of tridiagonal_ql as a sequence of sweeps, set up one
/// at a time by next() (so that two matrices' can be interleaved).
template <class T>
struct QlProblem {
  std::int64_t n;
  T* d;
  T* e;
  RowRotations<T>* rot;  // recording nothing: no vectors
  std::int64_t l = 0, info = 0;
  int iter = 0;
  bool pending = false;

  /// Sets up the next sweep; false when every eigenvalue has converged
  /// (info 0) or one did not within 60 sweeps (info l + 1). Out of line:
  /// the sweeps' loop calls it and stays small.
  [[gnu::noinline]] bool next(Sweep<T>& sweep) {
    const T eps = std::numeric_limits<T>::epsilon();
    if (pending) rot->commit(sweep.m - sweep.last);
    pending = false;
    while (l < n) {
      std::int64_t m = l;
      for (; m < n - 1; ++m) {
        const T dd = std::abs(d[m]) + std::abs(d[m + 1]);
        if (std::abs(e[m]) <= eps * dd) break;
      }
      if (m == l) {
        ++l;
        iter = 0;
        continue;
      }
      if (iter++ == 60) {
        info = l + 1;
        return false;
      }
      T g = (d[l + 1] - d[l]) / (T(2) * e[l]);
      const T r = fast_hypot(g, T(1));
      g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
      sweep = Sweep<T>{d, e, l, m, m - 1, T(1), T(1), T(0), g, rot->reserve(m - l), this};
      pending = true;
      return true;
    }
    return false;
  }
};

/// Implicit QL on the tridiagonal (d, e), e[i] coupling d[i] and d[i+1].
/// When zt is not null its rows are rotated along (zt n x n, rows are
/// eigenvector components). Returns 0 or l + 1 if eigenvalue l did not
/// converge within 60 sweeps. cs, sn: n elements of scratch each.
template <class T>
std::int64_t tridiagonal_ql(std::int64_t n, T* d, T* e, T* zt, std::int64_t ldz, T* cs, T* sn,
                            int max_threads) {
  const T eps = std::numeric_limits<T>::epsilon();
  if (n > 0) e[n - 1] = 0;
  RowRotations<T> rot(zt, n, n, ldz, max_threads);  // applied in batches, at the latest on return
  for (std::int64_t l = 0; l < n; ++l) {
    int iter = 0;
    std::int64_t m;
    do {
      for (m = l; m < n - 1; ++m) {
        const T dd = std::abs(d[m]) + std::abs(d[m + 1]);
        if (std::abs(e[m]) <= eps * dd) break;
      }
      if (m != l) {
        if (iter++ == 60) return l + 1;
        T g = (d[l + 1] - d[l]) / (T(2) * e[l]);
        const T r = fast_hypot(g, T(1));
        g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
        const std::int64_t last = ql_sweep(l, m, g, d, e, cs, sn);
        // (z_{k+1}, z_k) := (c z_{k+1} + s z_k, c z_k - s z_{k+1}), recorded
        // after the sweep.
        if (zt != nullptr)
          for (std::int64_t k = m - 1; k >= last; --k) rot.rotate(k + 1, k, cs[k], sn[k]);
      }
    } while (m != l);
  }
  return 0;
}

/// Steps 1 and the start of 3 for one matrix above the small orders:
/// mirrors and scales a, reduces it to (d, e) and, when v is not null,
/// forms Q^T in zt (v is scratch). Returns the scale (eigenvalues are
/// divided by it on return).
template <class T>
T prepare(std::int64_t n, T* a, std::int64_t lda, T* v, std::int64_t ldv, T* d, T* e, T* zt,
          std::int64_t ldz, WorkspaceScope& scope, int max_threads) {
  // The upper triangle from the lower, in tiles (a column read whole would
  // touch a cache line per element).
  constexpr std::int64_t tile = 32;
  for (std::int64_t i0 = 0; i0 < n; i0 += tile)
    for (std::int64_t j0 = i0; j0 < n; j0 += tile)
      for (std::int64_t i = i0; i < std::min(n, i0 + tile); ++i)
        for (std::int64_t j = std::max(j0, i + 1); j < std::min(n, j0 + tile); ++j)
          a[i * lda + j] = a[j * lda + i];
  T amax = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) amax = std::max(amax, std::abs(a[i * lda + j]));
  const T scale = eigh_scale(amax);
  if (scale != T(1))
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) a[i * lda + j] *= scale;
  T* tau = scope.alloc<T>(static_cast<std::size_t>(n));
  tridiagonalize(n, a, lda, d, e, tau, max_threads);  // reflector k in row k
  if (v == nullptr) return scale;
  // Z^T starts as Q^T, not I: the rotations then accumulate
  // Z^T Q^T = V^T itself (LAPACK's DORGTR + DSTEQR). Forming Q is
  // ~4/3 n^3 flops, applying it to Z afterwards 2 n^3.
  for (std::int64_t j = 0; j < n; ++j) v[j] = v[j * ldv] = T(0);
  v[0] = T(1);  // Q = diag(1, Q1)
  if (n > 2) {
    T* vr = scope.alloc<T>(static_cast<std::size_t>((n - 1) * (n - 2)));
    row_reflectors_to_columns(n, n - 2, a, lda, vr, n - 2);
    // Split by columns, one fork/join in all (per block of reflectors
    // otherwise). Column c costs ~c: equal-cost tasks, handed out
    // dynamically.
    const std::int64_t q = n - 1, tasks = max_threads > 1 ? 4 * max_threads : 1;
    const std::int64_t align = 64 / static_cast<std::int64_t>(sizeof(T));
    auto edge = [&](std::int64_t t) {
      if (t >= tasks) return q;
      const double c = static_cast<double>(q) * std::sqrt(static_cast<double>(t) / tasks);
      return std::min(q, static_cast<std::int64_t>(c) / align * align);
    };
    RegionErrors errors;  // qr_form_q_columns takes workspace: bad_alloc may come
    parallel_tasks(tasks, max_threads, [&](int, std::int64_t t) {
      errors.run([&] {
        qr_form_q_columns(q, edge(t), edge(t + 1), n - 2, vr, n - 2, tau, v + ldv + 1, ldv, 1);
      });
    });
    errors.rethrow();
  } else if (n == 2) {
    v[ldv + 1] = T(1);
  }
  gather_transpose(n, n, v, ldv, nullptr, zt, ldz);
  return scale;
}

/// Step 3's end: eigenvalues d / scale ascending into w, the rows of zt
/// (V^T) in that order into v's columns.
template <class T>
void finish(std::int64_t n, const T* d, T scale, const T* zt, std::int64_t ldz, T* w, T* v,
            std::int64_t ldv, WorkspaceScope& scope) {
  std::int64_t* order = scope.alloc<std::int64_t>(static_cast<std::size_t>(n));
  sorted_order(n, d, std::less<T>(), order);
  for (std::int64_t j = 0; j < n; ++j) w[j] = d[order[j]] / scale;
  if (v != nullptr) gather_transpose(n, n, zt, ldz, order, v, ldv);  // V's columns, sorted
}

/// The working arrays of one matrix.
template <class T>
struct Arrays {
  T* d;
  T* e;
  T* zt;
  std::int64_t ldz;
};

template <class T>
Arrays<T> allocate(std::int64_t n, bool vectors, WorkspaceScope& scope) {
  // Rows of Z^T a cache line apart from a multiple of 4 KiB: a rotation
  // reads one row right after storing another, and with a power-of-two
  // stride (n = 512 doubles) every row maps to the same L1 sets and each
  // load waits on a falsely aliased store.
  const std::int64_t ldz = rotation_ld<T>(n);
  T* d = scope.alloc<T>(static_cast<std::size_t>(n));
  T* e = scope.alloc<T>(static_cast<std::size_t>(n));
  T* zt = vectors ? scope.alloc<T>(static_cast<std::size_t>(n * ldz)) : nullptr;
  return {d, e, zt, ldz};
}

/// Step 1 and the start of 3 for an order up to thresholds::eigh_small_max_n:
/// the registry's small tridiagonalisation, which reads a's lower triangle
/// only (no copy of a needed) and forms Q^T into x.zt itself. Returns the
/// scale.
template <class T>
T prepare_small(std::int64_t n, const T* a, std::int64_t lda, const Arrays<T>& x) {
  WorkspaceScope scope;
  T* work = scope.alloc<T>(static_cast<std::size_t>(small_tridiag_work<T>(n)));
  const T scale = kernels<T>().small_tridiag->reduce(n, a, lda, x.d, x.e, x.zt, x.ldz, work);
  x.e[n - 1] = 0;
  return scale;
}

/// eigh up to thresholds::eigh_small_max_n, a only read: the code of
/// eigh_range's slots, one matrix, so that both give the same bits.
template <class T>
std::int64_t eigh_small(std::int64_t n, const T* a, std::int64_t lda, T* w, T* v,
                        std::int64_t ldv) {
  WorkspaceScope scope;
  const Arrays<T> x = allocate<T>(n, v != nullptr, scope);
  const T scale = prepare_small(n, a, lda, x);
  RowRotations<T> rot(x.zt, n, n, x.ldz, 1);
  QlProblem<T> ql{n, x.d, x.e, &rot};
  Sweep<T> sweep;
  if (ql.next(sweep)) sweep_group(&sweep);
  rot.flush();
  if (ql.info != 0) return ql.info;
  finish(n, x.d, scale, x.zt, x.ldz, w, v, ldv, scope);
  return 0;
}

}  // namespace

template <class T>
std::int64_t eigh(std::int64_t n, T* a, std::int64_t lda, T* w, T* v, std::int64_t ldv,
                  int max_threads) {
  if (n == 0) return 0;
  if (n <= thresholds::eigh_small_max_n) return eigh_small(n, a, lda, w, v, ldv);
  if (n < thresholds::spectral_parallel_min_n) max_threads = 1;
  WorkspaceScope scope;
  const Arrays<T> x = allocate<T>(n, v != nullptr, scope);
  const T scale = prepare(n, a, lda, v, ldv, x.d, x.e, x.zt, x.ldz, scope, max_threads);
  T* cs = scope.alloc<T>(static_cast<std::size_t>(n));
  T* sn = scope.alloc<T>(static_cast<std::size_t>(n));
  const std::int64_t info = tridiagonal_ql(n, x.d, x.e, x.zt, x.ldz, cs, sn, max_threads);
  if (info != 0) return info;
  finish(n, x.d, scale, x.zt, x.ldz, w, v, ldv, scope);
  return 0;
}

template <class T>
std::int64_t eigh_of_copy(std::int64_t n, const T* a, T* w, T* v, int max_threads) {
  if (n == 0) return 0;
  if (n <= thresholds::eigh_small_max_n) return eigh_small(n, a, n, w, v, n);
  WorkspaceScope scope;
  T* work = scope.alloc<T>(static_cast<std::size_t>(n * n));
  std::copy(a, a + n * n, work);
  return eigh(n, work, n, w, v, n, max_threads);
}

template <class T>
void eigh_range(std::int64_t n, std::int64_t count, const T* a, T* w, T* v, std::int64_t* info,
                const bool* skip) {
  const auto one = [&](std::int64_t i) {
    if (skip != nullptr && skip[i]) return;
    info[i] = eigh_of_copy(n, a + i * n * n, w + i * n, v != nullptr ? v + i * n * n : nullptr, 1);
  };
  if (n > thresholds::eigh_small_max_n || n < 2) {
    for (std::int64_t i = 0; i < count; ++i) one(i);
    return;
  }
  // The matrices stream through `slots` slots; a slot whose matrix has
  // converged takes the next, so that up to the range's end `slots`
  // sweeps always run together.
  constexpr int slots = 4;
  struct Slot {
    std::int64_t index = -1;  // -1: empty
    Arrays<T> x;
    T scale;
    std::optional<RowRotations<T>> rot;
    QlProblem<T> ql;
    Sweep<T> sweep;
  };
  WorkspaceScope scope;
  Slot slot[slots];
  for (Slot& sl : slot) {
    sl.x = allocate<T>(n, v != nullptr, scope);
    sl.rot.emplace(sl.x.zt, n, n, sl.x.ldz, 1);  // once: its buffer is a heap allocation
  }
  std::int64_t next_index = 0;
  // The slot's matrix, its QL done: rotations flushed, results out.
  const auto retire = [&](Slot& sl) {
    const std::int64_t i = sl.index;
    sl.rot->flush();
    info[i] = sl.ql.info;
    WorkspaceScope inner;
    if (info[i] == 0)
      finish(n, sl.x.d, sl.scale, sl.x.zt, sl.x.ldz, w + i * n,
             v != nullptr ? v + i * n * n : nullptr, n, inner);
    sl.index = -1;
  };
  // Retires the slot's matrix (if any) and loads the next that needs sweeps.
  const auto refill = [&](Slot& sl) {
    if (sl.index >= 0) retire(sl);
    while (next_index < count) {
      const std::int64_t i = next_index++;
      if (skip != nullptr && skip[i]) continue;
      sl.scale = prepare_small(n, a + i * n * n, n, sl.x);
      sl.ql = QlProblem<T>{n, sl.x.d, sl.x.e, &*sl.rot};
      sl.index = i;
      if (sl.ql.next(sl.sweep)) return;
      retire(sl);  // converged without a sweep (diagonal)
    }
  };
  for (Slot& sl : slot) refill(sl);
  for (;;) {
    Sweep<T>* act[slots];
    int k = 0;
    for (Slot& sl : slot)
      if (sl.index >= 0) act[k++] = &sl.sweep;
    switch (k) {
      case 0: return;
      case 1: sweep_group(act[0]); break;
      case 2: sweep_group(act[0], act[1]); break;
      case 3: sweep_group(act[0], act[1], act[2]); break;
      default: sweep_group(act[0], act[1], act[2], act[3]); break;
    }
    for (Slot& sl : slot)
      if (sl.index >= 0 && sl.sweep.done()) refill(sl);
  }
}

template std::int64_t eigh<float>(std::int64_t, float*, std::int64_t, float*, float*,
                                  std::int64_t, int);
template std::int64_t eigh<double>(std::int64_t, double*, std::int64_t, double*, double*,
                                   std::int64_t, int);
template void eigh_range<float>(std::int64_t, std::int64_t, const float*, float*, float*,
                                std::int64_t*, const bool*);
template void eigh_range<double>(std::int64_t, std::int64_t, const double*, double*, double*,
                                 std::int64_t*, const bool*);
template std::int64_t eigh_of_copy<float>(std::int64_t, const float*, float*, float*, int);
template std::int64_t eigh_of_copy<double>(std::int64_t, const double*, double*, double*, int);

}  // namespace matnet::detail
