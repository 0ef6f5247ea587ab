// The body of the small tridiagonalisation kernels (small_tridiag.hpp),
// written once over GCC/Clang vector extensions: each small_tridiag_<isa>.cpp
// includes it and instantiates it with its vector width, and its compile
// flags pick the instructions. Everything here has internal linkage, so the
// copies compiled for different ISAs never meet at link time (hence no
// std::max, std::hypot: library templates and calls could be shared).
//
// Layout: W (n x ld, ld = small_tridiag_ld(n), a whole number of vectors)
// holds s A, both triangles, zero in the padding columns [n, ld). Step k
// reads and writes only the vectors from column c0 = (k + 1) rounded down to
// the vector width: the reflector v and w of the step are zero left of
// column k + 1 and in the padding, so the columns of those vectors left of
// the trailing block (where W holds stale entries) take exact zero updates
// and are never read into a result. That wastes up to one vector per row
// and saves every masked edge.
//
// Step k (k < n - 2), the DSYTD2 recurrence:
//   v, tau, beta from row k (DLARFG; v[k + 1] = 1), d[k] = W[k][k], e[k] = beta;
//   p = tau A22 v        (A22 = W[k + 1:, k + 1:]; by symmetry sum_i v_i row_i)
//   w = p - (tau / 2)(p . v) v
//   A22 -= v w^T + w v^T (every row: the sums above read whole rows)
// The reflectors stay in W's rows (v of step k in row k, from column k + 2).
// Q = H_0 ... H_{n-3} is then formed backwards into Q (n x ld) from I
// (DORG2R: H_j touches only rows and columns j + 1.., the rest still I):
//   y = v^T Q[j + 1:, :] (sum_i v_i row_i), Q[i] -= tau v_i y,
// two reflectors per pass (form_q), and transposed into zt.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "core/thresholds.hpp"
#include "linalg/factor.hpp"
#include "linalg/small_tridiag.hpp"
#include "simd/gcc_vec.hpp"

namespace matnet::detail {

namespace {

template <class T, int L>
struct SmallTridiag : GccVec<T, L> {
  using Vec = GccVec<T, L>;
  using typename Vec::V;
  using Vec::load;
  using Vec::store;
  using Vec::splat;
  using Vec::vabs;

  // Row blocks of up to this many vectors are kept in registers (8 zmm of
  // accumulators with the two row streams below, plus v and w's blocks).
  static constexpr int block = 4;

  /// Column indices c, c + 1, ... as T (compared against column bounds).
  template <std::size_t... I>
  static constexpr V iota(std::index_sequence<I...>) {
    return V{static_cast<T>(I)...};
  }
  static V columns(std::int64_t c) {
    return iota(std::make_index_sequence<L>{}) + static_cast<T>(c);
  }
  static T sum(V v) {
    T s = v[0];
    for (int k = 1; k < L; ++k) s += v[k];
    return s;
  }
  static T max(V v) {
    T s = v[0];
    for (int k = 1; k < L; ++k) s = v[k] > s ? v[k] : s;
    return s;
  }
  /// sqrt(a^2 + b^2) without undue overflow or underflow (DLAPY2).
  static T hypot(T a, T b) {
    const T x = a < T(0) ? -a : a, y = b < T(0) ? -b : b;
    const T big = x > y ? x : y, small = x > y ? y : x;
    if (big == T(0)) return T(0);
    const T r = small / big;
    return big * std::sqrt(T(1) + r * r);
  }

  /// f(integral_constant<int, NB>, c) for the blocks of NB <= block vectors
  /// that cover columns [c0, ld).
  template <class F>
  static void blocks(std::int64_t c0, std::int64_t ld, F&& f) {
    for (std::int64_t c = c0; c < ld; c += block * L) {
      switch ((ld - c) / L) {
        case 1: f(std::integral_constant<int, 1>{}, c); break;
        case 2: f(std::integral_constant<int, 2>{}, c); break;
        case 3: f(std::integral_constant<int, 3>{}, c); break;
        default: f(std::integral_constant<int, block>{}, c); break;
      }
    }
  }

  /// out[c, c + NB L) = sum_{i in [r0, r1)} f[i] x[i][c, c + NB L) (row
  /// stride ld), and out2 the same with g when g is not null, in one pass.
  /// With one sum, two row streams: each accumulator's chain of
  /// multiply-adds then waits on every other row only.
  template <int NB>
  static void rows_combination(std::int64_t r0, std::int64_t r1, const T* f, const T* g,
                               const T* x, std::int64_t ld, std::int64_t c, T* out, T* out2) {
    V s0[NB] = {}, s1[NB] = {};
    std::int64_t i = r0;
    if (g != nullptr) {
      for (; i < r1; ++i) {
        const V fi = splat(f[i]), gi = splat(g[i]);
        const T* xi = x + i * ld + c;
        for (int u = 0; u < NB; ++u) {
          const V xu = load(xi + u * L);
          s0[u] += fi * xu;
          s1[u] += gi * xu;
        }
      }
      for (int u = 0; u < NB; ++u) {
        store(out + c + u * L, s0[u]);
        store(out2 + c + u * L, s1[u]);
      }
      return;
    }
    for (; i + 1 < r1; i += 2) {
      const V f0 = splat(f[i]), f1 = splat(f[i + 1]);
      const T* x0 = x + i * ld + c;
      for (int u = 0; u < NB; ++u) {
        s0[u] += f0 * load(x0 + u * L);
        s1[u] += f1 * load(x0 + ld + u * L);
      }
    }
    if (i < r1) {
      const V f0 = splat(f[i]);
      for (int u = 0; u < NB; ++u) s0[u] += f0 * load(x + i * ld + c + u * L);
    }
    for (int u = 0; u < NB; ++u) store(out + c + u * L, s0[u] + s1[u]);
  }

  /// x[i][c, c + NB L) -= f[i] y + g[i] z over rows [r0, r1) (z, g null:
  /// the rank-1 form), y and z taken at columns [c, c + NB L).
  template <int NB>
  static void rows_update(std::int64_t r0, std::int64_t r1, const T* f, const T* y, const T* g,
                          const T* z, T* x, std::int64_t ld, std::int64_t c) {
    V vy[NB], vz[NB];
    for (int u = 0; u < NB; ++u) {
      vy[u] = load(y + c + u * L);
      vz[u] = z != nullptr ? load(z + c + u * L) : V{};
    }
    for (std::int64_t i = r0; i < r1; ++i) {
      T* xi = x + i * ld + c;
      const V fi = splat(f[i]);
      if (z != nullptr) {
        const V gi = splat(g[i]);
        for (int u = 0; u < NB; ++u) store(xi + u * L, load(xi + u * L) - fi * vy[u] - gi * vz[u]);
      } else {
        for (int u = 0; u < NB; ++u) store(xi + u * L, load(xi + u * L) - fi * vy[u]);
      }
    }
  }

  /// Step k of the reduction (see the top of the file). v, p: ld elements
  /// of scratch each.
  static void step(std::int64_t n, std::int64_t ld, std::int64_t k, T* w, T* d, T* e, T* tau,
                   T* v, T* p) {
    T* wk = w + k * ld;
    const std::int64_t c0 = (k + 1) / L * L;
    d[k] = wk[k];
    const T alpha = wk[k + 1];
    // x = row k's entries from column k + 2 (DLARFG's x[1:]); its norm,
    // from the sum of squares as it is when that cannot underflow (every
    // entry that matters squared is normal) or overflow, scaled otherwise.
    const V first = splat(T(k + 2));
    V vmax{};
    for (std::int64_t c = c0; c < ld; c += L) {
      const V x = columns(c) >= first ? load(wk + c) : V{};
      vmax = vabs(x) > vmax ? vabs(x) : vmax;
    }
    const T amax = max(vmax);
    if (amax == T(0)) {  // H = I: nothing to reduce
      tau[k] = 0;
      e[k] = alpha;
      return;
    }
    const T lo = std::sqrt(std::numeric_limits<T>::min()) / std::numeric_limits<T>::epsilon();
    const T hi = std::sqrt(std::numeric_limits<T>::max()) / T(thresholds::eigh_small_max_n);
    const bool direct = amax >= lo && amax <= hi;
    const V r = splat(direct ? T(1) : T(1) / amax);
    V ss{};
    for (std::int64_t c = c0; c < ld; c += L) {
      const V x = (columns(c) >= first ? load(wk + c) : V{}) * r;
      ss += x * x;
    }
    // beta = -sign(alpha) sqrt(alpha^2 + |x|^2), straight from the sum of
    // squares when that is unscaled (one sqrt on the step's dependency
    // chain): alpha^2 cannot overflow (|alpha| <= n max |s A|, in
    // eigh_scale's range) and, with |x| >= lo, its underflow changes
    // nothing at working precision.
    const T beta = -std::copysign(
        direct ? std::sqrt(alpha * alpha + sum(ss)) : hypot(alpha, amax * std::sqrt(sum(ss))), alpha);
    const T t = (beta - alpha) / beta;
    const V scale = splat(T(1) / (alpha - beta));
    // v (0 left of column k + 1, 1 there, x / (alpha - beta) right of it),
    // also kept in row k from column k + 2 for forming Q.
    const V unit = splat(T(k + 1));
    for (std::int64_t c = c0; c < ld; c += L) {
      const V col = columns(c), x = load(wk + c);
      const V vc = col >= first ? x * scale : (col == unit ? splat(T(1)) : V{});
      store(v + c, vc);
      store(wk + c, col >= first ? vc : x);
    }
    e[k] = beta;
    tau[k] = t;
    // p = tau A22 v over the vectors from c0 (columns left of k + 1 zeroed:
    // the rows hold stale entries there), then w = p - (tau/2)(p . v) v.
    blocks(c0, ld, [&](auto nb, std::int64_t c) {
      rows_combination<decltype(nb)::value>(k + 1, n, v, nullptr, w, ld, c, p, nullptr);
    });
    const V ts = splat(t);
    V pv{};
    for (std::int64_t c = c0; c < ld; c += L) {
      const V pc = columns(c) >= unit ? ts * load(p + c) : V{};
      store(p + c, pc);
      pv += pc * load(v + c);
    }
    const V half = splat(T(-0.5) * t * sum(pv));
    for (std::int64_t c = c0; c < ld; c += L) store(p + c, load(p + c) + half * load(v + c));
    blocks(c0, ld, [&](auto nb, std::int64_t c) {
      rows_update<decltype(nb)::value>(k + 1, n, v, p, p, v, w, ld, c);
    });
  }

  /// Reflector j (unit entry at column j + 1, the rest from w's row j) as
  /// whole vectors from column c0 into v, and tau_j v into f.
  static void reflector(std::int64_t j, std::int64_t c0, std::int64_t ld, const T* w, T t, T* v,
                        T* f) {
    const V first = splat(T(j + 2)), unit = splat(T(j + 1)), ts = splat(t);
    const T* wj = w + j * ld;
    for (std::int64_t c = c0; c < ld; c += L) {
      const V col = columns(c);
      const V vc = col >= first ? load(wj + c) : (col == unit ? splat(T(1)) : V{});
      store(v + c, vc);
      store(f + c, ts * vc);
    }
  }

  /// Q = H_0 ... H_{n-3} from the reflectors in w's rows, into q (n x ld);
  /// s: 6 ld elements of scratch. Backwards, two reflectors per pass over
  /// Q (a rank-1 update per pass would store every vector of Q once per
  /// reflector: stores, not multiply-adds, bound it). For H_b H_a Q
  /// (b = j - 1, a = j), with y_a = Q^T v_a and z = Q^T v_b:
  ///   y_b = z - tau_a (v_b . v_a) y_a,  Q -= tau_a v_a y_a^T + tau_b v_b y_b^T.
  /// Rows of Q from j + 1 (from j for H_b) take part; left of column
  /// j + 1 (j) they are still I's, so the sums are zero there.
  static void form_q(std::int64_t n, std::int64_t ld, const T* w, const T* tau, T* q, T* s) {
    T *va = s, *fa = s + ld, *vb = s + 2 * ld, *fb = s + 3 * ld, *ya = s + 4 * ld,
      *yb = s + 5 * ld;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t c = 0; c < ld; c += L) store(q + i * ld + c, V{});
      q[i * ld + i] = T(1);
    }
    std::int64_t j = n - 3;
    for (; j >= 1; j -= 2) {
      const T ta = tau[j], tb = tau[j - 1];
      if (ta == T(0) && tb == T(0)) continue;
      const std::int64_t c0 = j / L * L;
      reflector(j, c0, ld, w, ta, va, fa);
      reflector(j - 1, c0, ld, w, tb, vb, fb);
      V ab{};
      for (std::int64_t c = c0; c < ld; c += L) ab += load(va + c) * load(vb + c);
      blocks(c0, ld, [&](auto nb, std::int64_t c) {
        rows_combination<decltype(nb)::value>(j, n, va, vb, q, ld, c, ya, yb);
      });
      const V g = splat(ta * sum(ab));
      for (std::int64_t c = c0; c < ld; c += L) store(yb + c, load(yb + c) - g * load(ya + c));
      blocks(c0, ld, [&](auto nb, std::int64_t c) {
        rows_update<decltype(nb)::value>(j, n, fa, ya, fb, yb, q, ld, c);
      });
    }
    if (j == 0 && tau[0] != T(0)) {  // an odd count: H_0 alone
      reflector(0, 0, ld, w, tau[0], va, fa);
      blocks(0, ld, [&](auto nb, std::int64_t c) {
        rows_combination<decltype(nb)::value>(1, n, va, nullptr, q, ld, c, ya, nullptr);
      });
      blocks(0, ld, [&](auto nb, std::int64_t c) {
        rows_update<decltype(nb)::value>(1, n, fa, ya, nullptr, nullptr, q, ld, c);
      });
    }
  }

  static T reduce(std::int64_t n, const T* a, std::int64_t lda, T* d, T* e, T* zt,
                  std::int64_t ldz, T* work) {
    const std::int64_t ld = small_tridiag_ld<T>(n);
    T* w = work;           // n x ld: s A, then the reflectors
    T* q = w + n * ld;     // n x ld: Q
    T* s6 = q + n * ld;    // 6 ld: vectors of a step
    T* tau = s6 + 6 * ld;  // n
    // Both triangles from the lower one, the padding zero; its largest
    // entry. a is read row by row (its first touch, often from memory: a
    // column read would miss on every row), W's upper triangle written by
    // columns (in L1).
    V vmax{};
    for (std::int64_t i = 0; i < n; ++i) {
      T* wi = w + i * ld;
      const T* ai = a + i * lda;
      for (std::int64_t j = 0; j < i; ++j) wi[j] = w[j * ld + i] = ai[j];
      wi[i] = ai[i];
      for (std::int64_t j = n; j < ld; ++j) wi[j] = T(0);
    }
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t c = 0; c < ld; c += L) {
        const V x = vabs(load(w + i * ld + c));
        vmax = x > vmax ? x : vmax;
      }
    const T s = eigh_scale(max(vmax));
    if (s != T(1)) {
      const V vs = splat(s);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t c = 0; c < ld; c += L) store(w + i * ld + c, vs * load(w + i * ld + c));
    }
    for (std::int64_t k = 0; k + 2 < n; ++k) step(n, ld, k, w, d, e, tau, s6, s6 + ld);
    if (n >= 2) {
      d[n - 2] = w[(n - 2) * ld + n - 2];
      e[n - 2] = w[(n - 2) * ld + n - 1];
    }
    d[n - 1] = w[(n - 1) * ld + n - 1];
    if (zt == nullptr) return s;
    form_q(n, ld, w, tau, q, s6);
    // Q^T, in tiles of 8 x 8 (a column of Q read whole touches a line per entry).
    for (std::int64_t i0 = 0; i0 < n; i0 += 8)
      for (std::int64_t j0 = 0; j0 < n; j0 += 8)
        for (std::int64_t i = i0; i < (i0 + 8 < n ? i0 + 8 : n); ++i)
          for (std::int64_t j = j0; j < (j0 + 8 < n ? j0 + 8 : n); ++j)
            zt[i * ldz + j] = q[j * ld + i];
    return s;
  }

  static SmallTridiagKernels<T> table(const char* name) { return {&reduce, name}; }
};

}  // namespace

}  // namespace matnet::detail
