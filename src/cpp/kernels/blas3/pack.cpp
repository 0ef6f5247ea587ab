// Packing routines (see pack.hpp). op(A)[i][p] is a[i*lda + p] or, transposed,
// a[p*lda + i]; op(B)[p][j] is b[p*ldb + j] or, transposed, b[j*ldb + p].
#include "blas3/pack.hpp"

#include <algorithm>
#include <cstring>

namespace matnet::detail {

namespace {

template <class T, int MR>
void pack_a_panel_fixed(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0,
                        std::int64_t p0, int rows, std::int64_t kc, T* dst) {
  if (rows == MR) {
    if (!trans_a) {
      const T* src[MR];
      for (int r = 0; r < MR; ++r) src[r] = a + (i0 + r) * lda + p0;
      for (std::int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < MR; ++r) dst[p * MR + r] = src[r][p];
    } else {
      for (std::int64_t p = 0; p < kc; ++p) {
        const T* src = a + (p0 + p) * lda + i0;
        for (int r = 0; r < MR; ++r) dst[p * MR + r] = src[r];
      }
    }
    return;
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < rows; ++r) {
      dst[p * MR + r] = trans_a ? a[(p0 + p) * lda + i0 + r] : a[(i0 + r) * lda + p0 + p];
    }
    for (int r = rows; r < MR; ++r) dst[p * MR + r] = T(0);
  }
}

template <class T>
void pack_a_panel(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0, std::int64_t p0,
                  int rows, std::int64_t kc, int mr, T* dst) {
  switch (mr) {
    case 4: pack_a_panel_fixed<T, 4>(a, lda, trans_a, i0, p0, rows, kc, dst); return;
    case 6: pack_a_panel_fixed<T, 6>(a, lda, trans_a, i0, p0, rows, kc, dst); return;
    case 8: pack_a_panel_fixed<T, 8>(a, lda, trans_a, i0, p0, rows, kc, dst); return;
    default: break;
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < mr; ++r) {
      dst[p * mr + r] = r >= rows ? T(0)
                        : trans_a ? a[(p0 + p) * lda + i0 + r]
                                  : a[(i0 + r) * lda + p0 + p];
    }
  }
}

}  // namespace

template <class T>
void pack_a_block(const T* a, std::int64_t lda, bool trans_a, std::int64_t i0, std::int64_t p0,
                  std::int64_t mc, std::int64_t kc, int mr, T* dst) {
  for (std::int64_t i = 0; i < mc; i += mr) {
    const int rows = static_cast<int>(std::min<std::int64_t>(mr, mc - i));
    pack_a_panel(a, lda, trans_a, i0 + i, p0, rows, kc, mr, dst + i * kc);
  }
}

template <class T>
void pack_b_panel(const T* b, std::int64_t ldb, bool trans_b, std::int64_t p0, std::int64_t j0,
                  std::int64_t kc, int nr_valid, int nr, T* dst) {
  if (!trans_b) {
    const T* src = b + p0 * ldb + j0;
    if (nr_valid == nr) {
      for (std::int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * nr, src + p * ldb, sizeof(T) * nr);
    } else {
      for (std::int64_t p = 0; p < kc; ++p) {
        int j = 0;
        for (; j < nr_valid; ++j) dst[p * nr + j] = src[p * ldb + j];
        for (; j < nr; ++j) dst[p * nr + j] = T(0);
      }
    }
    return;
  }
  // Transposed: column j of the panel is row j0+j of b, contiguous in p.
  for (int j = 0; j < nr_valid; ++j) {
    const T* src = b + (j0 + j) * ldb + p0;
    for (std::int64_t p = 0; p < kc; ++p) dst[p * nr + j] = src[p];
  }
  for (int j = nr_valid; j < nr; ++j)
    for (std::int64_t p = 0; p < kc; ++p) dst[p * nr + j] = T(0);
}

template <class T>
void pack_a_strided(const T* a, std::int64_t rs, std::int64_t cs, std::int64_t i0,
                    std::int64_t p0, std::int64_t mc, std::int64_t kc, int mr, T* dst) {
  for (std::int64_t i = 0; i < mc; i += mr) {
    const int rows = static_cast<int>(std::min<std::int64_t>(mr, mc - i));
    T* panel = dst + i * kc;
    for (std::int64_t p = 0; p < kc; ++p) {
      for (int r = 0; r < rows; ++r) panel[p * mr + r] = a[(i0 + i + r) * rs + (p0 + p) * cs];
      for (int r = rows; r < mr; ++r) panel[p * mr + r] = T(0);
    }
  }
}

template <class T>
void pack_b_strided(const T* b, std::int64_t rs, std::int64_t cs, std::int64_t p0,
                    std::int64_t j0, std::int64_t kc, int nr_valid, int nr, T* dst) {
  for (std::int64_t p = 0; p < kc; ++p) {
    const T* src = b + (p0 + p) * rs + j0 * cs;
    int j = 0;
    for (; j < nr_valid; ++j) dst[p * nr + j] = src[j * cs];
    for (; j < nr; ++j) dst[p * nr + j] = T(0);
  }
}

template void pack_a_strided<float>(const float*, std::int64_t, std::int64_t, std::int64_t,
                                    std::int64_t, std::int64_t, std::int64_t, int, float*);
template void pack_a_strided<double>(const double*, std::int64_t, std::int64_t, std::int64_t,
                                     std::int64_t, std::int64_t, std::int64_t, int, double*);
template void pack_b_strided<float>(const float*, std::int64_t, std::int64_t, std::int64_t,
                                    std::int64_t, std::int64_t, int, int, float*);
template void pack_b_strided<double>(const double*, std::int64_t, std::int64_t, std::int64_t,
                                     std::int64_t, std::int64_t, int, int, double*);
template void pack_a_block<float>(const float*, std::int64_t, bool, std::int64_t, std::int64_t,
                                  std::int64_t, std::int64_t, int, float*);
template void pack_a_block<double>(const double*, std::int64_t, bool, std::int64_t, std::int64_t,
                                   std::int64_t, std::int64_t, int, double*);
template void pack_b_panel<float>(const float*, std::int64_t, bool, std::int64_t, std::int64_t,
                                  std::int64_t, int, int, float*);
template void pack_b_panel<double>(const double*, std::int64_t, bool, std::int64_t, std::int64_t,
                                   std::int64_t, int, int, double*);

}  // namespace matnet::detail
