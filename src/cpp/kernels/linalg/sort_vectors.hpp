// Values with their vectors in sorted order, and the tiled transposes that
// move the vectors (internal, header-only): eigh.cpp's eigenpairs and
// svd.cpp's singular triplets, whose vectors are accumulated as rows
// (Z^T, X^T, Y^T) and returned as columns.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>

namespace matnet::detail {

/// order[0..n) = the indices of key[0..n) sorted by before (std::less:
/// ascending, std::greater: descending), ties by index: a stable order
/// without std::stable_sort's scratch buffer. key holds no NaN (the
/// callers sort converged values of finite input): with one, before would
/// not be a strict weak order.
template <class T, class Before>
void sorted_order(std::int64_t n, const T* key, Before before, std::int64_t* order) {
  std::iota(order, order + n, std::int64_t{0});
  std::sort(order, order + n, [&](std::int64_t x, std::int64_t y) {
    return before(key[x], key[y]) || (!before(key[y], key[x]) && x < y);
  });
}

/// dst[i, j] = src[rows[j], i] (rows null: src[j, i]) for i < m, j < n:
/// dst (m x n) is the transpose of src's rows in the order rows gives. In
/// tiles: a column read or written whole would touch a cache line per
/// element.
template <class T>
void gather_transpose(std::int64_t m, std::int64_t n, const T* src, std::int64_t lds,
                      const std::int64_t* rows, T* dst, std::int64_t ldd) {
  constexpr std::int64_t tile = 32;
  for (std::int64_t j0 = 0; j0 < n; j0 += tile)
    for (std::int64_t i0 = 0; i0 < m; i0 += tile)
      for (std::int64_t j = j0; j < std::min(n, j0 + tile); ++j) {
        const T* sj = src + (rows != nullptr ? rows[j] : j) * lds;
        for (std::int64_t i = i0; i < std::min(m, i0 + tile); ++i) dst[i * ldd + j] = sj[i];
      }
}

}  // namespace matnet::detail
