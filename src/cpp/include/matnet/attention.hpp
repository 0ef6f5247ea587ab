// matnet/attention.hpp - scaled dot-product attention, forward and backward,
// flash style (blocks of queries against blocks of keys with an online
// softmax: memory O(L * d), the L x L scores are never held whole).
//
// Shape legend (row-major, contiguous):
//   B  batch: every leading dimension flattened (batch x heads)
//   Lq queries, Lk keys, D the query/key width, Dv the value width
//   q    (B, Lq, D)     k  (B, Lk, D)     v  (B, Lk, Dv)
//   out  (B, Lq, Dv)    lse (B, Lq)       dq, dk, dv shaped like q, k, v
//
//   S = scale * q k^T + mask   (mask additive; causal adds -inf where key > query)
//   P = softmax(S) along keys;  out = P v;  lse[i] = log sum_j exp(S[i, j])
//
// causal is top-left aligned, as PyTorch's is_causal: query i attends keys
// j <= i (whatever Lq and Lk). A query row that attends no key (every mask
// entry -inf, or Lk == 0) has defined results: out row 0, lse -inf, and zero
// gradients from it; never NaN.
//
// The mask (optional) is additive, of the dtype of q: element (b, i, j) is
// mask.data[mask.offsets[b] + i * mask.row_stride + j * mask.col_stride]
// (offsets null: 0 for every b), so any broadcast (strides 0) or view needs
// no copy. A boolean mask is -inf where it blocks and 0 elsewhere.
//
// Conventions as activations.hpp: outputs first, then inputs, sizes last;
// gradients are OVERWRITTEN; matnet::invalid_argument for negative sizes or
// null pointers where data is read or written; threads: up to
// get_num_threads() OpenMP threads over batch x query blocks (forward) and
// batch x key blocks (backward); safe to call concurrently on distinct
// outputs. Outputs must not overlap inputs.
//
// NaN in q, k or v gives NaN in every output it reaches (a NaN score makes
// its whole query row NaN), as in PyTorch.
//
// Accuracy: the float32 AVX2 path uses a vectorised exp (about 1 eps
// relative); the block products are matnet's GEMM microkernels; float64 uses
// libm. The forward sums run in the dtype.
#pragma once

#include <cstdint>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// An additive attention mask with arbitrary strides (see above).
template <class T>
struct AttentionMask {
  const T* data = nullptr;                 ///< null: no mask
  const std::int64_t* offsets = nullptr;   ///< B offsets in elements, or null (all 0)
  std::int64_t row_stride = 0;             ///< elements between queries
  std::int64_t col_stride = 1;             ///< elements between keys
};

/// out = softmax(scale * q k^T + mask) v per batch entry; lse (may be null)
/// receives the row log-sum-exp the backward needs. scale is usually
/// 1/sqrt(D).
MATNET_API void attention_forward(float* out, float* lse, const float* q, const float* k,
                                  const float* v, const AttentionMask<float>& mask,
                                  std::int64_t batch, std::int64_t lq, std::int64_t lk,
                                  std::int64_t d, std::int64_t dv, float scale, bool causal);
MATNET_API void attention_forward(double* out, double* lse, const double* q, const double* k,
                                  const double* v, const AttentionMask<double>& mask,
                                  std::int64_t batch, std::int64_t lq, std::int64_t lk,
                                  std::int64_t d, std::int64_t dv, double scale, bool causal);

/// dq, dk, dv of the forward above from grad_out (B, Lq, Dv) and the
/// forward's out and lse (flash-attention-2 backward: P is recomputed from
/// q, k and lse block by block). Same mask, scale and causal as the forward.
MATNET_API void attention_backward(float* dq, float* dk, float* dv, const float* grad_out,
                                   const float* q, const float* k, const float* v,
                                   const float* out, const float* lse,
                                   const AttentionMask<float>& mask, std::int64_t batch,
                                   std::int64_t lq, std::int64_t lk, std::int64_t d,
                                   std::int64_t dv_width, float scale, bool causal);
MATNET_API void attention_backward(double* dq, double* dk, double* dv, const double* grad_out,
                                   const double* q, const double* k, const double* v,
                                   const double* out, const double* lse,
                                   const AttentionMask<double>& mask, std::int64_t batch,
                                   std::int64_t lq, std::int64_t lk, std::int64_t d,
                                   std::int64_t dv_width, double scale, bool causal);

}  // namespace matnet
