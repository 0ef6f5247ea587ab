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

// Below this many multiply-adds (m*n*k) a product runs on one thread: the
// OpenMP fork/join (~1 us measured for an empty region on 2 threads) would
// cost more than it saves. 64^3 is ~6 us of one-thread work. Measured
// against 96^3 (same process, 2 threads): the 128->10 layer's products at
// batch 512 (655k multiply-adds) 1.10-1.35x faster, batch 128 unchanged.
inline constexpr double parallel_min_flops = 64.0 * 64.0 * 64.0;

// A thread whose columns span at most this many NR-wide micro-panels reads
// A in place (direct-A microkernels, where the ISA has them) instead of
// packing it: each element of A would be used only that many times, and
// the A block is re-read from L1/L2 just as a packed one would be.
// Measured (f32, 1 thread, vs NumPy): 3-4 panels +5-10% over packing,
// 8 panels (n = 128) about +5%, 16 panels no difference either way.
inline constexpr int direct_a_max_panels = 8;

// From this many multiply-adds on, threads share one packed B panel (packed
// jointly, two barriers per K block); below it each thread packs what it
// needs on its own and never waits (one duplicated operand costs less than
// the barriers there). 2^26 is about 400^3.
inline constexpr double shared_b_min_flops = 67108864.0;

}  // namespace matnet::detail::blocking
