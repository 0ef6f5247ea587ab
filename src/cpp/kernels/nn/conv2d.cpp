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

/// Output pixels [j0, j0 + cols) cut at output-row ends: runs (first
/// column offset, length, output row i, output column j) of the panel.
struct PixelRun {
  I t0, len, i, j;
};

inline int pixel_runs(I j0, I cols, I ow, PixelRun* runs) {
  int count = 0;
  I i = j0 / ow, j = j0 % ow;
  for (I t = 0; t < cols; ++count) {
    const I len = std::min(cols - t, ow - j);
    runs[count] = {t, len, i, j};
    t += len;
    j = 0;
    ++i;
  }
  return count;
}

/// B operand of the forward GEMM for one image and group: im2col(x) (Kg, S),
/// element ((c, p, q), (i, j)) = x[c, i*sh - pt + p*dh, j*sw - pl + q*dw].
template <class T>
struct Im2col {
  const T* x;  // (Cg, H, W) of this image and group
  const Conv2dShape* s;
  I oh, ow;
};

template <class T>
void pack_im2col(const void* ctx, I p0, I j0, I kc, I cols, int nr, T* dst) {
  const auto& m = *static_cast<const Im2col<T>*>(ctx);
  const Conv2dShape& s = *m.s;
  const I h = s.height, w = s.width;
  PixelRun runs[kMaxPanel];
  const int nruns = pixel_runs(j0, cols, m.ow, runs);
  const I khw = s.kernel_h * s.kernel_w;
  I c = p0 / khw, p = (p0 % khw) / s.kernel_w, q = p0 % s.kernel_w;
  for (I r = 0; r < kc; ++r, dst += nr) {
    const T* plane = m.x + c * h * w;
    for (int u = 0; u < nruns; ++u) {
      const PixelRun& run = runs[u];
      gather_run(dst + run.t0, 1, plane, h, w, run.i * s.stride_h - s.pad_top + p * s.dilation_h,
                 run.j * s.stride_w - s.pad_left + q * s.dilation_w, run.len, s.stride_w);
    }
    std::fill(dst + cols, dst + nr, T(0));
    if (++q == s.kernel_w) {
      q = 0;
      if (++p == s.kernel_h) p = 0, ++c;
    }
  }
}

/// B operand of the dW GEMM for one image and group: im2col(x)^T (S, Kg),
/// element ((i, j), (c, p, q)) = x[c, i*sh - pt + p*dh, j*sw - pl + q*dw].
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
    pixel_runs(at, std::min(rows_left, m.ow - at % m.ow), m.ow, chunk);
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
      gather_run(dst + run.t0 * nr + col, nr, plane, h, w,
                 run.i * s.stride_h - s.pad_top + dh, run.j * s.stride_w - s.pad_left + dw,
                 run.len, s.stride_w);
    }
  }
  for (int u = 0; u < nruns; ++u)
    for (I t = runs[u].t0; t < runs[u].t0 + runs[u].len; ++t)
      std::fill(dst + t * nr + cols, dst + (t + 1) * nr, T(0));
}

// ------------------------------------------------------------ epilogue

template <class T>
struct BiasRowsAct {
  const detail::EltwiseKernels<T>* kernels;
  const T* b;  // (Fg,) or null
  T* z;        // (Fg, S) or null
  I ldz;
  Activation act;
  T slope;
};

/// Per output row (channel): + b[f], keep z, apply act, on a tile in cache.
template <class T>
void bias_rows_act(const void* ctx, T* c, I ldc, I i0, I j0, int rows, int cols) {
  const auto& e = *static_cast<const BiasRowsAct<T>*>(ctx);
  for (int r = 0; r < rows; ++r) {
    T* row = c + r * ldc;
    if (e.b != nullptr) {
      const T bias = e.b[i0 + r];
      for (int t = 0; t < cols; ++t) row[t] += bias;
    }
    if (e.act != Activation::identity || e.z != nullptr)
      e.kernels->forward(row, e.z != nullptr ? e.z + (i0 + r) * e.ldz + j0 : nullptr, row,
                         nullptr, cols, e.act, e.slope);
  }
}

// ------------------------------------------------------------ drivers

/// Runs body(item, threads) for item in [0, items): one item per thread with
/// threads = 1 when there are enough items, else one after another with the
/// whole budget. Exceptions are rethrown on the calling thread.
template <class F>
void for_items(I items, int budget, F&& body) {
  if (budget <= 1 || items < budget) {
    for (I it = 0; it < items; ++it) body(it, budget);
    return;
  }
  std::exception_ptr error;
  detail::parallel_split(items, budget, 1, [&](I b, I e) {
    try {
      for (I it = b; it < e; ++it) body(it, 1);
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
  for_items(s.batch * g_count, budget, [&](I it, int threads) {
    const I n = it / g_count, g = it % g_count;
    const T* xg = x + (n * s.in_channels + g * cg) * hw;
    const I out_off = (n * s.out_channels + g * fg) * sl;
    const Im2col<T> pack_ctx{xg, &s, oh, ow};
    GemmOperand<T> bop = GemmOperand<T>::blas(xg, hw, false);
    if (!plain) {
      bop = GemmOperand<T>{};
      bop.pack = &pack_im2col<T>;
      bop.ctx = &pack_ctx;
    }
    const BiasRowsAct<T> ep_ctx{kern, b != nullptr ? b + g * fg : nullptr,
                                z != nullptr ? z + out_off : nullptr, sl, act, slope};
    const detail::GemmTileEpilogue<T> ep{&bias_rows_act<T>, &ep_ctx};
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
  // GEMM per image (reduction S), accumulated; the images are split over
  // threads, each summing into its own partial (parallel_k_sum).
  for (I g = 0; g < g_count; ++g) {
    detail::parallel_k_sum<T>(
        s.batch, 1, budget, fg, kg, dw + g * fg * kg, kg, T(0),
        [&](int, I n0, I n1, T* dst, I ld, T beta) {
          if (n0 == n1) {  // no image: the partial is zero
            for (I f = 0; f < fg; ++f) std::fill(dst + f * ld, dst + f * ld + kg, T(0));
            return;
          }
          for (I n = n0; n < n1; ++n) {
            const T* xg = x + (n * s.in_channels + g * cg) * hw;
            const Im2col<T> b_ctx{xg, &s, oh, ow};
            GemmOperand<T> bop = GemmOperand<T>::blas(xg, hw, true);  // 1x1: x[n, g]^T
            if (!plain) {
              bop = GemmOperand<T>{};
              bop.pack = &pack_im2col_t<T>;
              bop.ctx = &b_ctx;
            }
            detail::gemm_operands<T>(
                fg, kg, sl, T(1), GemmOperand<T>::blas(dz + (n * s.out_channels + g * fg) * sl, sl,
                                                       false),
                bop, n == n0 ? beta : T(1), dst, ld, nullptr, 1);
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
  // dcol (Kg, S) = w[g]^T . dZ[n, g], then col2im into dx[n, g].
  const int parts = detail::parts_for(s.batch * g_count, budget);
  T* cols = scope.alloc<T>(static_cast<std::size_t>(plain ? 0 : parts * kg * sl));
  std::exception_ptr error;
  detail::parallel_parts(s.batch * g_count, budget, 1,
                         [&](int part, I b0, I e0) {
    T* dcol = cols + part * kg * sl;
    try {
      for (I it = b0; it < e0; ++it) {
        const I n = it / g_count, g = it % g_count;
        T* dxg = dx + (n * s.in_channels + g * cg) * hw;
        detail::gemm_operands<T>(kg, sl, fg, T(1),
                                 GemmOperand<T>::blas(w + g * fg * kg, kg, true),
                                 GemmOperand<T>::blas(dz + (n * s.out_channels + g * fg) * sl, sl,
                                                      false),
                                 T(0), plain ? dxg : dcol, sl, nullptr, 1);
        if (plain) continue;  // 1x1: dcol is dx
        std::fill(dxg, dxg + cg * hw, T(0));
        for (I q = 0; q < kg; ++q) {
          T* plane = dxg + (q / khw) * hw;
          const I dh = ((q % khw) / s.kernel_w) * s.dilation_h;
          const I dwo = (q % s.kernel_w) * s.dilation_w;
          for (I i = 0; i < oh; ++i)
            scatter_add_run(plane, dcol + q * sl + i * ow, s.height, s.width,
                            i * s.stride_h - s.pad_top + dh, -s.pad_left + dwo, ow, s.stride_w);
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
