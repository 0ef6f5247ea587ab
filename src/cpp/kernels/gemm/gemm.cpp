// Public GEMM entry points (matnet/gemm.hpp).
#include "matnet/gemm.hpp"

#include "gemm/gemm_driver.hpp"

namespace matnet {

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  detail::gemm_run<float>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nullptr);
}

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc) {
  detail::gemm_run<double>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nullptr);
}

const char* gemm_kernel_name(bool double_precision) {
  return double_precision ? detail::gemm_kernel_name<double>() : detail::gemm_kernel_name<float>();
}

GemmBlocking gemm_blocking(bool double_precision) {
  return double_precision ? detail::gemm_blocking<double>() : detail::gemm_blocking<float>();
}

}  // namespace matnet
