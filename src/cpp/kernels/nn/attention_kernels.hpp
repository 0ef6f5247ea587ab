// The element-wise loops of flash attention (internal): one table per dtype
// and ISA, in the kernel registry (runtime/registry.hpp). The block products
// run on the GEMM microkernels; these are the softmax steps between them.
// They never throw, allocate or know of threads.
#pragma once

#include <cstdint>

namespace matnet::detail {

template <class T>
struct AttentionKernels {
  /// One online-softmax step over a panel of scaled scores S^T: `rows` keys
  /// by `nr` queries, stored row by row (s[r*nr + j], the GEMM's packed-B
  /// layout, so P^T can feed the next product as it is). For each query
  /// column j, with m[j] the running maximum and l[j] the running sum:
  ///   mx = max(m[j], max_r s[r, j]);  shift = mx, or 0 when mx is -inf
  ///   s[r, j] = exp(s[r, j] - shift);  alpha[j] = exp(m[j] - shift)
  ///   l[j] = l[j] * alpha[j] + sum_r s[r, j];  m[j] = mx
  /// A column whose scores are all -inf so far keeps m = -inf, l = 0 and
  /// gets s = 0 (no NaN).
  void (*softmax_panel)(T* s, std::int64_t rows, int nr, T* m, T* l, T* alpha);
  /// One query row of the backward: p = exp(s - lse), ds = p * (dp - dsum),
  /// written over s and dp (n elements each); both rows are zeroed when lse
  /// is -inf (a row that attends nothing).
  void (*softmax_grad_row)(T* s, T* dp, std::int64_t n, T lse, T dsum);
  const char* name;
};

const AttentionKernels<float>& attention_f32_generic();
const AttentionKernels<double>& attention_f64_generic();
const AttentionKernels<float>& attention_f32_avx2();

}  // namespace matnet::detail
