// examples/embed/main.cpp - matnet's kernels from plain C++, no Python.
//
// Uses only the public API (<matnet/matnet.hpp>, namespace matnet, row-major):
//   1. gemm with transposes, alpha/beta and padded leading dimensions;
//   2. bad arguments reported as exceptions derived from std::invalid_argument.
// Every input is a small exact binary fraction given by a formula, so the
// run is deterministic and tests/test_embed.py rebuilds the same numbers in
// NumPy. The results go to stdout as one JSON object (floats printed with
// enough digits to round-trip: 9 for float, 17 for double).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <matnet/matnet.hpp>

namespace {

// ------------------------------------------------------------ JSON output

void print_number(double v, int digits) {
  if (std::isnan(v)) {
    std::printf("NaN");  // accepted by Python's json module, so a test sees it
  } else if (std::isinf(v)) {
    std::printf(v > 0 ? "Infinity" : "-Infinity");
  } else {
    std::printf("%.*g", digits, v);
  }
}

// A rows x cols row-major matrix with leading dimension ld, as a JSON list of rows.
template <typename T>
void print_matrix(const T* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  const int digits = std::numeric_limits<T>::max_digits10;
  std::printf("[");
  for (std::int64_t i = 0; i < rows; ++i) {
    std::printf(i ? ", [" : "[");
    for (std::int64_t j = 0; j < cols; ++j) {
      if (j) std::printf(", ");
      print_number(static_cast<double>(p[i * ld + j]), digits);
    }
    std::printf("]");
  }
  std::printf("]");
}

void print_string(const std::string& s) {
  std::printf("\"");
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      std::printf("\\%c", ch);
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      std::printf("\\u%04x", static_cast<unsigned>(ch));
    } else {
      std::printf("%c", ch);
    }
  }
  std::printf("\"");
}

template <typename T>
const char* dtype_name();
template <>
const char* dtype_name<float>() { return "float32"; }
template <>
const char* dtype_name<double>() { return "float64"; }

// ------------------------------------------------------------ 1. GEMM
//
// C = alpha * A^T * B^T + beta * C with m = 7, n = 9, k = 5:
//   A is stored k x m (lda = m + 2), B is stored n x k (ldb = k + 1),
//   C is m x n (ldc = n + 3). The padding columns hold NaN: gemm must never
//   read them, so a NaN in the result would show that it did.
constexpr std::int64_t kGemmM = 7, kGemmN = 9, kGemmK = 5;

template <typename T>
void gemm_demo() {
  const std::int64_t m = kGemmM, n = kGemmN, k = kGemmK;
  const std::int64_t lda = m + 2, ldb = k + 1, ldc = n + 3;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> a(k * lda, nan), b(n * ldb, nan), c(m * ldc, nan);
  for (std::int64_t p = 0; p < k; ++p)
    for (std::int64_t i = 0; i < m; ++i) a[p * lda + i] = T((i + 2 * p) % 7 - 3) / 4;
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t p = 0; p < k; ++p) b[j * ldb + p] = T((3 * j + p) % 5 - 2) / 2;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = T((i + 2 * j) % 5 - 2) / 2;

  const T alpha = T(0.5), beta = T(-1);
  matnet::gemm(/*trans_a=*/true, /*trans_b=*/true, m, n, k, alpha, a.data(), lda, b.data(), ldb,
               beta, c.data(), ldc);

  std::printf("\"gemm\": {\"m\": %lld, \"n\": %lld, \"k\": %lld, \"c\": ", (long long)m,
              (long long)n, (long long)k);
  print_matrix(c.data(), m, n, ldc);
  std::printf("}");
}

// ------------------------------------------------------------ 2. errors
//
// A too-small leading dimension is a bad argument: the library throws an
// exception derived from std::invalid_argument and writes nothing.
std::string bad_argument_message() {
  std::vector<float> a(4, 1.0f), b(4, 1.0f), c(4, 0.0f);
  try {
    matnet::gemm(false, false, 2, 2, 2, 1.0f, a.data(), /*lda=*/1, b.data(), 2, 0.0f, c.data(),
                 2);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";  // no exception: the test fails on the empty message
}

template <typename T>
void run_dtype() {
  std::printf("\"%s\": {", dtype_name<T>());
  gemm_demo<T>();
  std::printf("}");
}

}  // namespace

int main() {
  try {
    std::printf("{\"isa\": \"%s\", \"threads\": %d, ", matnet::isa_name(matnet::active_isa()),
                matnet::get_num_threads());
    run_dtype<float>();
    std::printf(", ");
    run_dtype<double>();
    std::printf(", \"bad_argument\": ");
    print_string(bad_argument_message());
    std::printf("}\n");
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nmlp_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
