// examples/embed/main.cpp - matnet's kernels from plain C++, no Python.
//
// Uses only the public API (<matnet/matnet.hpp>, namespace matnet, row-major):
//   1. gemm with transposes, alpha/beta and padded leading dimensions;
//   2. a 2-layer MLP, 4 -> 8 (tanh) -> 3, forward with the bias and the
//      activation fused into the GEMM, softmax cross-entropy with its gradient,
//      the backward pass of both layers and one SGD step, then the loss again;
//   3. bad arguments reported as exceptions derived from std::invalid_argument.
// Both precisions run the same code (float is what a deployment would use).
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

// ------------------------------------------------------------ 2. a 2-layer MLP
//
// Dimension letters: N = batch, K = in-features, H = hidden units, C = classes.
//   x (N, K), labels (N,);  layer 1: w1 (K, H), b1 (H,), tanh;
//   layer 2: w2 (H, C), b2 (C,), identity (logits);  loss: softmax cross-entropy.
constexpr std::int64_t N = 6, K = 4, H = 8, C = 3;

template <typename T>
struct Mlp {
  std::vector<T> w1, b1, w2, b2;
};

template <typename T>
Mlp<T> zero_mlp() {
  return {std::vector<T>(K * H), std::vector<T>(H), std::vector<T>(H * C), std::vector<T>(C)};
}

template <typename T>
Mlp<T> initial_mlp() {
  Mlp<T> p = zero_mlp<T>();
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t h = 0; h < H; ++h) p.w1[k * H + h] = T((5 * k + 3 * h) % 9 - 4) / 8;
  for (std::int64_t h = 0; h < H; ++h) p.b1[h] = T(h % 3 - 1) / 16;
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t c = 0; c < C; ++c) p.w2[h * C + c] = T((2 * h + 5 * c) % 7 - 3) / 8;
  for (std::int64_t c = 0; c < C; ++c) p.b2[c] = T(c - 1) / 32;
  return p;
}

// Activations kept for the backward pass.
template <typename T>
struct Forward {
  std::vector<T> z1 = std::vector<T>(N * H);      // layer-1 pre-activation
  std::vector<T> a1 = std::vector<T>(N * H);      // tanh(z1)
  std::vector<T> logits = std::vector<T>(N * C);  // layer-2 output
};

template <typename T>
void forward(Forward<T>& f, const Mlp<T>& p, const std::vector<T>& x) {
  matnet::dense_forward(f.a1.data(), f.z1.data(), x.data(), p.w1.data(), p.b1.data(), N, K, H,
                        matnet::Activation::tanh);
  // Identity activation: the pre-activation is the output, none kept.
  matnet::dense_forward(f.logits.data(), nullptr, f.a1.data(), p.w2.data(), p.b2.data(), N, H, C,
                        matnet::Activation::identity);
}

template <typename T>
void mlp_demo() {
  std::vector<T> x(N * K);
  std::vector<std::int64_t> labels(N);
  for (std::int64_t i = 0; i < N; ++i) {
    for (std::int64_t k = 0; k < K; ++k) x[i * K + k] = T((3 * i + 7 * k) % 13 - 6) / 4;
    labels[i] = (2 * i + 1) % C;
  }
  Mlp<T> p = initial_mlp<T>();

  Forward<T> f;
  forward(f, p, x);
  std::vector<T> dlogits(N * C);  // d loss / d logits = (softmax - onehot) / N
  const double loss = matnet::cross_entropy(dlogits.data(), f.logits.data(), labels.data(), N, C);

  // Backward: gradients are written (not accumulated) by each call.
  Mlp<T> g = zero_mlp<T>();
  std::vector<T> da1(N * H);
  // Layer 2 (identity, no pre-activation needed): dw2, db2 and da1 = dlogits . w2^T.
  matnet::dense_backward(da1.data(), g.w2.data(), g.b2.data(), dlogits.data(), f.a1.data(),
                         p.w2.data(), nullptr, N, H, C, matnet::Activation::identity);
  // Layer 1 (tanh, from its saved pre-activation z1): dw1, db1; dx not wanted.
  matnet::dense_backward(nullptr, g.w1.data(), g.b1.data(), da1.data(), x.data(), p.w1.data(),
                         f.z1.data(), N, K, H, matnet::Activation::tanh);

  // One SGD step (momentum and weight decay as in torch.optim.SGD; on the
  // first step the momentum buffer is set to the gradient).
  matnet::SgdOptions sgd;
  sgd.lr = 0.25;
  sgd.momentum = 0.9;
  sgd.weight_decay = 1.0 / 128;
  Mlp<T> velocity = zero_mlp<T>();  // momentum buffers
  auto step = [&](std::vector<T>& param, std::vector<T>& buf, const std::vector<T>& grad) {
    matnet::sgd_update(param.data(), buf.data(), grad.data(),
                       static_cast<std::int64_t>(param.size()), sgd, /*first_step=*/true);
  };
  step(p.w1, velocity.w1, g.w1);
  step(p.b1, velocity.b1, g.b1);
  step(p.w2, velocity.w2, g.w2);
  step(p.b2, velocity.b2, g.b2);

  Forward<T> after;
  forward(after, p, x);
  // The loss alone: no gradient wanted.
  const double loss_after =
      matnet::cross_entropy(nullptr, after.logits.data(), labels.data(), N, C);

  std::printf("\"mlp\": {\"logits\": ");
  print_matrix(f.logits.data(), N, C, C);
  std::printf(", \"loss\": ");
  print_number(loss, 17);
  std::printf(", \"grad_logits\": ");
  print_matrix(dlogits.data(), N, C, C);
  const struct {
    const char* name;
    const std::vector<T>& v;
    std::int64_t rows, cols;
  } results[] = {{"grad_w1", g.w1, K, H}, {"grad_b1", g.b1, 1, H}, {"grad_w2", g.w2, H, C},
                 {"grad_b2", g.b2, 1, C}, {"w1", p.w1, K, H},      {"b1", p.b1, 1, H},
                 {"w2", p.w2, H, C},      {"b2", p.b2, 1, C}};
  for (const auto& r : results) {
    std::printf(", \"%s\": ", r.name);
    print_matrix(r.v.data(), r.rows, r.cols, r.cols);
  }
  std::printf(", \"loss_after_step\": ");
  print_number(loss_after, 17);
  std::printf("}");
}

// ------------------------------------------------------------ 3. errors
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
  std::printf(", ");
  mlp_demo<T>();
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
