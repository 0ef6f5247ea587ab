// 2-D convolution as implicit GEMM (matnet/conv.hpp).
//
// Legend: N batch, C in-channels, H x W input, F out-channels, KH x KW
// kernel, OH x OW output, G groups, Cg = C/G, Fg = F/G, Kg = Cg*KH*KW,
// S = OH*OW. Arrays are NCHW at the API and stay NCHW inside.
//
// Why NCHW and no layout change: with the output as C = W (Fg x Kg) . B
// (Kg x S) per image and group, C *is* the NCHW output plane block, so no
// transpose is needed on either side, and the GEMM driver's B pack
// callback gathers the im2col panel straight from the NCHW input into the
// packed KC x NR buffer (rows (c, kh, kw), columns (oh, ow)). The im2col
// matrix is never materialised: the packed buffer already is a copy, so
// materialising it first would be a second copy of Kg*S elements per image
// (9x the input for 3x3), and for stride 1 each packed row is a contiguous
// run of the input. An NHWC copy would need the transposes in and out.
//
//   forward:  y[n, g] (Fg, S) = act(w[g] (Fg, Kg) . im2col(x[n, g]) (Kg, S) + b[g])
//             bias and activation in the GEMM's tile epilogue (per output row).
//             1x1, stride 1, no padding: B is x[n, g] itself (Cg, H*W).
//   dW:       dw[g] (Fg, Kg) = sum_n dZ[n, g] (Fg, S) . im2col(x[n, g])^T (S, Kg)
//             one GEMM per image, accumulated: A is dZ as it is, B is packed
//             by a callback column by column (one kernel tap = runs of input
//             rows); images split over threads, each a private partial
//             (parallel_k_sum), summed in a fixed order.
//   dX:       dcol (Kg, S) = w[g]^T . dZ[n, g] per image in per-thread
//             workspace, then col2im adds it into dx (1x1: the GEMM writes dx).
//             Stride 1 with a dcol scratch above thresholds::conv_dcol_max_bytes:
//             implicitly, dx = conv(dZ, w') with w' the kernel flipped and
//             in/out channels swapped, padding dh*(KH-1) - pad (may be
//             negative: rows cropped) - the forward path again, no scratch,
//             but measured slower where both fit (see the threshold).
// Threads: over images x groups, one single-threaded GEMM each, when there
// are at least as many of those as threads; otherwise each GEMM gets the
// whole budget.
#include "matnet/conv.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "blas3/gemm_driver.hpp"
#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/workspace.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

using detail::GemmOperand;
using I = std::int64_t;

constexpr int kMaxPanel = 64;  // >= every microkernel's NR and MR

// ------------------------------------------------------------ pack callbacks

/// dst[t * ds] = x row `ih` of `plane` (h x w) at column iw0 + t*sw, for t
/// in [0, len), and 0 outside the image: the zero-padded run of one kernel
/// tap over a stretch of one output row. No per-element bounds test: the
/// in-image stretch [lo, hi) is computed once.
/// [lo, hi) of t in [0, len) with column iw0 + t*sw inside [0, w), and row
/// ih inside [0, h) (else empty): the in-image stretch of a run.
inline void run_bounds(I h, I w, I ih, I iw0, I len, I sw, I& lo, I& hi) {
  lo = hi = 0;
  if (ih < 0 || ih >= h) return;
  if (sw == 1) {  // the common case: no divisions (this runs once per 16-32 values)
    lo = std::min(std::max<I>(-iw0, 0), len);
    hi = std::max(lo, std::min(len, w - iw0));
  } else {
    lo = std::min(iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw, len);
    hi = std::max(lo, std::min(iw0 > w - 1 ? 0 : (w - 1 - iw0) / sw + 1, len));
  }
}

template <class T>
inline void gather_run(T* dst, I ds, const T* plane, I h, I w, I ih, I iw0, I len, I sw) {
  I lo, hi;
  run_bounds(h, w, ih, iw0, len, sw, lo, hi);
  for (I t = 0; t < lo; ++t) dst[t * ds] = T(0);
  const T* src = plane + ih * w + iw0;
  if (ds == 1 && sw == 1) {
    for (I t = lo; t < hi; ++t) dst[t] = src[t];  // vectorised; short runs beat a memcpy call
  } else {
    for (I t = lo; t < hi; ++t) dst[t * ds] = src[t * sw];
  }
  for (I t = hi; t < len; ++t) dst[t * ds] = T(0);
}

/// The adjoint of gather_run (ds = 1): plane[ih, iw0 + t*sw] += src[t] inside the image.
template <class T>
inline void scatter_add_run(T* plane, const T* src, I h, I w, I ih, I iw0, I len, I sw) {
  I lo, hi;
  run_bounds(h, w, ih, iw0, len, sw, lo, hi);
  T* d = plane + ih * w + iw0;
  if (sw == 1) {
    for (I t = lo; t < hi; ++t) d[t] += src[t];
  } else {
    for (I t = lo; t < hi; ++t) d[t * sw] += src[t];
  }
}

/// Output pixels [j0, j0 + cols) (columns (image, i, j) of images of
/// oh x ow pixels) cut at output-row ends: runs (first column offset,
/// length, image, output row i, output column j) of the panel.
struct PixelRun {
  I t0, len, img, i, j;
};

inline int pixel_runs(I j0, I cols, I oh, I ow, PixelRun* runs) {
  int count = 0;
  const I sl = oh * ow;
  I img = j0 / sl, i = (j0 % sl) / ow, j = j0 % ow;
  for (I t = 0; t < cols; ++count) {
    const I len = std::min(cols - t, ow - j);
    runs[count] = {t, len, img, i, j};
    t += len;
    j = 0;
    if (++i == oh) i = 0, ++img;
  }
  return count;
}

/// B operand of the forward GEMM for images n0.. and one group: im2col(x)
/// (Kg, images x S), element ((c, p, q), (n, i, j)) =
/// x[n0 + n, c, i*sh - pt + p*dh, j*sw - pl + q*dw].
template <class T>
struct Im2col {
  const T* x;  // (Cg, H, W) of image n0 and the group
  const Conv2dShape* s;
  I oh, ow;
  I img_stride;  // elements from one image to the next (C*H*W)
};

template <class T>
void pack_im2col(const void* ctx, I p0, I j0, I kc, I cols, int nr, T* dst) {
  const auto& m = *static_cast<const Im2col<T>*>(ctx);
  const Conv2dShape& s = *m.s;
  const I h = s.height, w = s.width;
  PixelRun runs[kMaxPanel];
  const int nruns = pixel_runs(j0, cols, m.oh, m.ow, runs);
  const I khw = s.kernel_h * s.kernel_w;
  I c = p0 / khw, p = (p0 % khw) / s.kernel_w, q = p0 % s.kernel_w;
  for (I r = 0; r < kc; ++r, dst += nr) {
    const T* plane = m.x + c * h * w;
    for (int u = 0; u < nruns; ++u) {
      const PixelRun& run = runs[u];
      gather_run(dst + run.t0, 1, plane + run.img * m.img_stride, h, w, run.i * s.stride_h - s.pad_top + p * s.dilation_h,
                 run.j * s.stride_w - s.pad_left + q * s.dilation_w, run.len, s.stride_w);
    }
    std::fill(dst + cols, dst + nr, T(0));
    if (++q == s.kernel_w) {
      q = 0;
      if (++p == s.kernel_h) p = 0, ++c;
    }
  }
}

/// B operand of the dW GEMM for images n0.. and one group: im2col(x)^T
/// (images x S, Kg), element ((n, i, j), (c, p, q)) =
/// x[n0 + n, c, i*sh - pt + p*dh, j*sw - pl + q*dw].
/// Packed column by column: each column is one kernel tap, and its rows
/// are consecutive output pixels, so runs of one input row.
template <class T>
void pack_im2col_t(const void* ctx, I p0, I j0, I kc, I cols, int nr, T* dst) {
  const auto& m = *static_cast<const Im2col<T>*>(ctx);
  const Conv2dShape& s = *m.s;
  const I h = s.height, w = s.width;
  PixelRun runs[2 * kMaxPanel];
  I rows_left = kc, at = p0;
  int nruns = 0;
  while (rows_left > 0) {  // runs of [p0, p0 + kc) (at most kc / ow + 2 of them)
    PixelRun chunk[1];
    pixel_runs(at, std::min(rows_left, m.ow - at % m.ow), m.oh, m.ow, chunk);
    chunk[0].t0 = at - p0;
    if (nruns < 2 * kMaxPanel) runs[nruns++] = chunk[0];
    at += chunk[0].len;
    rows_left -= chunk[0].len;
    if (nruns == 2 * kMaxPanel && rows_left > 0) {
      // Many short output rows: finish this panel in pieces.
      pack_im2col_t<T>(ctx, at, j0, rows_left, cols, nr, dst + (at - p0) * nr);
      break;
    }
  }
  const I khw = s.kernel_h * s.kernel_w;
  for (I col = 0; col < cols; ++col) {
    const I q = j0 + col, c = q / khw;
    const I dh = ((q % khw) / s.kernel_w) * s.dilation_h, dw = (q % s.kernel_w) * s.dilation_w;
    const T* plane = m.x + c * h * w;
    for (int u = 0; u < nruns; ++u) {
      const PixelRun& run = runs[u];
      gather_run(dst + run.t0 * nr + col, nr, plane + run.img * m.img_stride, h, w,
                 run.i * s.stride_h - s.pad_top + dh, run.j * s.stride_w - s.pad_left + dw,
                 run.len, s.stride_w);
    }
  }
  for (int u = 0; u < nruns; ++u)
    for (I t = runs[u].t0; t < runs[u].t0 + runs[u].len; ++t)
      std::fill(dst + t * nr + cols, dst + (t + 1) * nr, T(0));
}

/// dZ of images n0.. and one group as a matrix (Fg, images x S), element
/// (f, (n, s)) = dz[(n0 + n) * F*S + (g*Fg + f) * S + s]: the A operand of
/// dW and the B operand of dcol when a GEMM spans several small images.
template <class T>
struct GradCols {
  const T* dz;  // image n0, channel g*Fg
  I img_stride, sl;
};

/// body(t, len, src) over columns [c0, c0 + count) of row f: runs within one image.
template <class T, class F>
inline void grad_row_runs(const GradCols<T>& m, I f, I c0, I count, F&& body) {
  for (I t = 0, col = c0; t < count;) {
    const I img = col / m.sl, s0 = col % m.sl, len = std::min(count - t, m.sl - s0);
    body(t, len, m.dz + img * m.img_stride + f * m.sl + s0);
    t += len;
    col += len;
  }
}

template <class T>
void pack_grad_a(const void* ctx, I i0, I p0, I rows, I kc, int mr, T* dst) {
  const auto& m = *static_cast<const GradCols<T>*>(ctx);
  for (I i = 0; i < rows; i += mr) {  // panels of mr rows, stored column by column
    T* panel = dst + (i / mr) * mr * kc;
    for (I r = 0; r < mr; ++r) {
      if (i + r >= rows) {
        for (I t = 0; t < kc; ++t) panel[t * mr + r] = T(0);
        continue;
      }
      grad_row_runs(m, i0 + i + r, p0, kc, [&](I t, I len, const T* src) {
        for (I u = 0; u < len; ++u) panel[(t + u) * mr + r] = src[u];
      });
    }
  }
}

template <class T>
void pack_grad_b(const void* ctx, I p0, I j0, I kc, I cols, int nr, T* dst) {
  const auto& m = *static_cast<const GradCols<T>*>(ctx);
  for (I r = 0; r < kc; ++r, dst += nr) {  // one panel, row by row
    grad_row_runs(m, p0 + r, j0, cols, [&](I t, I len, const T* src) {
      for (I u = 0; u < len; ++u) dst[t + u] = src[u];
    });
    std::fill(dst + cols, dst + nr, T(0));
  }
}

// ------------------------------------------------------------ epilogue

/// The forward epilogue, per tile while it is in L1: + b[f] per row
/// (channel), then act, written to the tile's NCHW place in y (and z). For
/// a GEMM over several images (columns (n, s)) C is a scratch and this
/// moves each tile out; for one image C is y itself (in place).
template <class T>
struct TileToNchw {
  const detail::EltwiseKernels<T>* kernels;
  const T* b;  // (Fg,) or null
  T* y;        // image n0, channel g*Fg
  T* z;        // likewise, or null
  I img_stride, sl;
  Activation act;
  T slope;
};

template <class T>
void tile_to_nchw(const void* ctx, T* c, I ldc, I i0, I j0, int rows, int cols) {
  const auto& e = *static_cast<const TileToNchw<T>*>(ctx);
  for (int r = 0; r < rows; ++r) {
    T* row = c + r * ldc;
    if (e.b != nullptr) {
      const T bias = e.b[i0 + r];
      for (int t = 0; t < cols; ++t) row[t] += bias;
    }
    for (I t = 0, col = j0; t < cols;) {
      const I img = col / e.sl, s0 = col % e.sl, len = std::min<I>(cols - t, e.sl - s0);
      const I off = img * e.img_stride + (i0 + r) * e.sl + s0;
      e.kernels->forward(e.y + off, e.z != nullptr ? e.z + off : nullptr, row + t, nullptr, len,
                         e.act, e.slope);
      t += len;
      col += len;
    }
  }
}

// ------------------------------------------------------------ drivers

/// Runs body(item, threads, part) for item in [0, items): one item per
/// thread with threads = 1 when there are enough items (part: the thread's
/// index among items_parts(items, budget), for per-thread scratch), else
/// one after another with the whole budget (part 0). Exceptions are
/// rethrown on the calling thread.
inline int items_parts(I items, int budget) {
  return budget <= 1 || items < budget ? 1 : detail::parts_for(items, budget);
}

template <class F>
void for_items(I items, int budget, F&& body) {
  if (items_parts(items, budget) == 1) {
    for (I it = 0; it < items; ++it) body(it, budget, 0);
    return;
  }
  std::exception_ptr error;
  detail::parallel_parts(items, budget, 1, [&](int part, I b, I e) {
    try {
      for (I it = b; it < e; ++it) body(it, 1, part);
    } catch (...) {
#pragma omp critical(matnet_conv_error)
      error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

int budget_for(double flops) {
  return flops < detail::thresholds::parallel_min_flops ? 1 : std::max(get_num_threads(), 1);
}

/// Images per GEMM: enough small images that a GEMM has at least
/// thresholds::conv_min_gemm_cols columns (or reduction length), else 1.
I images_per_gemm(I batch, I sl) {
  const I want = (detail::thresholds::conv_min_gemm_cols + sl - 1) / std::max<I>(sl, 1);
  return std::max<I>(1, std::min(batch, want));
}

/// True for a 1x1 convolution with stride 1 and no padding: im2col(x) is x.
bool is_plain(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_top == 0 && s.pad_left == 0 && s.pad_bottom == 0 && s.pad_right == 0;
}

/// The forward convolution without validation; pads may be negative (the
/// stride-1 dX path). y, z (N, F, OH, OW).
template <class T>
void forward_run(T* y, T* z, const T* x, const T* w, const T* b, const Conv2dShape& s,
                 Activation act, T slope, int budget) {
  const I oh = s.out_h(), ow = s.out_w(), sl = oh * ow, hw = s.height * s.width;
  const I g_count = s.groups, cg = s.in_channels / g_count, fg = s.out_channels / g_count;
  const I kg = cg * s.kernel_h * s.kernel_w;
  const bool plain = is_plain(s);
  const bool need_ep = b != nullptr || z != nullptr || act != Activation::identity;
  const auto* kern = detail::kernels<T>().eltwise;
  const I nb = images_per_gemm(s.batch, sl);
  if (nb > 1) {
    // Small images: nb images per GEMM (columns (n, i, j)) into a per-thread
    // scratch, each tile moved to its NCHW place by the epilogue.
    const I blocks = (s.batch + nb - 1) / nb, items = blocks * g_count;
    detail::WorkspaceScope scope;
    T* scratch = scope.alloc<T>(static_cast<std::size_t>(items_parts(items, budget) * fg * nb * sl));
    for_items(items, budget, [&](I it, int threads, int part) {
      const I n0 = (it / g_count) * nb, g = it % g_count, cols = std::min(nb, s.batch - n0) * sl;
      const I out_off = (n0 * s.out_channels + g * fg) * sl;
      const Im2col<T> pack_ctx{x + (n0 * s.in_channels + g * cg) * hw, &s, oh, ow,
                               s.in_channels * hw};
      GemmOperand<T> bop;
      bop.pack = &pack_im2col<T>;
      bop.ctx = &pack_ctx;
      const TileToNchw<T> ep_ctx{kern, b != nullptr ? b + g * fg : nullptr, y + out_off,
                                 z != nullptr ? z + out_off : nullptr, s.out_channels * sl, sl,
                                 act, slope};
      const detail::GemmTileEpilogue<T> ep{&tile_to_nchw<T>, &ep_ctx};
      detail::gemm_operands<T>(fg, cols, kg, T(1), GemmOperand<T>::blas(w + g * fg * kg, kg, false),
                               bop, T(0), scratch + part * fg * nb * sl, cols, &ep, threads);
    });
    return;
  }
  for_items(s.batch * g_count, budget, [&](I it, int threads, int) {
    const I n = it / g_count, g = it % g_count;
    const T* xg = x + (n * s.in_channels + g * cg) * hw;
    const I out_off = (n * s.out_channels + g * fg) * sl;
    const Im2col<T> pack_ctx{xg, &s, oh, ow, 0};
    GemmOperand<T> bop = GemmOperand<T>::blas(xg, hw, false);
    if (!plain) {
      bop = GemmOperand<T>{};
      bop.pack = &pack_im2col<T>;
      bop.ctx = &pack_ctx;
    }
    const TileToNchw<T> ep_ctx{kern, b != nullptr ? b + g * fg : nullptr, y + out_off,
                               z != nullptr ? z + out_off : nullptr, 0, sl, act, slope};
    const detail::GemmTileEpilogue<T> ep{&tile_to_nchw<T>, &ep_ctx};
    detail::gemm_operands<T>(fg, sl, kg, T(1), GemmOperand<T>::blas(w + g * fg * kg, kg, false),
                             bop, T(0), y + out_off, sl, need_ep ? &ep : nullptr, threads);
  });
}

bool overlaps(const void* a, I a_bytes, const void* b, I b_bytes) {
  if (a == nullptr || b == nullptr || a_bytes == 0 || b_bytes == 0) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + static_cast<std::uintptr_t>(b_bytes) &&
         pb < pa + static_cast<std::uintptr_t>(a_bytes);
}

struct Region {
  const void* p;
  I bytes;
  const char* name;
};

/// Throws unless every output is disjoint from every input and other output.
void require_disjoint(const char* fn, std::initializer_list<Region> outs,
                      std::initializer_list<Region> ins) {
  for (auto o = outs.begin(); o != outs.end(); ++o) {
    for (const Region& i : ins)
      if (overlaps(o->p, o->bytes, i.p, i.bytes))
        detail::fail(fn, std::string(o->name) + " overlaps " + i.name);
    for (auto p = o + 1; p != outs.end(); ++p)
      if (overlaps(o->p, o->bytes, p->p, p->bytes))
        detail::fail(fn, std::string(o->name) + " overlaps " + p->name);
  }
}

template <class T>
void forward_impl(T* y, T* z, const T* x, const T* w, const T* b, const Conv2dShape& s,
                  Activation act, T slope) {
  constexpr const char* fn = "conv2d_forward";
  conv2d_check_shape(fn, s);
  detail::require_activation(fn, act);
  if (s.batch == 0 || s.out_channels == 0) return;
  detail::require_ptr(fn, "y", y);
  detail::require_ptr(fn, "w", w);
  if (s.in_channels > 0) detail::require_ptr(fn, "x", x);
  if (z == y) {
    if (act != Activation::identity)
      detail::fail(fn, "z must not be y unless the activation is identity");
    z = nullptr;
  }
  const I sz = sizeof(T), ybytes = s.batch * s.out_channels * s.out_h() * s.out_w() * sz;
  require_disjoint(fn, {{y, ybytes, "y"}, {z, ybytes, "z"}},
                   {{x, s.batch * s.in_channels * s.height * s.width * sz, "x"},
                    {w, s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w * sz,
                     "w"},
                    {b, s.out_channels * sz, "b"}});
  const double flops = static_cast<double>(ybytes / sz) * (s.in_channels / s.groups) *
                       s.kernel_h * s.kernel_w;
  forward_run(y, z, x, w, b, s, act, slope, budget_for(flops));
}

template <class T>
void backward_impl(T* dx, T* dw, T* db, const T* gy, const T* x, const T* w, const T* z,
                   const Conv2dShape& s, Activation act, T slope) {
  constexpr const char* fn = "conv2d_backward";
  conv2d_check_shape(fn, s);
  detail::require_activation(fn, act);
  const I oh = s.out_h(), ow = s.out_w(), sl = oh * ow, hw = s.height * s.width;
  const I g_count = s.groups, cg = s.in_channels / g_count, fg = s.out_channels / g_count;
  const I kg = cg * s.kernel_h * s.kernel_w, khw = s.kernel_h * s.kernel_w;
  const I n_out = s.batch * s.out_channels * sl, n_in = s.batch * s.in_channels * hw;
  const I sz = sizeof(T);
  if (s.out_channels * kg > 0) detail::require_ptr(fn, "dw", dw);
  if (n_out > 0) {
    detail::require_ptr(fn, "grad_y", gy);
    if (act != Activation::identity) detail::require_ptr(fn, "z", z);
  }
  if (n_in > 0) detail::require_ptr(fn, "x", x);
  if (dx != nullptr && s.out_channels > 0) detail::require_ptr(fn, "w", w);
  require_disjoint(fn,
                   {{dx, n_in * sz, "dx"}, {dw, s.out_channels * kg * sz, "dw"},
                    {db, s.out_channels * sz, "db"}},
                   {{gy, n_out * sz, "grad_y"}, {x, n_in * sz, "x"},
                    {w, s.out_channels * kg * sz, "w"}, {z, n_out * sz, "z"}});
  const double flops = static_cast<double>(n_out) * kg;
  const int budget = budget_for(flops);
  const bool plain = is_plain(s);
  detail::WorkspaceScope scope;

  // dZ = grad_y * act'(z)
  const T* dz = gy;
  if (act != Activation::identity && n_out > 0) {
    T* buf = scope.alloc<T>(static_cast<std::size_t>(n_out));
    const auto& kern = *detail::kernels<T>().eltwise;
    detail::parallel_split(n_out, detail::threads_for(n_out, budget), 64, [&](I b0, I e0) {
      kern.backward(buf + b0, nullptr, gy + b0, z + b0, e0 - b0, act, slope);
    });
    dz = buf;
  }
  // db = sum of dZ over n and the spatial positions
  if (db != nullptr) {
    const auto& kern = *detail::kernels<T>().eltwise;  // dot(a, null) = vectorised sum
    detail::parallel_split(s.out_channels, detail::threads_for(n_out, budget), 1, [&](I f0, I f1) {
      for (I f = f0; f < f1; ++f) {
        double acc = 0;
        for (I n = 0; n < s.batch; ++n) acc += kern.dot(dz + (n * s.out_channels + f) * sl, nullptr, sl);
        db[f] = static_cast<T>(acc);
      }
    });
  }
  // dw[g] (Fg, Kg) = sum_n dZ[n, g] (Fg, S) . im2col(x[n, g])^T (S, Kg): one
  // GEMM per block of nb images (reduction nb*S; nb = 1 unless the images
  // are small), accumulated; the blocks are split over threads, each
  // summing into its own partial (parallel_k_sum).
  const I nb = images_per_gemm(s.batch, sl), blocks = (s.batch + nb - 1) / nb;
  for (I g = 0; g < g_count; ++g) {
    detail::parallel_k_sum<T>(
        blocks, 1, budget, fg, kg, dw + g * fg * kg, kg, T(0),
        [&](int, I b0, I b1, T* dst, I ld, T beta) {
          if (b0 == b1) {  // no image: the partial is zero
            for (I f = 0; f < fg; ++f) std::fill(dst + f * ld, dst + f * ld + kg, T(0));
            return;
          }
          for (I blk = b0; blk < b1; ++blk) {
            const I n0 = blk * nb, cols = std::min(nb, s.batch - n0) * sl;
            const T* xg = x + (n0 * s.in_channels + g * cg) * hw;
            const T* dzg = dz + (n0 * s.out_channels + g * fg) * sl;
            const Im2col<T> b_ctx{xg, &s, oh, ow, s.in_channels * hw};
            const GradCols<T> a_ctx{dzg, s.out_channels * sl, sl};
            GemmOperand<T> aop = GemmOperand<T>::blas(dzg, sl, false);
            GemmOperand<T> bop = GemmOperand<T>::blas(xg, hw, true);  // 1x1: x[n, g]^T
            if (nb > 1) {
              aop = GemmOperand<T>{};
              aop.pack = &pack_grad_a<T>;
              aop.ctx = &a_ctx;
            }
            if (!plain || nb > 1) {
              bop = GemmOperand<T>{};
              bop.pack = &pack_im2col_t<T>;
              bop.ctx = &b_ctx;
            }
            detail::gemm_operands<T>(fg, kg, cols, T(1), aop, bop, blk == b0 ? beta : T(1), dst,
                                     ld, nullptr, 1);
          }
        });
  }
  if (dx == nullptr || n_in == 0) return;
  const bool flipped = s.stride_h == 1 && s.stride_w == 1 && !plain &&
                       kg * sl * sz > detail::thresholds::conv_dcol_max_bytes;
  if (flipped) {
    // dx = conv(dZ, w'): w'[g*Cg + c, f, p, q] = w[g*Fg + f, c, KH-1-p, KW-1-q].
    T* wt = scope.alloc<T>(static_cast<std::size_t>(s.out_channels * kg));
    for (I g = 0; g < g_count; ++g)
      for (I f = 0; f < fg; ++f)
        for (I c = 0; c < cg; ++c)
          for (I t = 0; t < khw; ++t)
            wt[((g * cg + c) * fg + f) * khw + (khw - 1 - t)] = w[((g * fg + f) * cg + c) * khw + t];
    Conv2dShape t = s;
    t.in_channels = s.out_channels;
    t.out_channels = s.in_channels;
    t.height = oh;
    t.width = ow;
    const I eh = s.dilation_h * (s.kernel_h - 1), ew = s.dilation_w * (s.kernel_w - 1);
    t.pad_top = eh - s.pad_top;
    t.pad_bottom = eh - s.pad_bottom;
    t.pad_left = ew - s.pad_left;
    t.pad_right = ew - s.pad_right;
    forward_run<T>(dx, nullptr, dz, wt, nullptr, t, Activation::identity, T(0), budget);
    return;
  }
  // dcol (Kg, nb*S) = w[g]^T . dZ[block, g], then col2im into dx[n, g]
  // (1x1 with one image per GEMM: the GEMM writes dx).
  const bool direct = plain && nb == 1;
  const I items = blocks * g_count;
  const int parts = detail::parts_for(items, budget);
  T* cols_buf = scope.alloc<T>(static_cast<std::size_t>(direct ? 0 : parts * kg * nb * sl));
  std::exception_ptr error;
  detail::parallel_parts(items, budget, 1, [&](int part, I b0, I e0) {
    T* dcol = cols_buf + part * kg * nb * sl;
    try {
      for (I it = b0; it < e0; ++it) {
        const I n0 = (it / g_count) * nb, g = it % g_count, count = std::min(nb, s.batch - n0);
        const I ld = count * sl;
        const T* dzg = dz + (n0 * s.out_channels + g * fg) * sl;
        const GradCols<T> b_ctx{dzg, s.out_channels * sl, sl};
        GemmOperand<T> bop = GemmOperand<T>::blas(dzg, sl, false);
        if (nb > 1) {
          bop = GemmOperand<T>{};
          bop.pack = &pack_grad_b<T>;
          bop.ctx = &b_ctx;
        }
        T* dxg0 = dx + (n0 * s.in_channels + g * cg) * hw;
        detail::gemm_operands<T>(kg, ld, fg, T(1), GemmOperand<T>::blas(w + g * fg * kg, kg, true),
                                 bop, T(0), direct ? dxg0 : dcol, ld, nullptr, 1);
        if (direct) continue;  // 1x1: dcol is dx
        for (I n = 0; n < count; ++n) {
          T* dxg = dxg0 + n * s.in_channels * hw;
          std::fill(dxg, dxg + cg * hw, T(0));
          for (I q = 0; q < kg; ++q) {
            T* plane = dxg + (q / khw) * hw;
            const I dh = ((q % khw) / s.kernel_w) * s.dilation_h;
            const I dwo = (q % s.kernel_w) * s.dilation_w;
            for (I i = 0; i < oh; ++i)
              scatter_add_run(plane, dcol + q * ld + n * sl + i * ow, s.height, s.width,
                              i * s.stride_h - s.pad_top + dh, -s.pad_left + dwo, ow,
                              s.stride_w);
          }
        }
      }
    } catch (...) {
#pragma omp critical(matnet_conv_error)
      error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

}  // namespace

void conv2d_check_shape(const char* fn, const Conv2dShape& s) {
  const std::pair<const char*, I> sizes[] = {
      {"batch", s.batch}, {"in_channels", s.in_channels}, {"height", s.height},
      {"width", s.width}, {"out_channels", s.out_channels}, {"pad_top", s.pad_top},
      {"pad_bottom", s.pad_bottom}, {"pad_left", s.pad_left}, {"pad_right", s.pad_right}};
  for (const auto& [name, v] : sizes) detail::require_size(fn, name, v);
  const std::pair<const char*, I> positive[] = {
      {"kernel_h", s.kernel_h}, {"kernel_w", s.kernel_w}, {"stride_h", s.stride_h},
      {"stride_w", s.stride_w}, {"dilation_h", s.dilation_h}, {"dilation_w", s.dilation_w},
      {"groups", s.groups}};
  for (const auto& [name, v] : positive)
    if (v < 1) detail::fail(fn, std::string(name) + " must be >= 1, got " + std::to_string(v));
  if (s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0)
    detail::fail(fn, "groups = " + std::to_string(s.groups) + " must divide in_channels = " +
                         std::to_string(s.in_channels) + " and out_channels = " +
                         std::to_string(s.out_channels));
  if (s.height + s.pad_top + s.pad_bottom < s.dilation_h * (s.kernel_h - 1) + 1 ||
      s.width + s.pad_left + s.pad_right < s.dilation_w * (s.kernel_w - 1) + 1)
    detail::fail(fn, "the (dilated) kernel is larger than the padded input");
}

void conv2d_forward(float* y, float* z, const float* x, const float* w, const float* b,
                    const Conv2dShape& s, Activation act, float negative_slope) {
  forward_impl(y, z, x, w, b, s, act, negative_slope);
}
void conv2d_forward(double* y, double* z, const double* x, const double* w, const double* b,
                    const Conv2dShape& s, Activation act, double negative_slope) {
  forward_impl(y, z, x, w, b, s, act, negative_slope);
}
void conv2d_backward(float* dx, float* dw, float* db, const float* grad_y, const float* x,
                     const float* w, const float* z, const Conv2dShape& s, Activation act,
                     float negative_slope) {
  backward_impl(dx, dw, db, grad_y, x, w, z, s, act, negative_slope);
}
void conv2d_backward(double* dx, double* dw, double* db, const double* grad_y, const double* x,
                     const double* w, const double* z, const Conv2dShape& s, Activation act,
                     double negative_slope) {
  backward_impl(dx, dw, db, grad_y, x, w, z, s, act, negative_slope);
}

}  // namespace matnet
