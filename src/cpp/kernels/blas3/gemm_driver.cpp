// The GEMM driver: blocking, packing and threading around the microkernel.
//
// Assumptions, stated once:
//   - all matrices row-major with unit column stride; op() applied by packing;
//   - each thread owns a rectangle of C (edges on MR/NR boundaries), or, for
//     large products with many row blocks, takes row blocks dynamically; it
//     packs the A rows it works on into its own buffer;
//   - B panels (kc x nc, split into nr-wide micro-panels) are either packed
//     by all threads together into one shared buffer (large products:
//     gemm_shared_b, two barriers per K block) or by each thread for its own
//     columns (small products: gemm_rect, no synchronisation at all); with
//     a single block of A rows, each micro-panel is packed just before its
//     tiles instead (it has no other A block to meet);
//   - the last rows of a block may run on a shorter tail kernel (plan_rows);
//   - K is never split across threads (no reduction of partial C tiles);
//   - block lengths are evened out (k = 784 runs as 4 x 196, not 3 x 256 + 16).
//
// Loop nest (Goto/BLIS), per thread:
//   jc: n in steps of NC          (B panel in L3)
//    pc: k in steps of KC         (rank-KC update; beta applies on the first)
//      [pack B(pc:pc+kc, jc:jc+nc)]
//      ic: own rows in steps of mc (A block in L2)
//        jr: own columns in steps of NR   (B micro-panel in L1)
//          ir: rows of the block in steps of MR  -> microkernel
//            (the epilogue, if any, runs on each tile after the last K block)
#include "blas3/gemm_driver.hpp"

#include <omp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "blas2/gemv_driver.hpp"
#include "blas3/pack.hpp"
#include "blas3/ukernel.hpp"
#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "matnet/errors.hpp"
#include "runtime/registry.hpp"

namespace matnet::detail {

namespace {

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

struct Partition {
  int ways_m, ways_n;
};

/// Splits nt threads into ways_m x ways_n so that the largest per-thread
/// rectangle (in whole MR x NR tiles) is smallest; ties go to splitting m,
/// because then each thread packs only its own A rows.
Partition choose_partition(int nt, std::int64_t m, std::int64_t n, int mr, int nr) {
  const std::int64_t tiles_m = ceil_div(m, mr), tiles_n = ceil_div(n, nr);
  Partition best{1, 1};
  std::int64_t best_cost = -1;
  for (int wm = nt; wm >= 1; --wm) {
    if (nt % wm != 0) continue;
    const int wn = nt / wm;
    if (wm > tiles_m || wn > tiles_n) continue;
    const std::int64_t cost = ceil_div(tiles_m, wm) * mr * ceil_div(tiles_n, wn) * nr;
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {wm, wn};
    }
  }
  return best;
}

/// Start of part `idx` of `parts` when `count` tiles of size `tile` covering
/// `len` elements are dealt out evenly; returns an element offset.
inline std::int64_t split_point(std::int64_t len, int tile, int parts, int idx) {
  const std::int64_t tiles = ceil_div(len, tile);
  const std::int64_t start = (tiles * idx / parts) * tile;
  return std::min(start, len);
}

/// The epilogue over columns [j0, j1) of an m-row C, in mr x nr tiles, for
/// the paths that compute C without the tile loop.
template <class T>
void apply_epilogue(const GemmTileEpilogue<T>* ep, T* c, std::int64_t ldc, std::int64_t m,
                    std::int64_t j0, std::int64_t j1, int mr, int nr) {
  if (ep == nullptr) return;
  for (std::int64_t i = 0; i < m; i += mr)
    for (std::int64_t j = j0; j < j1; j += nr)
      ep->apply(ep->ctx, c + i * ldc + j, ldc, i, j, static_cast<int>(std::min<std::int64_t>(mr, m - i)),
                static_cast<int>(std::min<std::int64_t>(nr, j1 - j)));
}

template <class T>
void scale_c_and_finish(std::int64_t m, std::int64_t n, T beta, T* c, std::int64_t ldc,
                        const GemmTileEpilogue<T>* ep, int mr, int nr) {
  for (std::int64_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      std::fill(ci, ci + n, T(0));
    } else if (beta != T(1)) {
      for (std::int64_t j = 0; j < n; ++j) ci[j] *= beta;
    }
  }
  apply_epilogue(ep, c, ldc, m, 0, n, mr, nr);
}

/// Packs rows [i0, i0+rows) x columns [p0, p0+kc) of op(A) into mr-row
/// panels: the operand's callback, the ISA's packer when A is row- or
/// column-major, else the portable strided one.
template <class T>
void pack_a_op(const GemmKernel<T>& kr, const GemmOperand<T>& a, std::int64_t i0,
               std::int64_t p0, std::int64_t rows, std::int64_t kc, int mr, T* dst) {
  if (a.pack != nullptr) return a.pack(a.ctx, i0, p0, rows, kc, mr, dst);
  if (a.cs == 1) return kr.pack_a(a.data, a.rs, false, i0, p0, rows, kc, mr, dst);
  if (a.rs == 1) return kr.pack_a(a.data, a.cs, true, i0, p0, rows, kc, mr, dst);
  pack_a_strided(a.data, a.rs, a.cs, i0, p0, rows, kc, mr, dst);
}

/// Packs the kc x cols (cols <= nr) micro-panel of op(B) at (p0, j0).
template <class T>
void pack_b_op(const GemmKernel<T>& kr, const GemmOperand<T>& b, std::int64_t p0,
               std::int64_t j0, std::int64_t kc, int cols, T* dst) {
  if (b.pack != nullptr) return b.pack(b.ctx, p0, j0, kc, cols, kr.nr, dst);
  if (b.cs == 1) return kr.pack_b(b.data, b.rs, false, p0, j0, kc, cols, kr.nr, dst);
  if (b.rs == 1) return kr.pack_b(b.data, b.cs, true, p0, j0, kc, cols, kr.nr, dst);
  pack_b_strided(b.data, b.rs, b.cs, p0, j0, kc, cols, kr.nr, dst);
}

/// Rows [0, main) of a block of `rows` rows are covered by MR-row tiles (the
/// last one zero-padded if main is not a multiple of MR), rows [main, rows)
/// by mr_tail-row tiles. A tile costs its height whether or not its rows are
/// real, so this picks the cover of least total height: 128 rows as
/// 20 x 6 + 2 x 4 (128) rather than 22 x 6 (132). Ties keep MR tiles only.
template <class T>
std::int64_t plan_rows(const GemmKernel<T>& kr, std::int64_t rows) {
  std::int64_t best = rows, best_cost = round_up(rows, kr.mr);
  if (kr.ukernel_tail == nullptr) return best;
  const std::int64_t whole = rows / kr.mr * kr.mr;
  for (std::int64_t main = whole; main >= 0 && main >= whole - kr.mr; main -= kr.mr) {
    const std::int64_t tail = rows - main;
    if (tail == 0) continue;
    const std::int64_t cost = main + round_up(tail, kr.mr_tail);
    if (cost < best_cost) {
      best = main;
      best_cost = cost;
    }
  }
  return best;
}

/// Packs rows [i0, i0 + rows) of op(A) for columns [p0, p0 + kc) as plan_rows
/// covers them: MR-row panels for the first `main` rows, mr_tail-row panels
/// after. Either way the panel of the tile at row ir starts at dst + ir * kc.
template <class T>
void pack_a_planned(const GemmKernel<T>& kr, const GemmOperand<T>& a, std::int64_t i0,
                    std::int64_t p0, std::int64_t rows, std::int64_t kc, std::int64_t main,
                    T* dst) {
  if (main > 0) pack_a_op(kr, a, i0, p0, main, kc, kr.mr, dst);
  if (main < rows) pack_a_op(kr, a, i0 + main, p0, rows - main, kc, kr.mr_tail, dst + main * kc);
}

/// Walks an mc x nc block of C tile by tile (jr outer, so one packed B
/// micro-panel stays in L1 while the A tiles stream past it); rows as
/// plan_rows set them (MR-row tiles up to `main`, mr_tail-row tiles after).
/// tile(ir, height, jr, beta, dst, ld) computes one height x NR tile into
/// dst; edge tiles go through the scratch tile `tmp` and only their valid
/// part is merged into C. The epilogue runs on each tile after the last K
/// block.
template <class T, class TileFn>
void macro_loop(int mr, int mr_tail, int nr, std::int64_t main, std::int64_t mc, std::int64_t nc,
                T beta, T* c, std::int64_t ldc, T* tmp, bool last,
                const GemmTileEpilogue<T>* ep, std::int64_t i0, std::int64_t j0,
                const TileFn& tile) {
  for (std::int64_t jr = 0; jr < nc; jr += nr) {
    const int cols = static_cast<int>(std::min<std::int64_t>(nr, nc - jr));
    for (std::int64_t ir = 0; ir < mc;) {
      const int height = ir < main ? mr : mr_tail;
      const int rows = static_cast<int>(std::min<std::int64_t>(height, mc - ir));
      T* ct = c + ir * ldc + jr;
      if (rows == height && cols == nr) {
        tile(ir, height, jr, beta, ct, ldc);
      } else {
        tile(ir, height, jr, T(0), tmp, nr);
        for (int i = 0; i < rows; ++i) {
          T* ci = ct + i * ldc;
          const T* ti = tmp + i * nr;
          if (beta == T(0)) {
            for (int j = 0; j < cols; ++j) ci[j] = ti[j];
          } else {
            for (int j = 0; j < cols; ++j) ci[j] = ti[j] + beta * ci[j];
          }
        }
      }
      if (last && ep != nullptr) ep->apply(ep->ctx, ct, ldc, i0 + ir, j0 + jr, rows, cols);
      ir += height;
    }
  }
}

/// The kernel for a packed tile of the given height (MR or mr_tail).
template <class T>
gemm_ukernel_fn<T> packed_kernel(const GemmKernel<T>& kr, int height) {
  return height == kr.mr ? kr.ukernel : kr.ukernel_tail;
}

/// macro_loop over a packed A block (pack_a_planned) and packed B
/// micro-panels; b_at(ir, jr) returns the micro-panel for the tile at (ir, jr).
template <class T, class BPanelFn>
void macro_kernel(const GemmKernel<T>& kr, std::int64_t mc, std::int64_t nc, std::int64_t kc,
                  T alpha, const T* apack, const BPanelFn& b_at, T beta, T* c, std::int64_t ldc,
                  T* tmp, bool last, const GemmTileEpilogue<T>* ep, std::int64_t i0,
                  std::int64_t j0, std::int64_t main) {
  macro_loop(kr.mr, kr.mr_tail, kr.nr, main, mc, nc, beta, c, ldc, tmp, last, ep, i0, j0,
             [&](std::int64_t ir, int height, std::int64_t jr, T b, T* dst, std::int64_t ld) {
               const T* bp = b_at(ir, jr);  // first: it may pack the panel
               packed_kernel(kr, height)(kc, alpha, apack + ir * kc, bp, b, dst, ld);
             });
}

/// The arguments of one gemm_run call.
template <class T>
struct Problem {
  std::int64_t m, n, k;
  T alpha;
  GemmOperand<T> a, b;
  T beta;
  T* c;
  std::int64_t ldc;
  const GemmTileEpilogue<T>* ep;
};

/// A rectangle of C: rows [m0, m1), columns [n0, n1).
struct Rect {
  std::int64_t m0, m1, n0, n1;
};

/// Splits nt threads along one dimension only, for products too small to
/// share a packed B panel (see gemm_rect): along n each thread packs all of
/// A again, along m all of B, so split the dimension whose duplicated
/// operand is smaller, provided it has a tile for every thread.
Partition choose_split(int nt, std::int64_t m, std::int64_t n, int mr, int nr) {
  const bool m_ok = ceil_div(m, mr) >= nt, n_ok = ceil_div(n, nr) >= nt;
  // Duplicated packing: m*k (split n) versus k*n (split m).
  const bool prefer_n = m < n;
  if (prefer_n && n_ok) return {1, nt};
  if (m_ok) return {nt, 1};
  if (n_ok) return {1, nt};
  return choose_partition(nt, m, n, mr, nr);
}

/// Even block length <= cap covering len, a multiple of unit.
inline std::int64_t even_block(std::int64_t len, std::int64_t cap, int unit) {
  const std::int64_t blocks = std::max<std::int64_t>(1, ceil_div(len, cap));
  return std::min<std::int64_t>(round_up(ceil_div(len, blocks), unit), cap);
}

/// One thread computes the rectangle r of C on its own: its own B panel, its
/// own A blocks, no synchronisation. Used alone (1 thread) or by every thread
/// of a small product, where barriers would cost more than the duplicated
/// packing of one operand.
template <class T>
void gemm_rect(const GemmKernel<T>& kr, const Problem<T>& g, std::int64_t kc_blk, const Rect& r,
               T* bpack, T* apack, T* tmp) {
  const int nr = kr.nr;
  const std::int64_t mc = even_block(r.m1 - r.m0, kr.mc, kr.mr);
  const std::int64_t ncb = even_block(r.n1 - r.n0, kr.nc, nr);
  for (std::int64_t jc = r.n0; jc < r.n1; jc += ncb) {
    const std::int64_t nc = std::min(ncb, r.n1 - jc);
    const std::int64_t panels = ceil_div(nc, nr);
    for (std::int64_t pc = 0; pc < g.k; pc += kc_blk) {
      const std::int64_t kc = std::min(kc_blk, g.k - pc);
      const bool last = pc + kc >= g.k;
      const T beta_eff = pc == 0 ? g.beta : T(1);
      // With a single block of A rows each B micro-panel meets one A block
      // only: it is packed right before its tiles, always into the start of
      // bpack, which stays in L1. Packing the whole kc x nc panel first
      // would write it out to L2/L3 and read it back (same-process A/B:
      // 128 x 784 x 256 with B^T +4-6%, batch-32 layer products +7-11%).
      const bool lazy_b = r.m1 - r.m0 <= mc;
      auto pack_b_panel = [&](std::int64_t q, T* dst) {
        const int cols = static_cast<int>(std::min<std::int64_t>(nr, nc - q * nr));
        pack_b_op(kr, g.b, pc, jc + q * nr, kc, cols, dst);
      };
      if (!lazy_b) {
        for (std::int64_t q = 0; q < panels; ++q) pack_b_panel(q, bpack + q * nr * kc);
      }
      // The packed B micro-panel for the tile at (ir, jr); ir == 0 is the
      // first tile of column jr (macro_loop runs jr outer).
      auto b_panel = [&](std::int64_t ir, std::int64_t jr) -> const T* {
        if (!lazy_b) return bpack + jr * kc;
        if (ir == 0) pack_b_panel(jr / nr, bpack);
        return bpack;
      };
      // Each A element meets `panels` B micro-panels: with few of them,
      // packing A would cost about what the multiply does.
      // A is read in place only when it is row- or column-major.
      const bool a_rows = g.a.pack == nullptr && g.a.cs == 1;
      const bool a_cols = g.a.pack == nullptr && !a_rows && g.a.rs == 1;
      const bool direct = kr.ukernel_a_rows != nullptr && (a_rows || a_cols) &&
                          panels <= thresholds::direct_a_max_panels;
      for (std::int64_t ic = r.m0; ic < r.m1; ic += mc) {
        const std::int64_t mcur = std::min(mc, r.m1 - ic);
        const std::int64_t main = plan_rows(kr, mcur);
        T* const cblk = g.c + ic * g.ldc + jc;
        if (!direct) {
          pack_a_planned(kr, g.a, ic, pc, mcur, kc, main, apack);
          macro_kernel(kr, mcur, nc, kc, g.alpha, apack, b_panel, beta_eff, cblk, g.ldc, tmp,
                       last, g.ep, ic, jc, main);
          continue;
        }
        // Full MR-row tiles read A in place; the rows after them (a padded
        // MR panel or mr_tail panels) are packed, from apack on.
        const std::int64_t full = std::min(main, mcur / kr.mr * kr.mr);
        if (full < mcur) {
          pack_a_planned(kr, g.a, ic + full, pc, mcur - full, kc, main - full, apack);
        }
        const auto ukd = a_cols ? kr.ukernel_a_cols : kr.ukernel_a_rows;
        const std::int64_t lda = a_cols ? g.a.cs : g.a.rs;
        macro_loop(kr.mr, kr.mr_tail, nr, main, mcur, nc, beta_eff, cblk, g.ldc, tmp, last, g.ep,
                   ic, jc,
                   [&](std::int64_t ir, int height, std::int64_t jr, T b, T* dst, std::int64_t ld) {
                     const T* bp = b_panel(ir, jr);
                     if (ir < full) {
                       const T* at = g.a.data + (ic + ir) * g.a.rs + pc * g.a.cs;
                       ukd(kc, g.alpha, at, lda, bp, b, dst, ld);
                     } else {
                       packed_kernel(kr, height)(kc, g.alpha, apack + (ir - full) * kc, bp, b,
                                                 dst, ld);
                     }
                   });
      }
    }
  }
}

/// Called by every thread of the team: the B panel is packed by all threads
/// together into one shared buffer, then multiplied by blocks of A rows.
/// With dynamic_rows the row blocks (all of m) are handed out one at a time
/// to whichever thread is free: on a busy machine a thread that loses its
/// core for a while then does less of the work instead of holding up the
/// barrier. Otherwise each thread takes its own rectangle r. Two barriers
/// per K block.
template <class T>
void gemm_shared_b(const GemmKernel<T>& kr, const Problem<T>& g, std::int64_t kc_blk,
                   const Rect& r, bool dynamic_rows, T* bpack, T* apack, T* tmp) {
  const int nr = kr.nr;
  // Dynamic: a multiple of nt row blocks, so that on an idle machine every
  // thread still gets the same share (15 blocks on 2 threads would leave one
  // idle for half a block).
  const int nt = omp_get_num_threads();
  const std::int64_t mc =
      dynamic_rows ? round_up(ceil_div(g.m, round_up(ceil_div(g.m, kr.mc), nt)), kr.mr)
                   : even_block(r.m1 - r.m0, kr.mc, kr.mr);
  const std::int64_t row_blocks = ceil_div(g.m, mc);
  const std::int64_t ncb = even_block(g.n, kr.nc, nr);
  for (std::int64_t jc = 0; jc < g.n; jc += ncb) {
    const std::int64_t nc = std::min(ncb, g.n - jc);
    const std::int64_t panels = ceil_div(nc, nr);
    for (std::int64_t pc = 0; pc < g.k; pc += kc_blk) {
      const std::int64_t kc = std::min(kc_blk, g.k - pc);
      const bool last = pc + kc >= g.k;
      const T beta_eff = pc == 0 ? g.beta : T(1);
      auto b_at = [&](std::int64_t, std::int64_t jr) -> const T* { return bpack + jr * kc; };

#pragma omp for schedule(dynamic, 4)
      for (std::int64_t q = 0; q < panels; ++q) {
        const int cols = static_cast<int>(std::min<std::int64_t>(nr, nc - q * nr));
        pack_b_op(kr, g.b, pc, jc + q * nr, kc, cols, bpack + q * nr * kc);
      }
      // (implicit barrier: B is packed)

      if (dynamic_rows) {
#pragma omp for schedule(dynamic, 1) nowait
        for (std::int64_t blk = 0; blk < row_blocks; ++blk) {
          const std::int64_t ic = blk * mc, mcur = std::min(mc, g.m - ic);
          const std::int64_t main = plan_rows(kr, mcur);
          pack_a_planned(kr, g.a, ic, pc, mcur, kc, main, apack);
          macro_kernel(kr, mcur, nc, kc, g.alpha, apack, b_at, beta_eff, g.c + ic * g.ldc + jc,
                       g.ldc, tmp, last, g.ep, ic, jc, main);
        }
#pragma omp barrier
        continue;
      }
      const std::int64_t jlo = std::max(r.n0, jc), jhi = std::min(r.n1, jc + nc);
      if (jlo < jhi) {
        for (std::int64_t ic = r.m0; ic < r.m1; ic += mc) {
          const std::int64_t mcur = std::min(mc, r.m1 - ic);
          const std::int64_t main = plan_rows(kr, mcur);
          pack_a_planned(kr, g.a, ic, pc, mcur, kc, main, apack);
          macro_kernel(kr, mcur, jhi - jlo, kc, g.alpha, apack,
                       [&](std::int64_t, std::int64_t jr) { return b_at(0, jlo - jc + jr); },
                       beta_eff, g.c + ic * g.ldc + jlo, g.ldc, tmp, last, g.ep, ic, jlo, main);
        }
      }
#pragma omp barrier
    }
  }
}

/// m == 1 or n == 1 as a GEMV (bandwidth-bound: nothing packed, the
/// matrix read once). False when the operands' layout does not fit one.
template <class T>
bool gemv_route(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const GemmOperand<T>& a,
                const GemmOperand<T>& b, T beta, T* c, std::int64_t ldc, int max_threads) {
  if (m == 1) {  // c row = op(B)^T x, x = row 0 of op(A)
    if (b.cs == 1 || n == 1) {  // op(B) is k x n row-major: y = B^T x
      gemv_run(true, k, n, alpha, b.data, b.rs, a.data, a.cs, beta, c, 1, max_threads);
    } else if (b.rs == 1) {  // op(B)^T is n x k row-major: y = (op(B)^T) x
      gemv_run(false, n, k, alpha, b.data, b.cs, a.data, a.cs, beta, c, 1, max_threads);
    } else {
      return false;
    }
    return true;
  }
  if (n == 1) {  // c column = op(A) x, x = column 0 of op(B)
    if (a.cs == 1 || k == 1) {
      gemv_run(false, m, k, alpha, a.data, a.rs, b.data, b.rs, beta, c, ldc, max_threads);
    } else if (a.rs == 1) {
      gemv_run(true, k, m, alpha, a.data, a.cs, b.data, b.rs, beta, c, ldc, max_threads);
    } else {
      return false;
    }
    return true;
  }
  return false;
}

/// Few rows of op(A), B row-major: the ISA's sup kernel. On several threads
/// each takes a contiguous block of k (whole rows of B, which it streams
/// start to end) into its own partial C, summed in thread order; splitting
/// the columns instead would have each thread read part of every row of B
/// while the prefetchers fetch the rest too (measured 784x256 B, m = 2, 2
/// threads: 42 GFLOP/s by columns, 72 by k). The epilogue runs after.
template <class T>
void sup_run(const GemmKernel<T>& kr, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
             const GemmOperand<T>& a, const GemmOperand<T>& b_op, T beta, T* c, std::int64_t ldc,
             const GemmTileEpilogue<T>* ep, int nt) {
  parallel_k_sum(k, 8, nt, m, n, c, ldc, beta,
                 [&](int, std::int64_t p0, std::int64_t p1, T* dst, std::int64_t ld, T b) {
                   kr.sup(m, n, p1 - p0, alpha, a.data + p0 * a.cs, a.rs, a.cs,
                          b_op.data + p0 * b_op.rs, b_op.rs, b, dst, ld);
                 });
  apply_epilogue(ep, c, ldc, m, 0, n, kr.mr, kr.nr);
}

}  // namespace

template <class T>
void gemm_check_args(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c,
                std::int64_t ldc) {
  auto fail = [](const std::string& what) { throw matnet::invalid_argument("matnet::gemm: " + what); };
  if (m < 0 || n < 0 || k < 0) {
    fail("sizes must be >= 0, got m=" + std::to_string(m) + " n=" + std::to_string(n) +
         " k=" + std::to_string(k));
  }
  const std::int64_t a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  if (lda < std::max<std::int64_t>(1, a_cols))
    fail("lda=" + std::to_string(lda) + " is smaller than the row length " + std::to_string(a_cols));
  if (ldb < std::max<std::int64_t>(1, b_cols))
    fail("ldb=" + std::to_string(ldb) + " is smaller than the row length " + std::to_string(b_cols));
  if (ldc < std::max<std::int64_t>(1, n))
    fail("ldc=" + std::to_string(ldc) + " is smaller than the row length " + std::to_string(n));
  if (m > 0 && n > 0 && c == nullptr) fail("c is null");
  if (m > 0 && n > 0 && k > 0 && (a == nullptr || b == nullptr)) fail("a or b is null");
}


template <class T>
void gemm_run(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
              T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta,
              T* c, std::int64_t ldc, const GemmTileEpilogue<T>* ep, int max_threads) {
  gemm_check_args(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  gemm_operands(m, n, k, alpha, GemmOperand<T>::blas(a, lda, trans_a),
                GemmOperand<T>::blas(b, ldb, trans_b), beta, c, ldc, ep, max_threads);
}

template <class T>
void gemm_operands(std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                   const GemmOperand<T>& a, const GemmOperand<T>& b, T beta, T* c,
                   std::int64_t ldc, const GemmTileEpilogue<T>* ep, int max_threads) {
  const GemmKernel<T>& kr = *kernels<T>().gemm;
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == T(0)) {
    scale_c_and_finish(m, n, beta, c, ldc, ep, kr.mr, kr.nr);
    return;
  }
  const double flops = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  int nt = flops < thresholds::parallel_min_flops ? 1 : std::max(max_threads, 1);
  if (a.pack == nullptr && b.pack == nullptr) {
    // The GEMV decides its own threads (by bytes: it is bandwidth-bound).
    if (gemv_route(m, n, k, alpha, a, b, beta, c, ldc, std::max(max_threads, 1))) {
      apply_epilogue(ep, c, ldc, m, 0, n, kr.mr, kr.nr);
      return;
    }
    if (kr.sup != nullptr && m <= kr.sup_max_m && b.cs == 1) {
      sup_run(kr, m, n, k, alpha, a, b, beta, c, ldc, ep, nt);
      return;
    }
  }
  const Problem<T> g{m, n, k, alpha, a, b, beta, c, ldc, ep};
  const int mr = kr.mr, nr = kr.nr;
  // K blocks of even depth (784 = 4 x 196, not 3 x 256 + 16: a thin last
  // block pays the C update for little work), rounded to 8 for the packers.
  const std::int64_t kc = std::min<std::int64_t>(
      kr.kc, round_up(ceil_div(k, ceil_div(k, kr.kc)), 8));

  const bool shared_b = nt > 1 && flops >= thresholds::shared_b_min_flops;
  // Enough A row blocks to deal out dynamically (see gemm_shared_b).
  const bool dynamic_rows = shared_b && ceil_div(m, kr.mc) >= 2 * nt;
  auto partition_for = [&](int threads) -> Partition {
    if (threads <= 1) return {1, 1};
    return shared_b ? choose_partition(threads, m, n, mr, nr) : choose_split(threads, m, n, mr, nr);
  };
  const Partition part = partition_for(nt);
  nt = part.ways_m * part.ways_n;

  // All scratch is taken here, by the calling thread, before the parallel
  // region: nothing inside the region may throw. Per thread: an A block and
  // an edge tile; a B panel shared by all (shared_b) or one each.
  const std::int64_t nc_cap = std::min<std::int64_t>(kr.nc, round_up(n, nr));
  const std::int64_t a_block = round_up(std::min<std::int64_t>(kr.mc, round_up(m, mr)), mr) * kc;
  const std::int64_t a_stride = round_up(a_block + static_cast<std::int64_t>(mr) * nr, 16);
  const std::int64_t b_size = round_up(nc_cap * kc, 16);
  const int b_count = shared_b ? 1 : nt;
  WorkspaceScope scope;
  T* const work = scope.alloc<T>(static_cast<std::size_t>(b_count * b_size + nt * a_stride));

  if (nt == 1) {  // no OpenMP region at all: it costs ~0.3 us even when serialised
    gemm_rect(kr, g, kc, Rect{0, m, 0, n}, work, work + b_size, work + b_size + a_block);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    // The team can be smaller than asked for (called inside another parallel
    // region, OMP_THREAD_LIMIT, OMP_DYNAMIC): partition for the team that
    // actually runs. Scratch was sized for nt >= team threads.
    const int team = omp_get_num_threads();
    const Partition p = team == nt ? part : partition_for(team);
    const int tid = omp_get_thread_num();
    const int tm = tid / p.ways_n, tn = tid % p.ways_n;
    const Rect r = tid >= p.ways_m * p.ways_n
                       ? Rect{0, 0, 0, 0}
                       : Rect{split_point(m, mr, p.ways_m, tm), split_point(m, mr, p.ways_m, tm + 1),
                              split_point(n, nr, p.ways_n, tn), split_point(n, nr, p.ways_n, tn + 1)};
    T* const apack = work + b_count * b_size + tid * a_stride;
    T* const tmp = apack + a_block;
    if (shared_b) {
      gemm_shared_b(kr, g, kc, r, dynamic_rows, work, apack, tmp);
    } else if (r.m0 < r.m1 && r.n0 < r.n1) {
      gemm_rect(kr, g, kc, r, work + tid * b_size, apack, tmp);
    }
  }
}

template <class T>
void gemm_batch_run(std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                    const GemmOperand<T>& a, const T* const* a_ptrs, const GemmOperand<T>& b,
                    const T* const* b_ptrs, T beta, T* const* c_ptrs, std::int64_t ldc,
                    std::int64_t batch, int max_threads) {
  if (batch <= 0 || m == 0 || n == 0) return;
  const double flops = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  // Every product has the same shape and layout: when they are small
  // enough for the sup kernel, call it straight away instead of choosing a
  // path per product (that choice costs about what an 8 x 8 x 8 product
  // does).
  const GemmKernel<T>& kr = *kernels<T>().gemm;
  const bool direct_sup = kr.sup != nullptr && k > 0 && alpha != T(0) && a.pack == nullptr &&
                          b.pack == nullptr && b.cs == 1 && m <= kr.sup_max_m &&
                          flops < thresholds::parallel_min_flops;
  auto one = [&](std::int64_t i, int threads) {
    if (direct_sup) {
      kr.sup(m, n, k, alpha, a_ptrs[i], a.rs, a.cs, b_ptrs[i], b.rs, beta, c_ptrs[i], ldc);
      return;
    }
    GemmOperand<T> ai = a, bi = b;
    ai.data = a_ptrs[i];
    bi.data = b_ptrs[i];
    gemm_operands<T>(m, n, k, alpha, ai, bi, beta, c_ptrs[i], ldc, nullptr, threads);
  };
  const int nt = static_cast<int>(std::min<std::int64_t>(std::max(max_threads, 1), batch));
  // Many small products: one per thread, each on its own thread (no
  // fork/join inside). Large ones: each product on every thread.
  if (nt <= 1 || flops >= thresholds::batch_per_thread_max_flops ||
      flops * static_cast<double>(batch) < thresholds::parallel_min_flops) {
    for (std::int64_t i = 0; i < batch; ++i) one(i, max_threads);
    return;
  }
  // Each thread's products take scratch from its own workspace, which can
  // fail; the first error is rethrown here, after the region.
  RegionErrors errors;
  parallel_split(batch, nt, 1, [&](std::int64_t i0, std::int64_t i1) {
    errors.run([&] {
      for (std::int64_t i = i0; i < i1; ++i) one(i, 1);
    });
  });
  errors.rethrow();
}

template <class T>
const char* gemm_kernel_name() {
  return kernels<T>().gemm->name;
}

template <class T>
GemmBlocking gemm_blocking() {
  const GemmKernel<T>& kr = *kernels<T>().gemm;
  return {kr.mr, kr.nr, kr.mc, kr.kc, kr.nc};
}

#define MATNET_INSTANTIATE(T)                                                                   \
  template void gemm_check_args<T>(bool, bool, std::int64_t, std::int64_t, std::int64_t,       \
                                   const T*, std::int64_t, const T*, std::int64_t, T*,          \
                                   std::int64_t);                                              \
  template void gemm_run<T>(bool, bool, std::int64_t, std::int64_t, std::int64_t, T, const T*, \
                            std::int64_t, const T*, std::int64_t, T, T*, std::int64_t,          \
                            const GemmTileEpilogue<T>*, int);                                  \
  template void gemm_operands<T>(std::int64_t, std::int64_t, std::int64_t, T,                  \
                                 const GemmOperand<T>&, const GemmOperand<T>&, T, T*,           \
                                 std::int64_t, const GemmTileEpilogue<T>*, int);               \
  template void gemm_batch_run<T>(std::int64_t, std::int64_t, std::int64_t, T,                 \
                                  const GemmOperand<T>&, const T* const*, const GemmOperand<T>&, \
                                  const T* const*, T, T* const*, std::int64_t, std::int64_t,   \
                                  int);                                                        \
  template const char* gemm_kernel_name<T>();                                                  \
  template GemmBlocking gemm_blocking<T>();
MATNET_INSTANTIATE(float)
MATNET_INSTANTIATE(double)
#undef MATNET_INSTANTIATE

}  // namespace matnet::detail
