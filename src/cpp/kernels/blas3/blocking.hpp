// Block sizes for every GEMM kernel, in one table (internal).
//
// Target: AMD Zen 3 (32 KiB L1d, 512 KiB L2 per core, 32 MiB shared L3);
// the same values are sound on Intel Haswell..Ice Lake.
//
//   MR x NR  register tile: MR*NR/lanes accumulators held in vector registers.
//   KC       depth of one rank-KC update: an MR x KC A micro-panel plus a
//            KC x NR B micro-panel stay in L1 (KC*(MR+NR)*sizeof(T) <= ~24 KiB).
//   MC       rows of the packed A block, which stays in L2 (MC*KC*sizeof(T)
//            about a third of L2, leaving room for the streaming B micro-panels).
//   NC       columns of the packed B panel, which stays in L3 (KC*NC*sizeof(T)).
//
//   kernel            MR  NR    MC    KC    NC    A block   B panel
//   f32 avx2 6x16      6  16   144   256  4080    144 KiB   3.98 MiB
//   f64 avx2 6x8       6   8    72   256  4080    144 KiB   7.97 MiB
//   f32 generic 4x8    4   8    64   256  2048     64 KiB   2 MiB
//   f64 generic 4x4    4   4    64   128  2048     64 KiB   2 MiB
#pragma once

namespace matnet::detail::blocking {

struct Sizes {
  int mr, nr, mc, kc, nc;
};

inline constexpr Sizes f32_avx2{6, 16, 144, 256, 4080};
inline constexpr Sizes f64_avx2{6, 8, 72, 256, 4080};
inline constexpr Sizes f32_generic{4, 8, 64, 256, 2048};
inline constexpr Sizes f64_generic{4, 4, 64, 128, 2048};

// The thresholds that pick a path (threads, direct A, shared B, sup) are in
// core/thresholds.hpp.

}  // namespace matnet::detail::blocking
