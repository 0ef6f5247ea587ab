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
// packed KC x NR buffer (rows (c, kh, kw), columns (oh, ow)). In the
// forward pass the im2col matrix is never materialised: the packed buffer already is a copy, so
// materialising it first would be a second copy of Kg*S elements per image
// (9x the input for 3x3), and for stride 1 each packed row is a contiguous
// run of the input. An NHWC copy would need the transposes in and out.
//
//   forward:  y[n, g] (Fg, S) = act(w[g] (Fg, Kg) . im2col(x[n, g]) (Kg, S) + b[g])
//             the bias as column Kg of A against a row of ones after im2col
//             (added in registers), the activation in the GEMM's tile epilogue.
//             1x1, stride 1, no padding: B is x[n, g] itself (Cg, H*W).
//   dW:       dw[g] (Fg, Kg) = sum_n dZ[n, g] (Fg, S) . im2col(x[n, g])^T (S, Kg)
//             by chunks of pixels, accumulated: A is dZ as it is, B a chunk
//             of im2col written out row-major (contiguous copies) and read
//             transposed by the ISA's packer; images split over threads,
//             each a private partial (parallel_k_sum), summed in a fixed order.
//   dX:       stride 1 on images at least thresholds::conv_dx_flip_min_width
//             wide with enough channels (conv_dx_flip_min_channels), with a
//             large dcol, or when that convolution runs by Winograd
//             (winograd_applies): dx = conv(dZ, w') with w' the
//             kernel flipped and in/out channels swapped, padding
//             dh*(KH-1) - pad (may be negative: rows cropped) - the forward
//             path again, no scratch. Otherwise dcol (Kg, S) = w[g]^T . dZ[n, g]
//             per image in per-thread workspace, then col2im adds it into dx
//             (1x1: the GEMM writes dx).
// 3x3, stride 1, undilated, with enough channels (thresholds::winograd_*):
// forward_run hands the whole convolution to Winograd F(2x2, 3x3)
// (conv2d_winograd.cpp), 2.25x fewer multiplications; the flipped dX
// reaches it through forward_run too.
// The im2col of a padded input reads a zero-padded copy of the image's
// planes (pad_planes), so every packed row is a plain copy.
// Threads: over images x groups, one single-threaded GEMM each, when there
// are at least as many of those as threads; otherwise each GEMM gets the
// whole budget.
#include "matnet/conv.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "blas3/gemm_driver.hpp"
#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/workspace.hpp"
#include "nn/conv2d_winograd.hpp"
#include "runtime/registry.hpp"

namespace matnet {

namespace {

using detail::GemmOperand;
using I = std::int64_t;

// ------------------------------------------------------------ pack callbacks

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

/// col2im's step: plane[ih, iw0 + t*sw] += src[t] for t in [0, len) inside the image.
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

/// d[0, n) = s[0, n) for the short runs of im2col (a few to a few dozen
/// values): constant-size copies, which compile to vector moves, where a
/// plain loop becomes a memmove call (4% of the forward time).
template <class T>
inline void copy_short(T* d, const T* s, I n) {
  auto* dc = reinterpret_cast<char*>(d);
  auto* sc = reinterpret_cast<const char*>(s);
  I bytes = n * static_cast<I>(sizeof(T));
  for (; bytes >= 64; bytes -= 64, dc += 64, sc += 64) std::memcpy(dc, sc, 64);
  if (bytes & 32) std::memcpy(dc, sc, 32), dc += 32, sc += 32;
  if (bytes & 16) std::memcpy(dc, sc, 16), dc += 16, sc += 16;
  if (bytes & 8) std::memcpy(dc, sc, 8), dc += 8, sc += 8;
  if (bytes & 4) std::memcpy(dc, sc, 4);
}

/// Input planes copied with their padding made explicit: for `count`
/// images, `planes` channels each, plane (hp x wp) = x's (h x w) plane at
/// rows [pt, pt + h) and columns [pl, pl + w), zeros around it (negative
/// pads crop). Every im2col element is then a plain load, and for stride 1
/// each row of an im2col run is a contiguous copy: the bounds of each run
/// (and its zero fill) are paid once per input element here instead of once
/// per kernel tap and run in the packing (forward packing was 36% of the
/// forward time, (64,16,32,32)->32 3x3, 1 thread).
template <class T>
void pad_planes(T* dst, const T* x, I count, I x_img_stride, I planes, I h, I w, I pt, I pl,
                I hp, I wp) {
  const I lo = std::clamp<I>(pl, 0, wp), hi = std::clamp<I>(pl + w, lo, wp);
  for (I n = 0; n < count; ++n)
    for (I c = 0; c < planes; ++c) {
      const T* plane = x + n * x_img_stride + c * h * w;
      for (I r = 0; r < hp; ++r, dst += wp) {
        const I ih = r - pt;
        if (ih < 0 || ih >= h) {
          std::fill(dst, dst + wp, T(0));
          continue;
        }
        std::fill(dst, dst + lo, T(0));
        copy_short(dst + lo, plane + ih * w + (lo - pl), hi - lo);
        std::fill(dst + hi, dst + wp, T(0));
      }
    }
}

/// im2col of padded images (pad_planes) for one group, (Kg, images x S):
/// element ((c, p, q), (n, i, j)) = xp[n*img + koff[(c, p, q)] + i*sh*wp + j*sw]
/// with koff[(c, p, q)] = c*hp*wp + p*dh*wp + q*dw.
template <class T>
struct PaddedIm2col {
  const T* xp;
  const I* koff;  // (Kg,)
  I img, wp, sh, sw, oh, ow;
};

/// Rows [k0, k0 + kc) x columns [c0, c0 + cols) of the im2col matrix into
/// dst (row r at dst + r*ld), column runs cut at output-row ends.
template <class T>
void im2col_block(const PaddedIm2col<T>& m, I k0, I kc, I c0, I cols, T* dst, I ld) {
  const I sl = m.oh * m.ow;
  I img = c0 / sl, i = (c0 % sl) / m.ow, j = c0 % m.ow;
  for (I t = 0; t < cols;) {
    const I len = std::min(cols - t, m.ow - j);
    const T* src = m.xp + img * m.img + i * m.sh * m.wp + j * m.sw;
    T* d = dst + t;
    for (I r = 0; r < kc; ++r, d += ld) {
      const T* s = src + m.koff[k0 + r];
      if (m.sw == 1) {
        copy_short(d, s, len);
      } else {
        for (I u = 0; u < len; ++u) d[u] = s[u * m.sw];
      }
    }
    t += len;
    j = 0;
    if (++i == m.oh) i = 0, ++img;
  }
}

/// A full NR-wide panel of im2col rows [p0, p0 + kc) when its NR pixels lie
/// in one output row and the stride is 1: one fixed-size copy per row.
/// False (nothing written) otherwise.
template <class T, int NR>
inline bool pack_full_run(const PaddedIm2col<T>& m, I p0, I j0, I kc, T* dst) {
  const I sl = m.oh * m.ow, j = j0 % m.ow;
  if (m.sw != 1 || j + NR > m.ow) return false;
  const T* src = m.xp + (j0 / sl) * m.img + ((j0 % sl) / m.ow) * m.sh * m.wp + j;
  for (I r = 0; r < kc; ++r, dst += NR) {
    const T* s = src + m.koff[p0 + r];
    std::memcpy(dst, s, NR * sizeof(T));  // fixed length: a few vector moves, no call
  }
  return true;
}

/// The B operand of the forward GEMM: im2col (Kg rows), then, when the
/// bias rides in the product, a row of ones (row Kg, met by the bias
/// column of A) - the bias is then added in registers, where a tile
/// epilogue cost 5-8% of the forward time, (64,16,32,32)->32 3x3.
template <class T>
struct ForwardB {
  PaddedIm2col<T> im2col;
  I kg;
};

template <class T>
void pack_im2col(const void* ctx, I p0, I j0, I kc, I cols, int nr, T* dst) {
  const auto& fb = *static_cast<const ForwardB<T>*>(ctx);
  const PaddedIm2col<T>& m = fb.im2col;
  const I rows = std::clamp<I>(fb.kg - p0, 0, kc);  // im2col rows; the rest: ones
  for (I r = rows; r < kc; ++r) {
    std::fill(dst + r * nr, dst + r * nr + cols, T(1));
    std::fill(dst + r * nr + cols, dst + (r + 1) * nr, T(0));
  }
  // The usual panel, stride 1 and within one output row: one copy per row.
  if (cols == nr && ((nr == 16 && pack_full_run<T, 16>(m, p0, j0, rows, dst)) ||
                     (nr == 8 && pack_full_run<T, 8>(m, p0, j0, rows, dst))))
    return;
  im2col_block(m, p0, rows, j0, cols, dst, nr);
  if (cols < nr)
    for (I r = 0; r < rows; ++r) std::fill(dst + r * nr + cols, dst + (r + 1) * nr, T(0));
}

/// koff of PaddedIm2col for a (cg, kh, kw) kernel over padded planes (hp x wp).
void tap_offsets(I* koff, const Conv2dShape& s, I cg, I hp, I wp) {
  I* o = koff;
  for (I c = 0; c < cg; ++c)
    for (I p = 0; p < s.kernel_h; ++p)
      for (I q = 0; q < s.kernel_w; ++q) *o++ = c * hp * wp + p * s.dilation_h * wp + q * s.dilation_w;
}

/// dZ of images n0.. and one group as a matrix (Fg, images x S), element
/// (f, (n, s)) = dz[(n0 + n) * F*S + (g*Fg + f) * S + s]: the A operand of
/// dW and the B operand of dcol when a GEMM spans several small images.
template <class T>
struct GradCols {
  const T* dz;  // image n0, channel g*Fg
  I img_stride, sl;
  I col0 = 0;  // column 0 of the operand is column col0 of the matrix
};

/// body(t, len, src) over columns [c0, c0 + count) of row f: runs within one image.
template <class T, class F>
inline void grad_row_runs(const GradCols<T>& m, I f, I c0, I count, F&& body) {
  for (I t = 0, col = c0 + m.col0; t < count;) {
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
  if (e.b != nullptr)
    for (int r = 0; r < rows; ++r) {
      const T bias = e.b[i0 + r];
      for (int t = 0; t < cols; ++t) c[r * ldc + t] += bias;
    }
  // In place (one image per GEMM, C is y) and no activation: the bias only.
  if (e.y + (i0 * e.sl + j0) == c && e.z == nullptr && e.act == Activation::identity) return;
  // The tile's columns as runs within one image, the outer loop: the split
  // is the same for every row, so its divisions run once per run.
  for (I t = 0, col = j0; t < cols;) {
    const I img = col / e.sl, s0 = col % e.sl, len = std::min<I>(cols - t, e.sl - s0);
    for (int r = 0; r < rows; ++r) {
      const I off = img * e.img_stride + s0 + (i0 + r) * e.sl;
      e.kernels->forward(e.y + off, e.z != nullptr ? e.z + off : nullptr, c + r * ldc + t, nullptr,
                         len, e.act, e.slope);
    }
    t += len;
    col += len;
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
  detail::RegionErrors errors;
  detail::parallel_parts(items, budget, 1, [&](int part, I b, I e) {
    errors.run([&] {
      for (I it = b; it < e; ++it) body(it, 1, part);
    });
  });
  errors.rethrow();
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

bool has_padding(const Conv2dShape& s) {
  return s.pad_top != 0 || s.pad_left != 0 || s.pad_bottom != 0 || s.pad_right != 0;
}

/// Where the im2col of one group reads: the input itself when there is no
/// padding, else padded copies (pad_planes) of nb images in a scratch of
/// padded_size() elements.
struct Im2colSource {
  I hp, wp;
  bool copy;
  I padded_size(I nb, I cg) const { return copy ? nb * cg * hp * wp : 0; }
};

Im2colSource im2col_source(const Conv2dShape& s) {
  return {s.height + s.pad_top + s.pad_bottom, s.width + s.pad_left + s.pad_right,
          has_padding(s)};
}

/// The PaddedIm2col of images n0..n0+count (group channels from xg on),
/// padding them into xp first when the source needs it.
template <class T>
PaddedIm2col<T> im2col_of(const Im2colSource& src, const Conv2dShape& s, const T* xg, I count,
                          I cg, const I* koff, T* xp) {
  const I x_img = s.in_channels * s.height * s.width;
  if (!src.copy) return {xg, koff, x_img, src.wp, s.stride_h, s.stride_w, s.out_h(), s.out_w()};
  pad_planes(xp, xg, count, x_img, cg, s.height, s.width, s.pad_top, s.pad_left, src.hp, src.wp);
  return {xp, koff, cg * src.hp * src.wp, src.wp, s.stride_h, s.stride_w, s.out_h(), s.out_w()};
}

/// The forward convolution without validation; pads may be negative (the
/// stride-1 dX path). y, z (N, F, OH, OW).
template <class T>
void forward_run(T* y, T* z, const T* x, const T* w, const T* b, const Conv2dShape& s,
                 Activation act, T slope, int budget) {
  if (detail::winograd_applies<T>(s)) {
    detail::winograd_forward(y, z, x, w, b, s, act, slope, budget);
    return;
  }
  const I oh = s.out_h(), ow = s.out_w(), sl = oh * ow, hw = s.height * s.width;
  const I g_count = s.groups, cg = s.in_channels / g_count, fg = s.out_channels / g_count;
  const I kg = cg * s.kernel_h * s.kernel_w;
  const bool plain = is_plain(s);
  const auto* kern = detail::kernels<T>().eltwise;
  // Small images: nb images per GEMM (columns (n, i, j)) into a per-thread
  // scratch C, each tile moved to its NCHW place by the epilogue; one image
  // per GEMM writes y in place.
  const I nb = images_per_gemm(s.batch, sl);
  const I blocks = (s.batch + nb - 1) / nb, items = blocks * g_count;
  const Im2colSource src = im2col_source(s);
  const I c_size = nb > 1 ? fg * nb * sl : 0, part_size = src.padded_size(nb, cg) + c_size;
  const bool packed_b = !plain || nb > 1;  // else B is x[n, g] itself (1x1, one image)
  // The bias as column Kg of A (w and b side by side, row-major), met by
  // the row of ones that pack_im2col puts after im2col.
  const bool bias_in_gemm = b != nullptr && packed_b;
  const I ka = bias_in_gemm ? kg + 1 : kg;
  const bool need_ep =
      z != nullptr || act != Activation::identity || (b != nullptr && !bias_in_gemm);
  detail::WorkspaceScope scope;
  I* koff = scope.alloc<I>(static_cast<std::size_t>(kg));
  tap_offsets(koff, s, cg, src.hp, src.wp);
  const T* wa = w;
  if (bias_in_gemm) {
    T* wb = scope.alloc<T>(static_cast<std::size_t>(s.out_channels * ka));
    for (I f = 0; f < s.out_channels; ++f) {
      std::copy(w + f * kg, w + (f + 1) * kg, wb + f * ka);
      wb[f * ka + kg] = b[f];
    }
    wa = wb;
  }
  T* scratch = scope.alloc<T>(static_cast<std::size_t>(items_parts(items, budget) * part_size));
  for_items(items, budget, [&](I it, int threads, int part) {
    const I n0 = (it / g_count) * nb, g = it % g_count, cols = std::min(nb, s.batch - n0) * sl;
    const T* xg = x + (n0 * s.in_channels + g * cg) * hw;
    const I out_off = (n0 * s.out_channels + g * fg) * sl;
    T* const xp = scratch + part * part_size;
    T* const cbuf = xp + src.padded_size(nb, cg);
    GemmOperand<T> bop = GemmOperand<T>::blas(xg, hw, false);
    ForwardB<T> pack_ctx{};
    if (packed_b) {
      pack_ctx = {im2col_of(src, s, xg, cols / sl, cg, koff, xp), kg};
      bop = GemmOperand<T>{};
      bop.pack = &pack_im2col<T>;
      bop.ctx = &pack_ctx;
    }
    const TileToNchw<T> ep_ctx{kern, b != nullptr && !bias_in_gemm ? b + g * fg : nullptr,
                               y + out_off, z != nullptr ? z + out_off : nullptr,
                               s.out_channels * sl, sl, act, slope};
    const detail::GemmTileEpilogue<T> ep{&tile_to_nchw<T>, &ep_ctx};
    detail::gemm_operands<T>(fg, cols, ka, T(1), GemmOperand<T>::blas(wa + g * fg * ka, ka, false),
                             bop, T(0), nb > 1 ? cbuf : y + out_off, nb > 1 ? cols : sl,
                             nb > 1 || need_ep ? &ep : nullptr, threads);
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
  // dw[g] (Fg, Kg) = sum_n dZ[n, g] (Fg, S) . im2col(x[n, g])^T (S, Kg), by
  // blocks of nb images (nb = 1 unless the images are small) and, within a
  // block, by chunks of thresholds::conv_dw_chunk_cols columns (n, i, j):
  // each chunk of im2col is written out row-major (Kg x chunk, contiguous
  // copies from the padded planes) and the GEMM reads it transposed, so the
  // transpose runs in the ISA's packer (in registers) instead of element by
  // element in a pack callback (that callback was 42% of dW's time,
  // (64,16,32,32)->32 3x3, 1 thread). The blocks are split over threads,
  // each summing into its own partial (parallel_k_sum).
  const I nb = images_per_gemm(s.batch, sl), blocks = (s.batch + nb - 1) / nb;
  const Im2colSource src = im2col_source(s);
  const I chunk = std::min(detail::thresholds::conv_dw_chunk_cols, nb * sl);
  const I part_size = plain && nb == 1 ? 0 : src.padded_size(nb, cg) + kg * chunk;
  I* koff = scope.alloc<I>(static_cast<std::size_t>(kg));
  tap_offsets(koff, s, cg, src.hp, src.wp);
  T* dw_scratch =
      scope.alloc<T>(static_cast<std::size_t>(detail::parts_for(blocks, budget) * part_size));
  for (I g = 0; g < g_count; ++g) {
    detail::parallel_k_sum<T>(
        blocks, 1, budget, fg, kg, dw + g * fg * kg, kg, T(0),
        [&](int part, I b0, I b1, T* dst, I ld, T beta) {
          if (b0 == b1) {  // no image: the partial is zero
            for (I f = 0; f < fg; ++f) std::fill(dst + f * ld, dst + f * ld + kg, T(0));
            return;
          }
          T* const xp = dw_scratch + part * part_size;
          T* const xcol = xp + src.padded_size(nb, cg);
          for (I blk = b0; blk < b1; ++blk) {
            const I n0 = blk * nb, count = std::min(nb, s.batch - n0), cols = count * sl;
            const T* xg = x + (n0 * s.in_channels + g * cg) * hw;
            const T* dzg = dz + (n0 * s.out_channels + g * fg) * sl;
            if (plain && nb == 1) {  // 1x1: im2col(x[n, g]) is x[n, g] (Cg, H*W)
              detail::gemm_operands<T>(fg, kg, cols, T(1), GemmOperand<T>::blas(dzg, sl, false),
                                       GemmOperand<T>::blas(xg, hw, true), blk == b0 ? beta : T(1),
                                       dst, ld, nullptr, 1);
              continue;
            }
            const PaddedIm2col<T> col_src = im2col_of(src, s, xg, count, cg, koff, xp);
            for (I c0 = 0; c0 < cols; c0 += chunk) {
              const I len = std::min(chunk, cols - c0);
              im2col_block(col_src, 0, kg, c0, len, xcol, len);
              const GradCols<T> a_ctx{dzg, s.out_channels * sl, sl, c0};
              GemmOperand<T> aop = GemmOperand<T>::blas(dzg + c0, sl, false);
              if (nb > 1) {
                aop = GemmOperand<T>{};
                aop.pack = &pack_grad_a<T>;
                aop.ctx = &a_ctx;
              }
              detail::gemm_operands<T>(fg, kg, len, T(1), aop,
                                       GemmOperand<T>::blas(xcol, len, true),
                                       blk == b0 && c0 == 0 ? beta : T(1), dst, ld, nullptr, 1);
            }
          }
        });
  }
  if (dx == nullptr || n_in == 0) return;
  // The flipped convolution's shape: dZ in, dx out, padding dh*(KH-1) - pad.
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
  // ... taken whenever it runs by Winograd (2.25x fewer multiplications
  // than either direct form; measured below the flip's width threshold:
  // see conv_dx_flip_min_width).
  const bool flipped = s.stride_h == 1 && s.stride_w == 1 && !plain &&
                       ((s.width >= detail::thresholds::conv_dx_flip_min_width &&
                         cg >= detail::thresholds::conv_dx_flip_min_channels) ||
                        kg * sl * sz > detail::thresholds::conv_dcol_max_bytes ||
                        detail::winograd_applies<T>(t));
  if (flipped) {
    // dx = conv(dZ, w'): w'[g*Cg + c, f, p, q] = w[g*Fg + f, c, KH-1-p, KW-1-q].
    T* wt = scope.alloc<T>(static_cast<std::size_t>(s.out_channels * kg));
    for (I g = 0; g < g_count; ++g)
      for (I f = 0; f < fg; ++f)
        for (I c = 0; c < cg; ++c)
          for (I q = 0; q < khw; ++q)
            wt[((g * cg + c) * fg + f) * khw + (khw - 1 - q)] = w[((g * fg + f) * cg + c) * khw + q];
    forward_run<T>(dx, nullptr, dz, wt, nullptr, t, Activation::identity, T(0), budget);
    return;
  }
  // dcol (Kg, nb*S) = w[g]^T . dZ[block, g], then col2im into dx[n, g]
  // (1x1 with one image per GEMM: the GEMM writes dx).
  const bool direct = plain && nb == 1;
  const I items = blocks * g_count;
  const int parts = detail::parts_for(items, budget);
  T* cols_buf = scope.alloc<T>(static_cast<std::size_t>(direct ? 0 : parts * kg * nb * sl));
  detail::RegionErrors errors;
  detail::parallel_parts(items, budget, 1, [&](int part, I b0, I e0) {
    T* dcol = cols_buf + part * kg * nb * sl;
    errors.run([&] {
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
    });
  });
  errors.rethrow();
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
