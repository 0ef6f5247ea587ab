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
// The row updates are the registry's DROT kernel (AVX2 + FMA where available).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "runtime/registry.hpp"

namespace matnet::detail {

template <class T>
class RowRotations {
 public:
  /// x: rows x len, leading dimension ld (null: record nothing).
  RowRotations(T* x, std::int64_t rows, std::int64_t len, std::int64_t ld)
      : x_(x), len_(len), ld_(ld) {
    // Columns per block: the block of all rows within ~256 KiB (L2).
    const std::int64_t bytes = std::max<std::int64_t>(rows, 1) * static_cast<std::int64_t>(sizeof(T));
    block_ = std::max<std::int64_t>(16, (std::int64_t{1} << 18) / bytes / 8 * 8);
    capacity_ = std::max<std::int64_t>(64, 8 * rows);
    if (x_ != nullptr) ops_.reserve(static_cast<std::size_t>(capacity_));
  }
  ~RowRotations() { flush(); }
  RowRotations(const RowRotations&) = delete;
  RowRotations& operator=(const RowRotations&) = delete;

  /// (x_i, x_j) := (c x_i + s x_j, c x_j - s x_i), after the ones recorded before.
  void rotate(std::int64_t i, std::int64_t j, T c, T s) {
    if (x_ == nullptr || (c == T(1) && s == T(0))) return;
    ops_.push_back({i, j, c, s});
    if (static_cast<std::int64_t>(ops_.size()) >= capacity_) flush();
  }

  /// Negates row i (after the recorded rotations).
  void negate(std::int64_t i) { rotate(i, i, T(-1), T(0)); }

  void flush() {
    if (ops_.empty()) return;
    const rot_fn<T> rot = kernels<T>().gemv->rot;  // DROT of the active ISA
    for (std::int64_t c0 = 0; c0 < len_; c0 += block_) {
      const std::int64_t w = std::min(block_, len_ - c0);
      for (const Op& op : ops_) {
        T* xi = x_ + op.i * ld_ + c0;
        if (op.i == op.j) {  // negation
          for (std::int64_t k = 0; k < w; ++k) xi[k] = -xi[k];
          continue;
        }
        rot(w, xi, x_ + op.j * ld_ + c0, op.c, op.s);
      }
    }
    ops_.clear();
  }

 private:
  struct Op {
    std::int64_t i, j;
    T c, s;
  };
  T* x_;
  std::int64_t len_, ld_, block_, capacity_;
  std::vector<Op> ops_;
};

}  // namespace matnet::detail
