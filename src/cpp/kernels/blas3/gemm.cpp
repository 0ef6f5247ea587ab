// Public GEMM entry points (matnet/gemm.hpp).
#include "matnet/gemm.hpp"

#include <algorithm>
#include <string>

#include "blas3/gemm_driver.hpp"
#include "core/checks.hpp"
#include "core/workspace.hpp"

namespace matnet {

namespace {

template <class T>
void gemm_impl(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
               T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
               std::int64_t ldc) {
  detail::gemm_run<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nullptr,
                      get_num_threads());
}

template <class T>
void gemm_batched_impl(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                       std::int64_t k, T alpha, const T* a, std::int64_t lda,
                       std::int64_t stride_a, const T* b, std::int64_t ldb, std::int64_t stride_b,
                       T beta, T* c, std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  constexpr const char* fn = "gemm_batched";
  detail::require_size(fn, "batch", batch);
  if (stride_a < 0 || stride_b < 0)
    detail::fail(fn, "stride_a and stride_b must be >= 0 (0 shares one operand)");
  if (batch == 0) return;
  detail::gemm_check_args(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  if (batch > 1 && m > 0 && n > 0) {
    const std::int64_t c_span = (m - 1) * ldc + n;  // elements one output touches
    if (stride_c < c_span) {
      detail::fail(fn, "stride_c=" + std::to_string(stride_c) +
                           " makes the outputs overlap: each spans " + std::to_string(c_span) +
                           " elements");
    }
  }
  detail::WorkspaceScope scope;
  const T** ptrs = scope.alloc<const T*>(static_cast<std::size_t>(2 * batch));
  T** cptrs = scope.alloc<T*>(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) {
    ptrs[i] = a != nullptr ? a + i * stride_a : nullptr;
    ptrs[batch + i] = b != nullptr ? b + i * stride_b : nullptr;
    cptrs[i] = c != nullptr ? c + i * stride_c : nullptr;
  }
  detail::gemm_batch_run<T>(m, n, k, alpha, detail::GemmOperand<T>::blas(a, lda, trans_a), ptrs,
                            detail::GemmOperand<T>::blas(b, ldb, trans_b), ptrs + batch, beta,
                            cptrs, ldc, batch, get_num_threads());
}

template <class T>
void gemm_batched_ptrs_impl(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                            std::int64_t k, T alpha, const T* const* a, std::int64_t lda,
                            const T* const* b, std::int64_t ldb, T beta, T* const* c,
                            std::int64_t ldc, std::int64_t batch) {
  constexpr const char* fn = "gemm_batched";
  detail::require_size(fn, "batch", batch);
  if (batch == 0) return;
  detail::require_ptr(fn, "a", a);
  detail::require_ptr(fn, "b", b);
  detail::require_ptr(fn, "c", c);
  // Sizes and leading dimensions once; then only the pointers per product.
  detail::gemm_check_args(trans_a, trans_b, m, n, k, a[0], lda, b[0], ldb, c[0], ldc);
  const bool need_c = m > 0 && n > 0, need_ab = need_c && k > 0;
  for (std::int64_t i = 1; i < batch; ++i) {
    if ((need_c && c[i] == nullptr) || (need_ab && (a[i] == nullptr || b[i] == nullptr)))
      detail::fail(fn, "a null pointer for product " + std::to_string(i));
  }
  detail::gemm_batch_run<T>(m, n, k, alpha, detail::GemmOperand<T>::blas(nullptr, lda, trans_a), a,
                            detail::GemmOperand<T>::blas(nullptr, ldb, trans_b), b, beta, c, ldc,
                            batch, get_num_threads());
}

}  // namespace

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  gemm_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc) {
  gemm_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  float alpha, const float* a, std::int64_t lda, std::int64_t stride_a,
                  const float* b, std::int64_t ldb, std::int64_t stride_b, float beta, float* c,
                  std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  gemm_batched_impl(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                    ldc, stride_c, batch);
}

void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  double alpha, const double* a, std::int64_t lda, std::int64_t stride_a,
                  const double* b, std::int64_t ldb, std::int64_t stride_b, double beta, double* c,
                  std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  gemm_batched_impl(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                    ldc, stride_c, batch);
}

void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  float alpha, const float* const* a, std::int64_t lda, const float* const* b,
                  std::int64_t ldb, float beta, float* const* c, std::int64_t ldc,
                  std::int64_t batch) {
  gemm_batched_ptrs_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, batch);
}

void gemm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  double alpha, const double* const* a, std::int64_t lda, const double* const* b,
                  std::int64_t ldb, double beta, double* const* c, std::int64_t ldc,
                  std::int64_t batch) {
  gemm_batched_ptrs_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, batch);
}

const char* gemm_kernel_name(bool double_precision) {
  return double_precision ? detail::gemm_kernel_name<double>() : detail::gemm_kernel_name<float>();
}

GemmBlocking gemm_blocking(bool double_precision) {
  return double_precision ? detail::gemm_blocking<double>() : detail::gemm_blocking<float>();
}

}  // namespace matnet
