// Plane rotations of the rows of a matrix, recorded and applied in batches
// (internal, header-only).
//
// The QL/QR sweeps of eigh and svd rotate pairs of rows of an n x n matrix
// (Z^T, X^T, Y^T): ~n^2 rotations of 6n flops each. Applied one by one,
// every sweep streams the whole matrix through the caches once (2 MiB at
// n = 512, more than L2). Recorded instead and applied a block of columns
// at a time, many sweeps reuse one L2-resident block: the same flops with
// a fraction of the memory traffic. Rotations act on columns independently,
// so each column sees them in the recorded order, as if applied one by one.
// The row updates are the registry's rot_batch kernel (AVX2 + FMA where
// available), which keeps the row shared by a sweep's consecutive
// rotations in registers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel.hpp"
#include "runtime/registry.hpp"

namespace matnet::detail {

/// A leading dimension for a matrix of rows of n elements that RowRotations
/// will rotate: whole cache lines, and one line more than a multiple of
/// 4 KiB away, so that rows neither share L1 sets nor alias the stores of
/// the row rotated just before (4 KiB aliasing).
template <class T>
std::int64_t rotation_ld(std::int64_t n) {
  constexpr std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(T));
  const std::int64_t ld = (n + line - 1) / line * line;
  return ld % (4096 / static_cast<std::int64_t>(sizeof(T))) == 0 ? ld + line : ld;
}

template <class T>
class RowRotations {
 public:
  /// x: rows x len, leading dimension ld (null: record nothing). A batch
  /// is split over up to max_threads threads by columns.
  RowRotations(T* x, std::int64_t rows, std::int64_t len, std::int64_t ld, int max_threads = 1)
      : x_(x), len_(len), ld_(ld), max_threads_(max_threads) {
    // Columns per block: the block of all rows within ~256 KiB (L2).
    const std::int64_t bytes = std::max<std::int64_t>(rows, 1) * static_cast<std::int64_t>(sizeof(T));
    block_ = std::max<std::int64_t>(16, (std::int64_t{1} << 18) / bytes / 8 * 8);
    // Batches of ~8 sweeps; 32 when split over threads, each batch being
    // a fork/join (which on a loaded machine waits for a descheduled
    // thread). The rows' strips are re-read per batch, the ops only once.
    capacity_ = std::max<std::int64_t>(64, (max_threads > 1 ? 32 : 8) * rows);
    if (x_ != nullptr) ops_.resize(static_cast<std::size_t>(capacity_));
  }
  ~RowRotations() { flush(); }
  RowRotations(const RowRotations&) = delete;
  RowRotations& operator=(const RowRotations&) = delete;

  /// (x_i, x_j) := (c x_i + s x_j, c x_j - s x_i), after the ones recorded before.
  void rotate(std::int64_t i, std::int64_t j, T c, T s) {
    if (x_ == nullptr || (c == T(1) && s == T(0))) return;
    // Field by field: a braced push_back stored the struct in halves and
    // reloaded it whole, a store-forwarding stall per rotation.
    RowRotation<T>& op = ops_[static_cast<std::size_t>(count_)];
    op.i = i;
    op.j = j;
    op.c = c;
    op.s = s;
    if (++count_ == capacity_) flush();
  }

  /// Room for up to count rotations (count <= capacity: 8 x rows at
  /// least), which the caller writes in order of application and then
  /// records with commit: the QL sweeps of small matrices write theirs
  /// there directly. Null when nothing is recorded (x null).
  RowRotation<T>* reserve(std::int64_t count) {
    if (x_ == nullptr) return nullptr;
    if (count_ + count > capacity_) flush();
    return ops_.data() + count_;
  }
  void commit(std::int64_t count) {
    if (x_ == nullptr) return;
    count_ += count;
    if (count_ == capacity_) flush();
  }

  /// Negates row i (after the recorded rotations; rot_batch's scaling).
  void negate(std::int64_t i) { rotate(i, i, T(-1), T(0)); }

  void flush() {
    if (count_ == 0) return;
    const rot_batch_fn<T> rot = kernels<T>().gemv->rot_batch;  // of the active ISA
    // Columns are independent: each thread applies the whole batch to its
    // own columns (cache-line aligned, so no line is shared), one
    // fork/join per batch.
    const std::int64_t work = count_ * len_;
    parallel_split(len_, threads_for(work, max_threads_), 64 / static_cast<std::int64_t>(sizeof(T)),
                   [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c0 = b; c0 < e; c0 += block_) {
        const std::int64_t w = std::min(block_, e - c0);
        rot(count_, ops_.data(), x_ + c0, ld_, w);
      }
    });
    count_ = 0;
  }

 private:
  T* x_;
  std::int64_t len_, ld_, block_, capacity_, count_ = 0;
  int max_threads_;
  std::vector<RowRotation<T>> ops_;
};

}  // namespace matnet::detail
