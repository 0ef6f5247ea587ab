// Every size threshold of the kernels, in one place (internal), each with
// the measurement that set it. Measured on the development machines: 2 cores
// of an AMD EPYC (Zen 2/Zen 3, AVX2), 32 KiB L1d, 512 KiB L2 per core.
#pragma once

#include <cstdint>

namespace matnet::detail::thresholds {

// ------------------------------------------------------------ GEMM (blas3)

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

// Products with at most this many rows of op(A) (and B not transposed) run
// on the unpacked "sup" kernels (gemm_sup_avx2.cpp: B read once, row by
// row, nothing packed). Measured (f32, 1 thread, GFLOP/s, sup vs packed,
// same process): 784x256 B: m=2 55 vs 20, m=4 73 vs 43, m=8 83 vs 61,
// m=16 88 vs 79, m=32 packed 91; 4096x4096 B: m=4 26 vs 15, m=8 33 vs 27,
// m=16 42 vs 43, m=32 packed 59.
inline constexpr std::int64_t sup_max_m = 16;

// The AVX-512 table's register-tiled sup kernel (blas3/sup_tiled.hpp: C in
// registers over blocks of B, B read in place) against its by-rows one
// (sup_by_rows.hpp), since the tiled kernel prefetches every line of B it
// will read into L2. Measured (f32, stand-alone, B with huge pages as NumPy
// allocates it, 1 thread, GFLOP/s, by rows / tiled):
//   784x256 B (in L2): m = 2 92 / 64, m = 3 63 / 42, m = 4 104 / 106,
//     m = 8 108 / 107, m = 12 102 / 108;
//   1024x1024 B: m = 2 52 / 58, m = 4 58 / 110, m = 8 64 / 112;
//   2048x2048 B: m = 2 49 / 56, m = 4 50 / 109, m = 8 49 / 112;
//   4096x4096 B (from memory): m = 2 25 / 20, m = 3 28 / 24,
//     m = 4 32 / 38, m = 8 40 / 101, m = 12 47 / 100, m = 16 44 / 97.
// With one to three rows the tiled kernel's 1- and 2-row tiles do too few
// FMAs per loaded vector of B; from four it wins at every size of B.
inline constexpr std::int64_t sup_tiled_min_m = 4;
// Up to 64 rows the tiled kernel also beats the packed GEMM on 2 threads
// (4096x4096 B, m = 48 / 64: tiled 152 / 145 GFLOP/s stand-alone, packed
// 86 at m = 64 in bench_small, NumPy 135) and stays within ~3 % of it on one
// (m = 64: 76 vs 78 on 4096x4096, 99 vs 102 on 784x256).
inline constexpr std::int64_t sup_tiled_max_m = 64;

// Batched products: a batch runs one product per thread (each product on a
// single thread) when the products are smaller than this many multiply-adds;
// larger products run one after another, each on every thread.
inline constexpr double batch_per_thread_max_flops = 128.0 * 128.0 * 128.0;

// ------------------------------------------------------------ GEMV (blas2)

// Matrix bytes from which a GEMV splits its output over threads. Below, the
// fork/join costs more than the second core's bandwidth saves.
inline constexpr std::int64_t gemv_parallel_min_bytes = std::int64_t{1} << 18;

// ------------------------------------------------------ element-wise (ops)

// Element counts from which an element-wise pass is split over threads:
// below this a fork/join (a few microseconds) costs more than the second
// core saves.
inline constexpr std::int64_t parallel_min_elements = std::int64_t{1} << 16;

// --------------------------------------------------------------- nn/dense

// Dense backward with exactly two threads runs dW and dX concurrently (one
// GEMM per thread, one fork/join in all) from this many multiply-adds per
// GEMM; below, each GEMM runs on its own (and small ones on one thread).
inline constexpr double dense_concurrent_min_flops = 2 * 96.0 * 96.0 * 96.0;

// Inference through a Dense chain (dense_chain_forward) of at most sup_max_m
// rows runs every layer in one parallel region when the weights have at
// least gemv_parallel_min_bytes in all (every layer split over the threads:
// one barrier per hidden layer, none for the output layer; see
// chain_layers).

// ------------------------------------------------------------ nn/conv2d

// Conv2D backward computes dX (stride 1) either as dcol = W^T . dZ per image
// in a per-thread scratch of Kg x S values, then col2im (the default), or
// implicitly as the convolution of dZ with the flipped kernel (no scratch,
// but its packing gathers Fg*KH*KW values per pixel for a product of only
// Cg rows). Single thread, float32, best of 7, busy 2-core AVX-512 machine,
// dX time flipped vs dcol: (64,16,32,32)->32 3x3: 36/30 vs 17/24 ms;
// (64,3,32,32)->16: 9/14 vs 6/1 ms; (32,64,56,56)->64: 188/209 vs 211/144 ms.
// (those were with the flipped form's packing gathering bounds-checked runs
// from the unpadded input). dcol is kept off when the scratch would be
// large: above this many bytes per thread (7.2 MB for 64 channels of 56x56,
// 3x3, float32 stays below).
inline constexpr std::int64_t conv_dcol_max_bytes = std::int64_t{1} << 24;

// ... and for stride 1 on images at least this wide, dX is the flipped
// convolution whatever the scratch: once the forward packing copies whole
// 16-pixel runs from padded planes (one copy per packed row), it beats dcol +
// col2im. Single thread, float32, median of 9, loaded 2-core Zen 4, dX
// flipped vs dcol: (64,16,32,32)->32 3x3: 20.9 vs 23.7 ms; (32,64,56,56)->64:
// 168 vs 182 ms; (64,3,32,32)->16: 2.8 vs 5.7 ms; but on narrow images,
// where runs are short and cut at row ends: (16,32,14,14)->32 5x5 pad 2:
// 7.5 vs 6.8 ms; (32,32,6,6)->64 3x3: 0.76 vs 0.37 ms.
// Narrower images take the flipped form too when it runs by Winograd
// (winograd_* below), which beats dcol there: backward (dW + dX), float32,
// 1 thread, CPU time, dcol / flipped Winograd: (64,64,14,14)->64 24.1 /
// 18.8 ms, (32,64,28,28)->64 42.3 / 33.3, (16,128,28,28)->128 77.0 / 59.1,
// (8,256,14,14)->256 39.1 / 31.4, (256,32,8,8)->32 11.3 / 9.7,
// (64,16,8,8)->16 1.04 / 0.93, (32,16,12,12)->16 0.94 / 0.88; float64
// (64,64,14,14)->64 47.4 / 38.2, (32,16,12,12)->16 1.71 / 1.63.
inline constexpr std::int64_t conv_dx_flip_min_width = 32;

// ... and with at least this many input channels per group: the flipped
// product has Cg rows, so each value its packing copies serves Cg rows,
// while dcol's product has Fg-deep sums. Single thread, float32, CPU time
// (median of 5), dX flipped vs dcol: Cg = 16, Fg = 32 (64,16,32,32): 8.6 vs
// 10.9 ms; Cg = 16, Fg = 8 (16,16,64,64): 3.8 vs 4.9 ms; Cg = 8, Fg = 32:
// 5.9 vs 5.7 ms; Cg = 4, Fg = 16: 2.0 vs 1.8 ms; Cg = 3, Fg = 16: 2.2 vs 1.2 ms.
inline constexpr std::int64_t conv_dx_flip_min_channels = 16;

// Conv2D forward on small images puts several images in one GEMM so that it
// has at least this many columns (8x8 digits: 8 images of 64 pixels), instead
// of one GEMM per image whose fixed cost (packing set-up, edge tiles) is
// comparable to its few hundred thousand multiply-adds.
inline constexpr std::int64_t conv_min_gemm_cols = 512;

// Conv2D dW writes im2col out in chunks of this many columns (output
// pixels) per GEMM (Kg x chunk values in per-thread scratch, read back
// transposed by the GEMM's packer while still in L2). dW alone, single
// thread, float32, CPU time (median of 7, two interleaved rounds), chunk
// 128 / 256 / 512 / 1024: (64,16,32,32)->32 3x3: 8.4-9.9 / 8.1-10.0 /
// 8.1-8.4 / 9.3 ms; (16,64,56,56)->64: 46-49 / 48-49 / 41.5-41.7 / 43-47 ms;
// (64,3,32,32)->16: 1.1-1.7 / 1.5 / 1.05-1.08 / 1.4-1.5 ms;
// (32,32,14,14)->32: 1.8-2.6 / 2.5-2.6 / 1.8 / 1.8 ms.
inline constexpr std::int64_t conv_dw_chunk_cols = 512;

// Conv2D forward (and the stride-1 flipped dX) by Winograd F(2x2, 3x3)
// (nn/conv2d_winograd.cpp) for 3x3, stride 1, undilated kernels with at
// least winograd_min_channels input and output channels per group and
// outputs at least winograd_min_width_f32 / _f64 wide; the direct im2col
// GEMM otherwise. Its transforms cost ~(Cin + Cout) per tile against the
// ~Cin*Cout the products save, and a row of tiles shorter than a vector
// step (8) wastes lanes. Measured (1 thread, CPU time, median of 7, same
// process, loaded 2-core Zen 4, 3x3 pad 1, (N,C,H,W)->F, direct / Winograd):
// float32: (64,4,32,32)->4 0.85, (64,8,32,32)->8 0.95, (64,8,32,32)->32
// 0.91, (64,12,32,32)->12 1.11, (64,16,32,32)->16 1.05, ->32 1.07,
// (128,16,16,16)->16 0.96-1.05, (64,32,32,32)->32 1.27, (32,64,56,56)->64
// 1.59-1.7; width: (256,16,4,4)->16 0.88, (256,32,4,4)->32 0.97-1.03,
// (256,16,6,6)->16 1.06, (256,32,6,6)->32 1.20, (128,16,8,8)->16 1.09-1.16.
// float64: (128,16,8,8)->16 0.78, (256,32,4,4)->32 0.79, (64,64,8,8)->64
// 1.23, (64,16,12,12)->16 1.20, (128,16,16,16)->16 1.09, (64,16,32,32)->32
// 1.04, (32,64,56,56)->64 1.59.
// ... and at least winograd_min_tiles 2x2 output tiles in all (N x
// ceil(OH/2) x ceil(OW/2)): the weight transform costs ~Cin*Cout per call
// (U is 16 Cin*Cout values; 4 MiB at 256 x 256) against a saving of
// ~Cin*Cout per tile, whatever the channels. Measured (float32, as above):
// (1,64,14,14)->64 49 tiles 0.71, (1,256,14,14)->256 49 tiles 0.68,
// (2,256,8,8)->256 32 tiles 0.50, (2,64,14,14)->64 98 tiles 1.00,
// (2,16,14,14)->16 0.98, (1,64,20,20)->64 100 tiles 0.94, (3,64,14,14)->64
// 147 tiles 1.19, (3,256,14,14)->256 1.12, (1,64,28,28)->64 196 tiles 1.29,
// (1,256,28,28)->256 1.18; float64 (2,64,14,14)->64 98 tiles 1.16.
inline constexpr std::int64_t winograd_min_tiles = 128;
inline constexpr std::int64_t winograd_min_channels = 16;
inline constexpr std::int64_t winograd_min_width_f32 = 6;
inline constexpr std::int64_t winograd_min_width_f64 = 12;

// Tiles per Winograd block: a thread's V (16 Cg values per tile) stays in
// L2 next to the transformed weights U. Measured (float32, 1 thread, loaded
// machine, ms for 32 / 64 / 96 / 128 / 192 / 256 tiles): (32,64,56,56)->64
// 58.7 / 49.6 / 55.4 / 50.6 / 51.5 / 52.6; (16,128,28,28)->128 27.5 / 27.6 /
// 27.8 / 25.5 / 25.5 / 25.2; (8,256,14,14)->256 16.0 / 14.5 / 14.5 / 14.6 /
// 14.3 / 14.9; (64,16,32,32)->32 flat (8.5-9.3).
inline constexpr std::int64_t winograd_block_tiles = 128;

// ------------------------------------------------------------------ optim

// Bytes moved by an update pass (elements x arrays read or written x size)
// from which it is split over threads. Measured on Zen 3, 2 threads, float32,
// portable (SSE2) loops, medians of 4 interleaved runs: with a 1 MiB threshold
// vs this 128 KiB one, Adam at n = 8192 / 32768 / 65536 ran 16.0 / 46.8 / 64.6
// us vs 10.6 / 29.7 / 49.2 us (its sqrt and divides make it partly
// compute-bound), SGD with momentum at n = 8192 (160 KiB) 7.6 vs 7.4 us, i.e.
// break-even there. With the AVX2 loops Adam at n = 32768 still gains from
// the second thread (23.5 -> 18.7 us).
inline constexpr std::int64_t optim_parallel_min_bytes = std::int64_t{1} << 17;

// ------------------------------------------------------------ nn/attention

// Flash attention's blocks (nn/attention.cpp): a forward task is
// attention_block_q queries (rounded up to the microkernel's NR) against
// blocks of attention_block_k keys (rounded up to MR); the backward takes
// blocks of attention_backward_block_k keys (rounded up to a multiple of MR
// and NR) against blocks of attention_block_q queries. At D = 64, float32,
// the forward keeps Q^T (16 KiB) and a panel of scores (16 KiB) in L1 and
// O^T (17 KiB) in L2. Measured (1 thread, (1, 8, L, 64), float32, CPU time,
// GFLOP/s; BQ/BK): forward L = 2048: 64/128 86, 64/256 89, 64/512 88,
// 128/128 69, 128/256 89, 32/256 85; L = 512: 64/128 81, 64/256 81, 32/128
// 78. Backward (2.5x the forward's flops) L = 2048: 64/128 97, 64/256 95;
// L = 512: 93 and 94. PyTorch's CPU flash kernel on the same machine:
// forward 77 / 72, forward + backward (3.5x) 74 / 69.
inline constexpr std::int64_t attention_block_q = 64;
inline constexpr std::int64_t attention_block_k = 256;
inline constexpr std::int64_t attention_backward_block_k = 128;

// Below this many multiply-adds (B * Lq * Lk * (D + Dv)) attention runs on
// one thread (the GEMM's fork/join threshold).
inline constexpr double attention_parallel_min_flops = parallel_min_flops;

// ---------------------------------------------------------------- linalg

// Rows of the diagonal blocks of a blocked TRSM (blas3/trsm.cpp): the
// substitution inside a block is axpy work, everything else one GEMM per
// block. 64 keeps the block's share of the flops at ~64/n and the GEMM's
// k = 64 deep enough for the packed kernel. Chosen, not tuned: with it,
// solve/inv at n = 1024 ran at 0.9-1.0x NumPy's time (1 thread, noisy).
inline constexpr std::int64_t trsm_block = 64;

// A right-side TRSM (X A = B, blas3/trsm.cpp) solves its diagonal blocks
// of trsm_block columns as blocks of a quarter of that (GEMM updates in
// between) and substitutes only from this width down. Measured (inv,
// float64, n = 1024, 1 thread, perf): with substitution on the 64-wide
// blocks trsm_right was 19 % of the profile, with this 5.5 % and inv
// 0.88x -> 0.65-0.73x NumPy's time.
inline constexpr std::int64_t trsm_right_substitution_cols = 16;

// Recursive LU and Cholesky stop recursing at this many columns and run
// the unblocked loops; below it the GEMM calls cost more than they save.
// Chosen, not tuned (det at n = 1024: ~1.1x NumPy, cholesky ~1.0x).
inline constexpr std::int64_t lu_base_cols = 16;
inline constexpr std::int64_t cholesky_base_cols = 32;

// The triangular inverse of inv (linalg/lu_inverse.cpp) stops halving at
// this order and runs the unblocked row loop: below trsm_block its TRSMs
// would be substitution loops as well, with call overhead on top.
// Chosen, not tuned.
inline constexpr std::int64_t trtri_base_n = 64;

// inv runs LU then the solve with B = I (2.67 n^3 flops, NumPy's method)
// below this order and LU then DGETRI's inverse from the factors (2 n^3)
// from it on. Measured (stacks of 500, float64, 1 thread, min of 20 runs,
// median of 7, load ~2): DGETRI's path / the solve's = 1.04-1.06 at
// n = 17, 1.02 at 18, 0.96 at 20, 0.87 at 32, 0.63 at 64.
inline constexpr std::int64_t inv_getri_min_n = 20;

// Householder panel width of the blocked QR (compact WY, I - V T V^T): the
// trailing update is two GEMMs with k = this. 32 as in LAPACK's DGEQRF.
inline constexpr std::int64_t qr_block = 32;

// Blocked tridiagonalisation (linalg/tridiagonal.cpp, DLATRD-style): panels
// of tridiagonal_block reflectors whose rank-2 updates reach the trailing
// matrix as one GEMM with k = 2 tridiagonal_block, for orders from
// tridiagonal_blocked_min_n on (and while the trailing matrix has half
// that many rows); smaller reductions run step by step. Chosen, not tuned
// (LAPACK's DSYTRD uses 32 and a crossover of 128 as well): with them the
// reduction at n = 512 (float64, 1 thread) went from ~42 ms to ~18 ms.
inline constexpr std::int64_t tridiagonal_block = 32;
inline constexpr std::int64_t tridiagonal_blocked_min_n = 128;

// eigh spends its thread budget (the reduction's GEMMs, the rotation
// batches, forming Q) from this order on, and svd splits its rotation
// batches; below, they run on the calling thread. Measured (float64, 2 cores shared with other jobs, load ~5, min
// of 21): n = 128 1.2 ms on 1 thread, 1.7 ms on 2 (medians 1.5 vs 46: a
// fork/join on a loaded machine waits for a descheduled thread).
inline constexpr std::int64_t spectral_parallel_min_n = 256;

// Up to this order eigh runs its small-matrix path (eigh.cpp): the
// registry's unblocked reduction and Q^T (linalg/small_tridiag.hpp), QL
// sweeps advanced a step at a time, stacks streamed through four slots
// whose sweeps run interleaved (eigh_range; the sweep is a sqrt-divide
// chain per step). Set just below spectral_parallel_min_n, from where the
// general path (blocked reduction, compact-WY Q) spends a thread budget on
// one matrix: at 1 thread the small path was faster at every order
// measured. Measured (float64, 1 thread, load ~3), stacks vs NumPy, limit
// 64 -> 255: n = 65 0.94 -> 0.55, 96 1.07 -> 0.59, 128 1.07 -> 0.75,
// 160 1.29 -> 0.93, 256 (as if limit 256) 1.42 -> 1.18; one matrix: n = 128
// 1.27 -> 1.00 ms, 192 4.59 -> 4.01 ms, 256 (limit 256) 9.18 -> 8.09 ms.
inline constexpr std::int64_t eigh_small_max_n = 255;

// A stack of matrices runs one matrix per thread (each factorisation on
// one thread, unblocked loops in cache) up to this order; larger matrices
// run one after another, each on every thread. Chosen, not measured: at
// 96 a matrix is ~1 MFLOP of LU, well past a fork/join, and its blocked
// updates are still too small to split well.
inline constexpr std::int64_t linalg_batch_per_thread_max_n = 96;

// Stacked solve / inv / det run the lane-interleaved small LU kernels
// (linalg/small_lu.hpp, one matrix per SIMD lane) up to this order and this
// many right-hand sides (inv: nrhs = n), the per-matrix LU above them. The
// kernels keep a group's [A | B] on the stack (16 x 32 vectors, 32 KiB with
// AVX-512 float64, plus 16 KiB each for the interleaving buffers of load and
// store: ~66 KiB of stack per call, also on OpenMP worker threads). Measured (2000-matrix stacks, float64, 1 thread, AVX-512,
// loaded machine): n = 16 solve 0.65 us/matrix and det 0.50 against the
// per-matrix path's 3.8 and 2.3 at n = 17; inv 3.5 against 5.4 (its
// 16 x 32 augmented group no longer fits L1, so higher orders gain less).
inline constexpr std::int64_t small_lu_max_n = 16;
inline constexpr std::int64_t small_lu_max_nrhs = 16;

}  // namespace matnet::detail::thresholds
