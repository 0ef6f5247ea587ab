// Layer normalization over the last dimension (matnet/layer_norm.hpp).
// Legend: N rows, C columns (the normalized dimension). Row by row, each row
// in two passes over contiguous memory (statistics, then the output); rows
// split over threads; the parameter gradients summed per part and added in
// part order.
#include "matnet/layer_norm.hpp"

#include <algorithm>
#include <cmath>

#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/workspace.hpp"

namespace matnet {

namespace {

using i64 = std::int64_t;

template <class T>
void forward_impl(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, i64 rows, i64 cols,
                  T eps) {
  const char* fn = "layer_norm_forward";
  detail::require_size(fn, "rows", rows);
  detail::require_size(fn, "cols", cols);
  if (!(eps >= T(0))) detail::fail(fn, "eps must be >= 0, got " + std::to_string(eps));
  if (rows == 0) return;
  if (cols == 0) detail::fail(fn, "cols must be >= 1 when rows > 0");
  detail::require_ptr(fn, "y", y);
  detail::require_ptr(fn, "x", x);
  detail::parallel_ranges(rows * cols, [&](i64 e0, i64 e1) {
    // parallel_ranges splits elements; take the rows that start in [e0, e1).
    for (i64 r = (e0 + cols - 1) / cols; r * cols < e1; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      double s = 0;
      for (i64 c = 0; c < cols; ++c) s += xr[c];
      const double mu = s / double(cols);
      double ss = 0;
      for (i64 c = 0; c < cols; ++c) {
        const double t = double(xr[c]) - mu;
        ss += t * t;
      }
      const T m = static_cast<T>(mu);
      const T rs = static_cast<T>(1.0 / std::sqrt(ss / double(cols) + double(eps)));
      if (mean != nullptr) mean[r] = m;
      if (rstd != nullptr) rstd[r] = rs;
      if (w != nullptr && b != nullptr) {
        for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
      } else if (w != nullptr) {
        for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * rs * w[c];
      } else if (b != nullptr) {
        for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * rs + b[c];
      } else {
        for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * rs;
      }
    }
  });
}

template <class T>
void backward_impl(T* dx, T* dw, T* db, const T* gy, const T* x, const T* w, const T* mean,
                   const T* rstd, i64 rows, i64 cols) {
  const char* fn = "layer_norm_backward";
  detail::require_size(fn, "rows", rows);
  detail::require_size(fn, "cols", cols);
  if (rows > 0 && cols == 0) detail::fail(fn, "cols must be >= 1 when rows > 0");
  const bool params = dw != nullptr || db != nullptr;
  if (rows == 0) {
    if (dw != nullptr) std::fill(dw, dw + cols, T(0));
    if (db != nullptr) std::fill(db, db + cols, T(0));
    return;
  }
  for (auto [p, name] : {std::pair<const void*, const char*>{dx, "dx"}, {gy, "grad_y"}, {x, "x"},
                         {mean, "mean"}, {rstd, "rstd"}})
    detail::require_ptr(fn, name, p);
  const int nt = detail::threads_for(rows * cols);
  const int parts = detail::parts_for(rows, nt);
  detail::WorkspaceScope scope;
  // Per part: the dweight and dbias sums (double) and g = grad_y * weight.
  double* acc = params ? scope.alloc<double>(static_cast<std::size_t>(2 * cols * parts)) : nullptr;
  if (acc != nullptr) std::fill(acc, acc + 2 * cols * parts, 0.0);
  T* gbuf = scope.alloc<T>(static_cast<std::size_t>(cols * parts));
  detail::parallel_parts(rows, nt, 1, [&](int part, i64 r0, i64 r1) {
    double* aw = params ? acc + 2 * cols * part : nullptr;
    T* g = gbuf + cols * part;
    for (i64 r = r0; r < r1; ++r) {
      const T* xr = x + r * cols;
      const T* gr = gy + r * cols;
      const T m = mean[r], rs = rstd[r];
      double sg = 0, sgx = 0;
      for (i64 c = 0; c < cols; ++c) {
        const T xh = (xr[c] - m) * rs;
        g[c] = w != nullptr ? gr[c] * w[c] : gr[c];
        sg += g[c];
        sgx += double(g[c]) * xh;
        if (aw != nullptr) {
          aw[c] += double(gr[c]) * xh;
          aw[cols + c] += gr[c];
        }
      }
      const T mg = static_cast<T>(sg / double(cols)), mgx = static_cast<T>(sgx / double(cols));
      T* dr = dx + r * cols;
      for (i64 c = 0; c < cols; ++c) dr[c] = rs * (g[c] - mg - (xr[c] - m) * rs * mgx);
    }
  });
  if (params) {
    for (i64 c = 0; c < cols; ++c) {
      double sw = 0, sb = 0;
      for (int p = 0; p < parts; ++p) {
        sw += acc[2 * cols * p + c];
        sb += acc[2 * cols * p + cols + c];
      }
      if (dw != nullptr) dw[c] = static_cast<T>(sw);
      if (db != nullptr) db[c] = static_cast<T>(sb);
    }
  }
}

}  // namespace

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight,
                        const float* bias, std::int64_t rows, std::int64_t cols, float eps) {
  forward_impl(y, mean, rstd, x, weight, bias, rows, cols, eps);
}
void layer_norm_forward(double* y, double* mean, double* rstd, const double* x,
                        const double* weight, const double* bias, std::int64_t rows,
                        std::int64_t cols, double eps) {
  forward_impl(y, mean, rstd, x, weight, bias, rows, cols, eps);
}
void layer_norm_backward(float* dx, float* dweight, float* dbias, const float* grad_y,
                         const float* x, const float* weight, const float* mean, const float* rstd,
                         std::int64_t rows, std::int64_t cols) {
  backward_impl(dx, dweight, dbias, grad_y, x, weight, mean, rstd, rows, cols);
}
void layer_norm_backward(double* dx, double* dweight, double* dbias, const double* grad_y,
                         const double* x, const double* weight, const double* mean,
                         const double* rstd, std::int64_t rows, std::int64_t cols) {
  backward_impl(dx, dweight, dbias, grad_y, x, weight, mean, rstd, rows, cols);
}

}  // namespace matnet
