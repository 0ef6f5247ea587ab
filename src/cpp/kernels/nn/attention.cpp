// Flash attention, forward and backward (matnet/attention.hpp).
//
// Legend: B batch entries (batch x heads), Lq queries, Lk keys, D the
// query/key width, Dv the value width; MR x NR the GEMM microkernel's tile
// (kernels<T>().gemm, ukernel.hpp), BQ x BK the blocks (thresholds.hpp).
// The block products run on the microkernels over L1/L2-resident tiles
// (tile_product); the softmax steps between them are the registry's
// AttentionKernels (vectorised exp).
//
// Forward: one task = (entry, BQ queries), on one thread.
//   pack Q_blk^T as NR-wide B panels (D x NR each), once per task
//   for each block of BK keys (causal: up to the last visible key):
//     S^T (BK x BQ) = scale * K_blk Q_blk^T   A = K rows read in place; S^T
//                                             is written as B panels (BK x NR)
//     S^T += mask, -inf where causal hides a key
//     online softmax down each query column: P^T, alpha, running m and l
//     O^T (Dv x BQ) = alpha o O^T + V_blk^T P^T   A = V^T read in place, B = P^T
//   out = (O^T)^T / l, lse = m + log l.
// The transposed orientation means K and V are never packed (only Q, once
// per task) and the softmax runs down columns: vertical SIMD, no horizontal
// reductions.
//
// Backward (flash-attention-2): one task = (entry, range of key blocks).
//   Dsum_i = rowsum(dO o O) over the entry's queries
//   for each key block: pack K^T and V^T (panels over keys), K (panels over D)
//     for each query block (causal: from the first that sees the block):
//       pack Q and dO (panels over D and Dv)
//       S = scale Q K^T + mask, dP = dO V^T        A = Q, dO rows in place
//       P = exp(S - lse), dS = P o (dP - Dsum)     (softmax_grad_row)
//       dV += P^T dO, dK += scale dS^T Q            A = P, dS columns in place
//       dQ += scale dS K                           the task's dQ accumulator
// An entry's keys are split over several tasks only when there are fewer
// than two entries per thread; each such task then writes its dQ to a
// partial of its own, summed after the region. Scratch comes from the workspace, per
// thread, laid out before the regions. No buffer is L x L.
//
// Padding: every buffer a microkernel writes has whole MR x NR tiles; Q and
// K are packed zero-padded, so padded scores are 0 (finite) and the softmax
// steps only ever see the real rows and columns.
#include "matnet/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

using detail::GemmKernel;
using i64 = std::int64_t;

i64 ceil_div(i64 x, i64 m) { return (x + m - 1) / m; }
i64 round_up(i64 x, i64 m) { return ceil_div(x, m) * m; }

/// n elements rounded up to whole 64-byte lines: buffers carved one after the
/// other from an aligned allocation stay aligned (B panels must be).
template <class T>
i64 lines(i64 n) {
  return round_up(n, 64 / static_cast<i64>(sizeof(T)));
}

/// C = alpha * op(A) * B + beta * C by MR x NR tiles. op(A) is m x k: A
/// row-major with leading dimension lda, or A^T when trans_a (A stored
/// k x m). B is np packed panels (k x NR each) panel_stride apart. Tile
/// (i0, jp) of C is at c + i0 * ldc + jp * c_panel; rows up to
/// round_up(m, MR) and np * NR columns are written, so C must have them.
/// Whole MR-row tiles read A in place when the ISA has direct-A kernels;
/// the rest are packed into apack (MR x k), and run on the ISA's tail kernel
/// (mr_tail rows) when they fit it.
template <class T>
void tile_product(const GemmKernel<T>& g, T* apack, i64 m, i64 k, i64 np, T alpha, const T* a,
                  i64 lda, bool trans_a, const T* b, i64 panel_stride, T beta, T* c, i64 ldc,
                  i64 c_panel) {
  const auto direct = trans_a ? g.ukernel_a_cols : g.ukernel_a_rows;
  for (i64 i0 = 0; i0 < m; i0 += g.mr) {
    const i64 rows = std::min<i64>(g.mr, m - i0);
    const bool in_place = direct != nullptr && rows == g.mr;
    const bool tail = !in_place && g.ukernel_tail != nullptr && rows <= g.mr_tail;
    if (!in_place) g.pack_a(a, lda, trans_a, i0, 0, rows, k, tail ? g.mr_tail : g.mr, apack);
    const T* at = trans_a ? a + i0 : a + i0 * lda;
    for (i64 jp = 0; jp < np; ++jp) {
      T* ct = c + i0 * ldc + jp * c_panel;
      const T* bp = b + jp * panel_stride;
      if (in_place) direct(k, alpha, at, lda, bp, beta, ct, ldc);
      else if (tail) g.ukernel_tail(k, alpha, apack, bp, beta, ct, ldc);
      else g.ukernel(k, alpha, apack, bp, beta, ct, ldc);
    }
  }
}

/// Adds the mask of entry b to a block of scores (queries [q0, q0 + qn) x
/// keys [k0, k0 + kn)) and sets -inf where causal hides the key; score
/// (i, j) of the block is at(i, j).
template <class T, class At>
void mask_block(const AttentionMask<T>& mask, bool causal, i64 b, i64 q0, i64 qn, i64 k0, i64 kn,
                At&& at) {
  if (mask.data != nullptr) {
    const T* mb = mask.data + (mask.offsets != nullptr ? mask.offsets[b] : 0);
    for (i64 i = 0; i < qn; ++i) {
      const T* row = mb + (q0 + i) * mask.row_stride + k0 * mask.col_stride;
      for (i64 j = 0; j < kn; ++j) at(i, j) += row[j * mask.col_stride];
    }
  }
  if (causal) {
    for (i64 i = 0; i < qn; ++i)
      for (i64 j = std::max<i64>(0, q0 + i + 1 - k0); j < kn; ++j)
        at(i, j) = -std::numeric_limits<T>::infinity();
  }
}

/// Threads for an attention of this many multiply-adds out of a budget.
int attention_threads(double flops, int budget) {
  return flops < detail::thresholds::attention_parallel_min_flops ? 1 : std::max(budget, 1);
}

template <class T>
void forward_impl(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionMask<T>& mask,
                  i64 batch, i64 lq, i64 lk, i64 d, i64 dv, T scale, bool causal,
                  int max_threads) {
  const auto& ks = detail::kernels<T>();
  const GemmKernel<T>& g = *ks.gemm;
  const auto& ak = *ks.attention;
  const i64 MR = g.mr, NR = g.nr;
  const i64 bq = round_up(std::min(detail::thresholds::attention_block_q, std::max<i64>(lq, 1)), NR);
  const i64 bk = round_up(std::min(detail::thresholds::attention_block_k, std::max<i64>(lk, 1)), MR);
  const i64 nqb = ceil_div(lq, bq), tasks = batch * nqb;
  // Per thread: Q^T panels, S^T panels, O^T, an A panel, m, l, alpha.
  const i64 sz_qt = lines<T>(bq * d), sz_st = lines<T>(bk * bq);
  const i64 sz_ot = lines<T>(round_up(dv, MR) * bq), sz_ap = lines<T>(MR * std::max(d, bk));
  const i64 per = sz_qt + sz_st + sz_ot + sz_ap + 3 * lines<T>(bq);
  const int nt = attention_threads(double(batch) * lq * lk * (d + dv), max_threads);
  detail::WorkspaceScope scope;
  T* scratch = scope.alloc<T>(static_cast<std::size_t>(per * detail::parts_for(tasks, nt)));
  detail::parallel_tasks(tasks, nt, [&](int th, i64 t) {
    T* qt = scratch + th * per;
    T* st = qt + sz_qt;
    T* ot = st + sz_st;
    T* ap = ot + sz_ot;
    T* m = ap + sz_ap;
    T* l = m + lines<T>(bq);
    T* alpha = l + lines<T>(bq);
    const i64 b = t / nqb, q0 = (t % nqb) * bq, qn = std::min(bq, lq - q0);
    const i64 np = ceil_div(qn, NR);
    const T* qb = q + b * lq * d;
    const T* kb = k + b * lk * d;
    const T* vb = v + b * lk * dv;
    for (i64 jp = 0; jp < np; ++jp)
      g.pack_b(qb, d, true, 0, q0 + jp * NR, d, static_cast<int>(std::min(NR, qn - jp * NR)),
               static_cast<int>(NR), qt + jp * d * NR);
    std::fill(m, m + np * NR, -std::numeric_limits<T>::infinity());
    std::fill(l, l + np * NR, T(0));
    const i64 kend = causal ? std::min(lk, q0 + qn) : lk;
    bool first = true;
    for (i64 k0 = 0; k0 < kend; k0 += bk) {
      const i64 kn = std::min(bk, kend - k0);
      tile_product(g, ap, kn, d, np, scale, kb + k0 * d, d, false, qt, d * NR, T(0), st, NR,
                   bk * NR);
      if (mask.data != nullptr || (causal && k0 + kn - 1 > q0)) {
        mask_block(mask, causal, b, q0, qn, k0, kn,
                   [&](i64 i, i64 j) -> T& { return st[(i / NR) * bk * NR + j * NR + i % NR]; });
      }
      for (i64 jp = 0; jp < np; ++jp)
        ak.softmax_panel(st + jp * bk * NR, kn, static_cast<int>(NR), m + jp * NR, l + jp * NR,
                         alpha + jp * NR);
      if (!first) {
        for (i64 i = 0; i < dv; ++i) {
          T* row = ot + i * bq;
          for (i64 j = 0; j < np * NR; ++j) row[j] *= alpha[j];
        }
      }
      tile_product(g, ap, dv, kn, np, T(1), vb + k0 * dv, dv, true, st, bk * NR,
                   first ? T(0) : T(1), ot, bq, NR);
      first = false;
    }
    for (i64 j = 0; j < qn; ++j) {
      // No key attended: out 0, lse -inf (a NaN sum stays NaN).
      const bool none = first || l[j] == T(0);
      const T inv = none ? T(0) : T(1) / l[j];
      if (lse != nullptr)
        lse[b * lq + q0 + j] = none ? -std::numeric_limits<T>::infinity() : m[j] + std::log(l[j]);
      T* orow = out + (b * lq + q0 + j) * dv;
      for (i64 i = 0; i < dv; ++i) orow[i] = none ? T(0) : ot[i * bq + j] * inv;
    }
  });
}

template <class T>
void backward_impl(T* dq, T* dk, T* dv, const T* go, const T* q, const T* k, const T* v,
                   const T* o, const T* lse, const AttentionMask<T>& mask, i64 batch, i64 lq,
                   i64 lk, i64 d, i64 dvw, T scale, bool causal, int max_threads) {
  const auto& ks = detail::kernels<T>();
  const GemmKernel<T>& g = *ks.gemm;
  const auto& ak = *ks.attention;
  const i64 MR = g.mr, NR = g.nr, tile = std::lcm(MR, NR);
  const i64 bk =
      round_up(std::min(detail::thresholds::attention_backward_block_k, std::max<i64>(lk, 1)), tile);
  const i64 bq = round_up(std::min(detail::thresholds::attention_block_q, std::max<i64>(lq, 1)), MR);
  const i64 nkb = ceil_div(lk, bk), nqb = ceil_div(lq, bq);
  const i64 d_pn = round_up(d, NR), dv_pn = round_up(dvw, NR);
  const int nt = attention_threads(2.5 * batch * lq * lk * (d + dvw), max_threads);
  // Key chunks per entry: enough tasks for at least two per thread (3 entries
  // on 2 threads: 6 tasks, not 3), each extra chunk costing one partial dQ.
  const i64 chunks =
      (batch >= 2 * nt || nkb <= 1) ? 1 : std::min<i64>(nkb, ceil_div(2 * nt, batch));
  const i64 tasks = batch * chunks;
  // Per thread: K^T, V^T, K panels; Q, dO panels; S/P and dP/dS; dK, dV and
  // dQ accumulators; Dsum; an A panel.
  const i64 sz_kt = lines<T>(bk * d), sz_vt = lines<T>(bk * dvw), sz_kp = lines<T>(bk * d_pn);
  const i64 sz_qp = lines<T>(bq * d_pn), sz_dop = lines<T>(bq * dv_pn), sz_s = lines<T>(bq * bk);
  const i64 sz_dk = lines<T>(bk * d_pn), sz_dv = lines<T>(bk * dv_pn);
  const i64 sz_dq = lines<T>(nqb * bq * d_pn), sz_dsum = lines<T>(lq);
  const i64 sz_ap = lines<T>(MR * std::max({d, dvw, bk, bq}));
  const i64 per = sz_kt + sz_vt + sz_kp + sz_qp + sz_dop + 2 * sz_s + sz_dk + sz_dv + sz_dq +
                  sz_dsum + sz_ap;
  detail::WorkspaceScope scope;
  T* scratch = scope.alloc<T>(static_cast<std::size_t>(per * detail::parts_for(tasks, nt)));
  T* partial = chunks > 1 ? scope.alloc<T>(static_cast<std::size_t>(tasks * lq * d)) : nullptr;
  detail::parallel_tasks(tasks, nt, [&](int th, i64 t) {
    T* kt = scratch + th * per;
    T* vt = kt + sz_kt;
    T* kp = vt + sz_vt;
    T* qp = kp + sz_kp;
    T* dop = qp + sz_qp;
    T* s = dop + sz_dop;
    T* dp = s + sz_s;
    T* dk_acc = dp + sz_s;
    T* dv_acc = dk_acc + sz_dk;
    T* dq_acc = dv_acc + sz_dv;
    T* dsum = dq_acc + sz_dq;
    T* ap = dsum + sz_dsum;
    const i64 b = t / chunks, c = t % chunks;
    const T* qb = q + b * lq * d;
    const T* kb = k + b * lk * d;
    const T* vb = v + b * lk * dvw;
    const T* gob = go + b * lq * dvw;
    const T* ob = o + b * lq * dvw;
    const T* lseb = lse + b * lq;
    for (i64 i = 0; i < lq; ++i)
      dsum[i] = static_cast<T>(ks.eltwise->dot(gob + i * dvw, ob + i * dvw, dvw));
    std::fill(dq_acc, dq_acc + nqb * bq * d_pn, T(0));
    for (i64 kbi = nkb * c / chunks; kbi < nkb * (c + 1) / chunks; ++kbi) {
      const i64 k0 = kbi * bk, kn = std::min(bk, lk - k0), nkp = ceil_div(kn, NR);
      for (i64 jp = 0; jp < nkp; ++jp) {
        const int valid = static_cast<int>(std::min(NR, kn - jp * NR));
        g.pack_b(kb, d, true, 0, k0 + jp * NR, d, valid, static_cast<int>(NR), kt + jp * d * NR);
        g.pack_b(vb, dvw, true, 0, k0 + jp * NR, dvw, valid, static_cast<int>(NR),
                 vt + jp * dvw * NR);
      }
      for (i64 jp = 0; jp < d_pn / NR; ++jp)
        g.pack_b(kb, d, false, k0, jp * NR, kn, static_cast<int>(std::min(NR, d - jp * NR)),
                 static_cast<int>(NR), kp + jp * bk * NR);
      std::fill(dk_acc, dk_acc + bk * d_pn, T(0));
      std::fill(dv_acc, dv_acc + bk * dv_pn, T(0));
      for (i64 qbi = causal ? k0 / bq : 0; qbi < nqb; ++qbi) {
        const i64 q0 = qbi * bq, qn = std::min(bq, lq - q0);
        for (i64 jp = 0; jp < d_pn / NR; ++jp)
          g.pack_b(qb, d, false, q0, jp * NR, qn, static_cast<int>(std::min(NR, d - jp * NR)),
                   static_cast<int>(NR), qp + jp * bq * NR);
        for (i64 jp = 0; jp < dv_pn / NR; ++jp)
          g.pack_b(gob, dvw, false, q0, jp * NR, qn,
                   static_cast<int>(std::min(NR, dvw - jp * NR)), static_cast<int>(NR),
                   dop + jp * bq * NR);
        tile_product(g, ap, qn, d, nkp, scale, qb + q0 * d, d, false, kt, d * NR, T(0), s, bk, NR);
        if (mask.data != nullptr || (causal && k0 + kn - 1 > q0))
          mask_block(mask, causal, b, q0, qn, k0, kn, [&](i64 i, i64 j) -> T& { return s[i * bk + j]; });
        tile_product(g, ap, qn, dvw, nkp, T(1), gob + q0 * dvw, dvw, false, vt, dvw * NR, T(0), dp,
                     bk, NR);
        for (i64 i = 0; i < qn; ++i)
          ak.softmax_grad_row(s + i * bk, dp + i * bk, kn, lseb[q0 + i], dsum[q0 + i]);
        tile_product(g, ap, kn, qn, dv_pn / NR, T(1), s, bk, true, dop, bq * NR, T(1), dv_acc,
                     dv_pn, NR);
        tile_product(g, ap, kn, qn, d_pn / NR, scale, dp, bk, true, qp, bq * NR, T(1), dk_acc,
                     d_pn, NR);
        tile_product(g, ap, qn, kn, d_pn / NR, scale, dp, bk, false, kp, bk * NR, T(1),
                     dq_acc + q0 * d_pn, d_pn, NR);
      }
      for (i64 r = 0; r < kn; ++r) {
        std::copy(dk_acc + r * d_pn, dk_acc + r * d_pn + d, dk + (b * lk + k0 + r) * d);
        std::copy(dv_acc + r * dv_pn, dv_acc + r * dv_pn + dvw, dv + (b * lk + k0 + r) * dvw);
      }
    }
    T* dst = chunks == 1 ? dq + b * lq * d : partial + t * lq * d;
    for (i64 i = 0; i < lq; ++i) std::copy(dq_acc + i * d_pn, dq_acc + i * d_pn + d, dst + i * d);
  });
  if (chunks > 1) {
    const i64 n = lq * d;
    for (i64 b = 0; b < batch; ++b) {
      T* dst = dq + b * n;
      const T* src = partial + b * chunks * n;
      std::copy(src, src + n, dst);
      for (i64 c = 1; c < chunks; ++c)
        for (i64 i = 0; i < n; ++i) dst[i] += src[c * n + i];
    }
  }
}

template <class T>
void check_common(const char* fn, const T* q, const T* k, const T* v, i64 batch, i64 lq, i64 lk,
                  i64 d, i64 dv) {
  detail::require_size(fn, "batch", batch);
  detail::require_size(fn, "lq", lq);
  detail::require_size(fn, "lk", lk);
  detail::require_size(fn, "d", d);
  detail::require_size(fn, "dv", dv);
  if (batch * lq * d > 0) detail::require_ptr(fn, "q", q);
  if (batch * lk * d > 0) detail::require_ptr(fn, "k", k);
  if (batch * lk * dv > 0) detail::require_ptr(fn, "v", v);
}

template <class T>
void forward_entry(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionMask<T>& mask,
                   i64 batch, i64 lq, i64 lk, i64 d, i64 dv, T scale, bool causal) {
  const char* fn = "attention_forward";
  check_common(fn, q, k, v, batch, lq, lk, d, dv);
  if (batch * lq * dv > 0) detail::require_ptr(fn, "out", out);
  forward_impl(out, lse, q, k, v, mask, batch, lq, lk, d, dv, scale, causal, get_num_threads());
}

template <class T>
void backward_entry(T* dq, T* dk, T* dv, const T* go, const T* q, const T* k, const T* v,
                    const T* o, const T* lse, const AttentionMask<T>& mask, i64 batch, i64 lq,
                    i64 lk, i64 d, i64 dvw, T scale, bool causal) {
  const char* fn = "attention_backward";
  check_common(fn, q, k, v, batch, lq, lk, d, dvw);
  if (batch * lq * d > 0) detail::require_ptr(fn, "dq", dq);
  if (batch * lk * d > 0) detail::require_ptr(fn, "dk", dk);
  if (batch * lk * dvw > 0) detail::require_ptr(fn, "dv", dv);
  if (batch * lq * dvw > 0) {
    detail::require_ptr(fn, "grad_out", go);
    detail::require_ptr(fn, "out", o);
  }
  if (batch * lq > 0) detail::require_ptr(fn, "lse", lse);
  backward_impl(dq, dk, dv, go, q, k, v, o, lse, mask, batch, lq, lk, d, dvw, scale, causal,
                get_num_threads());
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionMask<float>& mask, std::int64_t batch, std::int64_t lq,
                       std::int64_t lk, std::int64_t d, std::int64_t dv, float scale, bool causal) {
  forward_entry(out, lse, q, k, v, mask, batch, lq, lk, d, dv, scale, causal);
}

void attention_forward(double* out, double* lse, const double* q, const double* k,
                       const double* v, const AttentionMask<double>& mask, std::int64_t batch,
                       std::int64_t lq, std::int64_t lk, std::int64_t d, std::int64_t dv,
                       double scale, bool causal) {
  forward_entry(out, lse, q, k, v, mask, batch, lq, lk, d, dv, scale, causal);
}

void attention_backward(float* dq, float* dk, float* dv, const float* grad_out, const float* q,
                        const float* k, const float* v, const float* out, const float* lse,
                        const AttentionMask<float>& mask, std::int64_t batch, std::int64_t lq,
                        std::int64_t lk, std::int64_t d, std::int64_t dv_width, float scale,
                        bool causal) {
  backward_entry(dq, dk, dv, grad_out, q, k, v, out, lse, mask, batch, lq, lk, d, dv_width, scale,
                 causal);
}

void attention_backward(double* dq, double* dk, double* dv, const double* grad_out,
                        const double* q, const double* k, const double* v, const double* out,
                        const double* lse, const AttentionMask<double>& mask, std::int64_t batch,
                        std::int64_t lq, std::int64_t lk, std::int64_t d, std::int64_t dv_width,
                        double scale, bool causal) {
  backward_entry(dq, dk, dv, grad_out, q, k, v, out, lse, mask, batch, lq, lk, d, dv_width, scale,
                 causal);
}

}  // namespace matnet
