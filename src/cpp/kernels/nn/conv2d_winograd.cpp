// Conv2D forward by Winograd F(2x2, 3x3) (conv2d_winograd.hpp).
//
// Why: the direct path (conv2d.cpp, an im2col GEMM) already runs at ~85 % of
// the FMA peak on the large 3x3 shapes, so only fewer multiplications make
// it faster. F(2x2, 3x3) (Lavin & Gray 2015) gets a 2x2 output tile from a
// 4x4 input patch with 16 multiplications per (in, out) channel pair
// instead of 36 (2.25x fewer); the rest are additions in the transforms
// (winograd_kernels.hpp), whose coefficients 0, +-1, +-1/2 are exact.
//
// Legend as conv2d.cpp; a tile is 2x2 outputs, TH = ceil(OH/2) tile rows by
// TW = ceil(OW/2) tile columns per image, p in [0, 16) a transformed entry.
//
//   U[p] (Fg x Cg) = (G g G^T)[p], once per call, as the microkernel's packed
//                    A panels (rows padded to whole panels with zeros);
//   per block of tiles (R consecutive tile rows (n, th) of the batch, tile
//   columns [tc0, tc0 + cw); R chosen so the block is whole nr-wide panels
//   where it can be), tb tiles:
//     V[p] (Cg x tb) = (B^T d B)[p], written by the transform straight into
//                      packed B panels, so no packing pass;
//     per row panel of U (mr output channels):
//       M[p] (mr x tb) = U[p] . V[p], 16 products straight on the
//                        microkernel (no driver: A is packed once for all blocks);
//       y = act(A^T M A + b), NCHW, two output rows per tile row.
// A block's V (16 Cg tb values: 460 KiB at Cg = 64, tb = 112, float32)
// stays in L2 next to U (270 KiB at 64 x 64) and M (16 mr tb) in L1-L2:
// with the products for all Fg rows first, M (another 470 KiB) pushed V
// and U out of L2, and the output transform waited on its loads
// ((32,64,56,56)->64, 1 thread: 45.0 -> 42.6 ms fused). Blocks are split
// over threads, each with its own V and M from the workspace; U is shared.
// Reductions deeper than the kernel's kc run in kc chunks (beta = 1 after
// the first), as the GEMM driver does.
// Why F(2x2, 3x3) and not F(4x4, 3x3) (4x fewer multiplications): the
// larger tile's transform coefficients (up to 8, and 1/4, 1/8 ...) lose
// about two more digits in float32; F(2x2) keeps the error within a small
// factor of the direct path's (see tests/test_conv.py's bound).
#include "nn/conv2d_winograd.hpp"

#include <algorithm>
#include <cstring>

#include "core/parallel.hpp"
#include "core/thresholds.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet::detail {

namespace {

using I = std::int64_t;

/// u[4 i + j] = (G g G^T)[i][j] of a 3x3 kernel g (row-major), in double:
/// float's transformed weights are then rounded once, not four times.
template <class T>
void weight_tile(const T* g, double* u) {
  double t[4][3];  // G g
  for (int j = 0; j < 3; ++j) {
    const double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
    t[0][j] = g0;
    t[1][j] = 0.5 * (g0 + g1 + g2);
    t[2][j] = 0.5 * (g0 - g1 + g2);
    t[3][j] = g2;
  }
  for (int i = 0; i < 4; ++i) {  // (G g) G^T
    u[4 * i + 0] = t[i][0];
    u[4 * i + 1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]);
    u[4 * i + 2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]);
    u[4 * i + 3] = t[i][2];
  }
}

/// The row panels of U (Fg rows): `full` panels of mr rows, then one of
/// tail_rows (0 when mr divides Fg) run by the tail kernel when the ISA has
/// one wide enough, else by the mr-row kernel on zero rows.
struct RowPanels {
  I full, tail_rows, rows_pad;
  bool tail_kernel;
};

template <class T>
RowPanels row_panels(const GemmKernel<T>& gk, I fg) {
  const I rem = fg % gk.mr;
  const bool tail_kernel = rem > 0 && gk.ukernel_tail != nullptr && rem <= gk.mr_tail;
  const I tail_rows = rem == 0 ? 0 : tail_kernel ? gk.mr_tail : gk.mr;
  return {fg / gk.mr, tail_rows, fg / gk.mr * gk.mr + tail_rows, tail_kernel};
}

}  // namespace

template <class T>
bool winograd_applies(const Conv2dShape& s) {
  const I cg = s.in_channels / s.groups, fg = s.out_channels / s.groups;
  const I min_width = sizeof(T) == 4 ? thresholds::winograd_min_width_f32
                                     : thresholds::winograd_min_width_f64;
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && cg >= thresholds::winograd_min_channels &&
         fg >= thresholds::winograd_min_channels && s.out_w() >= min_width && s.out_h() >= 1 &&
         s.batch * ((s.out_h() + 1) / 2) * ((s.out_w() + 1) / 2) >= thresholds::winograd_min_tiles;
}

template <class T>
void winograd_forward(T* y, T* z, const T* x, const T* w, const T* b, const Conv2dShape& s,
                      Activation act, T slope, int max_threads) {
  const GemmKernel<T>& gk = *kernels<T>().gemm;
  const WinogradKernels<T>& wk = *kernels<T>().winograd;
  const EltwiseKernels<T>& ek = *kernels<T>().eltwise;
  const I oh = s.out_h(), ow = s.out_w(), hw = s.height * s.width;
  const I g_count = s.groups, cg = s.in_channels / g_count, fg = s.out_channels / g_count;
  const I mr = gk.mr, nr = gk.nr, kc = gk.kc;
  const RowPanels rp = row_panels(gk, fg);
  const I th_n = (oh + 1) / 2, tw_n = (ow + 1) / 2;

  // Blocks: tile columns in ncc balanced chunks of at most winograd_block_tiles,
  // then as many whole tile rows as fill a block.
  const I target = thresholds::winograd_block_tiles;
  const I ncc = (tw_n + target - 1) / target, cw = (tw_n + ncc - 1) / ncc;
  // Of the row counts that fit, the one whose block wastes the least of
  // its last nr-wide panel (28-tile rows: 4 rows are 7 whole panels, where
  // 2 would compute 64 tiles for 56).
  // At most a 2 x threads'th of the tile rows, so that a small batch
  // (one 14x14 image: 7 tile rows, one block) still splits over threads.
  const I rows_total = s.batch * th_n;
  const I rows_cap = max_threads > 1 ? std::max<I>(1, (rows_total + 2 * max_threads - 1) /
                                                          (2 * max_threads))
                                     : rows_total;
  I rows_per = 1;
  for (I r = 1; r * cw <= target && r <= rows_cap; ++r) {
    const auto waste = [&](I rr) { return double((rr * cw + nr - 1) / nr * nr) / double(rr * cw); };
    if (waste(r) <= waste(rows_per)) rows_per = r;
  }
  const I nrb = (rows_total + rows_per - 1) / rows_per, items = g_count * nrb * ncc;
  const I tb_cap = (rows_per * cw + nr - 1) / nr * nr;

  WorkspaceScope scope;
  // U, packed: (g, p) blocks of rows_pad x cg; within, kc-deep chunks of
  // row panels, each stored column by column (ukernel.hpp's A layout).
  const I u_block = rp.rows_pad * cg;
  T* u = scope.alloc<T>(static_cast<std::size_t>(g_count * 16 * u_block));
  std::fill(u, u + g_count * 16 * u_block, T(0));
  // Split over the threads by output channels: ~40 flops per (f, c), which
  // at 512 x 512 channels is a few ms on one thread.
  const int u_threads = threads_for(g_count * fg * cg * 16, max_threads);
  parallel_split(g_count * fg, u_threads, 1, [&](I gf0, I gf1) {
    for (I gf = gf0; gf < gf1; ++gf) {
      const I g = gf / fg, f = gf % fg;
      const I ip = std::min(f / mr, rp.full), start = ip * mr;
      const I pr = ip < rp.full ? mr : rp.tail_rows;
      for (I c = 0; c < cg; ++c) {
        double t[16];
        weight_tile(w + ((g * fg + f) * cg + c) * 9, t);
        const I k0 = c / kc * kc, kl = std::min(kc, cg - k0);
        T* dst = u + g * 16 * u_block + k0 * rp.rows_pad + start * kl + (c - k0) * pr + (f - start);
        for (int p = 0; p < 16; ++p) dst[p * u_block] = static_cast<T>(t[p]);
      }
    }
  });

  // V, per thread: for each p, the kc-deep chunks of the block's B panels
  // (nr tiles x kl channels each, then `spill` values of room for
  // input_row's whole-vector stores; panel starts stay nr-aligned).
  const I spill = (winograd_step + nr - 1) / nr * nr, n_chunks = (cg + kc - 1) / kc;
  const I panels_cap = tb_cap / nr, v_pstride = panels_cap * (cg * nr + n_chunks * spill);
  const I v_size = 16 * v_pstride;
  // M: one row panel, mr x tb_pad per p; output_row reads whole steps past
  // a row's tiles.
  const I m_size = 16 * mr * tb_cap + winograd_step;
  const I y_ld = 2 * (cw + winograd_step);  // two output rows, whole steps
  const int parts = parts_for(items, max_threads);
  T* v_all = scope.alloc<T>(static_cast<std::size_t>(parts * v_size));
  T* m_all = scope.alloc<T>(static_cast<std::size_t>(parts * m_size));
  T* y_all = scope.alloc<T>(static_cast<std::size_t>(parts * 2 * y_ld));
  parallel_parts(items, max_threads, 1, [&](int part, I it0, I it1) {
    T* const v = v_all + part * v_size;
    T* const m = m_all + part * m_size;
    T* const yt = y_all + part * 2 * y_ld;
    // Padding tiles' columns of V are never written; zeros keep whatever
    // the scratch held (NaN, subnormals) out of the products.
    std::fill(v, v + v_size, T(0));
    std::fill(m, m + m_size, T(0));
    for (I it = it0; it < it1; ++it) {
      const I g = it / (nrb * ncc), q0 = (it / ncc) % nrb * rows_per, tc0 = it % ncc * cw;
      const I rcount = std::min(rows_per, rows_total - q0), cwi = std::min(cw, tw_n - tc0);
      const I tb = rcount * cwi, tb_pad = (tb + nr - 1) / nr * nr, panels = tb_pad / nr;
      // The chunk of channel c (from k0, kl deep) starts at chunk_at(k0).
      auto chunk_at = [&](I k0) { return panels * (k0 * nr + k0 / kc * spill); };
      // V: channel by channel, tile row by tile row (the order the spill rule asks).
      auto plane_of = [&](I c, I q) { return x + (q / th_n * s.in_channels + g * cg + c) * hw; };
      for (I c = 0; c < cg; ++c) {
        const I k0 = c / kc * kc, kl = std::min(kc, cg - k0);
        T* const vc = v + chunk_at(k0) + (c - k0) * nr;
        // The next channel's rows, a plane away: ahead of time, as the
        // hardware prefetcher starts each short run of rows cold.
        if (c + 1 < cg)
          for (I r = 0; r < rcount; ++r) {
            const I th = (q0 + r) % th_n;
            const T* plane = plane_of(c + 1, q0 + r);
            const I ih0 = std::max<I>(2 * th - s.pad_top, 0);
            const I ih1 = std::min<I>(2 * th + (r + 1 < rcount ? 2 : 4) - s.pad_top, s.height);
            if (ih1 <= ih0) continue;
            const char* p0 = reinterpret_cast<const char*>(plane + ih0 * s.width);
            const char* p1 = reinterpret_cast<const char*>(plane + ih1 * s.width);
            for (const char* pp = p0; pp < p1; pp += 64) __builtin_prefetch(pp);
          }
        for (I r = 0; r < rcount; ++r) {
          const I th = (q0 + r) % th_n;
          const T* plane = plane_of(c, q0 + r);
          const T* rows[4];
          for (I i = 0; i < 4; ++i) {
            const I ih = 2 * th + i - s.pad_top;
            rows[i] = ih >= 0 && ih < s.height ? plane + ih * s.width : nullptr;
          }
          wk.input_row(rows, s.width, 2 * tc0 - s.pad_left, cwi, vc, v_pstride, r * cwi, nr,
                       kl * nr + spill);
        }
      }
      // By row panels of U (mr output channels): M[p] = U[p] . V[p] for
      // those rows on the microkernel, then their output transform while
      // M (16 x mr x tb values) is in L1, so that only V and U share L2.
      const I ox0 = 2 * tc0, len = std::min(2 * cwi, ow - ox0), m_pstride = mr * tb_pad;
      for (I ip = 0; ip < rp.full + (rp.tail_rows > 0 ? 1 : 0); ++ip) {
        const auto kernel = ip == rp.full && rp.tail_kernel ? gk.ukernel_tail : gk.ukernel;
        for (int p = 0; p < 16; ++p)
          for (I k0 = 0; k0 < cg; k0 += kc) {
            const I kl = std::min(kc, cg - k0);
            const T* ap = u + (g * 16 + p) * u_block + k0 * rp.rows_pad + ip * mr * kl;
            const T* bp = v + p * v_pstride + chunk_at(k0);
            for (I jp = 0; jp < panels; ++jp)
              kernel(kl, T(1), ap, bp + jp * (kl * nr + spill), k0 == 0 ? T(0) : T(1),
                     m + p * m_pstride + jp * nr, tb_pad);
          }
        // y = act(A^T M A + b), through yt (output_row writes whole steps).
        for (I f = ip * mr; f < std::min(fg, (ip + 1) * mr); ++f) {
          const T bias = b != nullptr ? b[g * fg + f] : T(0);
          for (I r = 0; r < rcount; ++r) {
            const I q = q0 + r, n = q / th_n, oy = 2 * (q % th_n);
            const I off = (n * s.out_channels + g * fg + f) * oh * ow + ox0;
            wk.output_row(m + (f - ip * mr) * tb_pad + r * cwi, m_pstride, cwi, bias, yt,
                          yt + y_ld);
            for (I i = 0; i < 2 && oy + i < oh; ++i) {
              const I o = off + (oy + i) * ow;
              if (z == nullptr && act == Activation::identity)
                std::memcpy(y + o, yt + i * y_ld, static_cast<std::size_t>(len) * sizeof(T));
              else
                ek.forward(y + o, z != nullptr ? z + o : nullptr, yt + i * y_ld, nullptr, len, act,
                           slope);
            }
          }
        }
      }
    }
  });
}

template bool winograd_applies<float>(const Conv2dShape&);
template bool winograd_applies<double>(const Conv2dShape&);
template void winograd_forward<float>(float*, float*, const float*, const float*, const float*,
                                      const Conv2dShape&, Activation, float, int);
template void winograd_forward<double>(double*, double*, const double*, const double*,
                                       const double*, const Conv2dShape&, Activation, double, int);

}  // namespace matnet::detail
