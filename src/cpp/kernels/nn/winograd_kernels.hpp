// The transforms of Winograd F(2x2, 3x3) convolution (internal): one table
// per dtype and ISA, in the kernel registry (runtime/registry.hpp). The
// products between them run on the GEMM microkernels (nn/conv2d_winograd.cpp).
// Lavin & Gray 2015: a 2x2 output tile Y = A^T [(G g G^T) . (B^T d B)] A of
// a 4x4 input patch d and a 3x3 kernel g, with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// The 16 entries of a transformed tile are indexed p = 4 i + j.
// Each loop runs along one row of tiles, so that consecutive tiles sit in
// consecutive lanes; the kernels never throw, allocate or know of threads.
#pragma once

#include <cstdint>

namespace matnet::detail {

/// Tiles per vector step of the kernels: see the spill rules below.
inline constexpr int winograd_step = 8;

template <class T>
struct WinogradKernels {
  /// Input transform of `tiles` tiles along one row of tiles of one plane:
  /// tile t reads the 4x4 patch rows[r][col0 + 2t + q] (r, q in [0, 4)), as
  /// 0 where the column is outside [0, w) or rows[r] is null (zero
  /// padding), and writes (B^T d B)[p / 4][p % 4] to
  ///   v[p * ldv + (j0 + t) / nr * panel + (j0 + t) % nr],
  /// i.e. straight into the GEMM's packed B panels (nr tiles wide, `panel`
  /// values apart, one set per p, ldv apart), as tiles j0.. of a block.
  /// Spill: it stores whole vectors, so it may also write anything to the
  /// winograd_step - 1 positions after any position it writes (in memory
  /// order: the next lanes, the start of the panel's next row, the space
  /// after a panel's last row); the caller leaves that room after every
  /// panel and writes the tiles of later rows and channels after earlier ones.
  void (*input_row)(const T* const* rows, std::int64_t w, std::int64_t col0, std::int64_t tiles,
                    T* v, std::int64_t ldv, std::int64_t j0, std::int64_t nr, std::int64_t panel);
  /// Output transform of `tiles` tiles: with M_t[p / 4][p % 4] = m[p * ldm + t],
  /// y0[2t + j] = (A^T M_t A)[0][j] + bias and y1[2t + j] = (A^T M_t A)[1][j]
  /// + bias, j in {0, 1}. Tiles go in steps of winograd_step: m is read and
  /// y0, y1 are written up to the next multiple of that many tiles.
  void (*output_row)(const T* m, std::int64_t ldm, std::int64_t tiles, T bias, T* y0, T* y1);
  const char* name;
};

const WinogradKernels<float>& winograd_f32_generic();
const WinogradKernels<double>& winograd_f64_generic();
const WinogradKernels<float>& winograd_f32_avx2();
const WinogradKernels<double>& winograd_f64_avx2();

}  // namespace matnet::detail
