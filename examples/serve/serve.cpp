// Serve a matnet model from C++: load the file Python's `matnet train`
// wrote, classify the test set it exported one request (row) at a time,
// and print the accuracy and the per-request latency.
//
//   serve MODEL.safetensors TEST_DATA.safetensors [--batch B] [--repeat R]
//         [--threads T] [--predictions OUT]
//
// --batch B      rows per predict call (default 1: one request at a time)
// --repeat R     passes over the test set for the latency figure (default 5)
// --threads T    matnet::set_num_threads(T) (default: OpenMP's default)
// --predictions  write every output row (row-major, in the model's dtype) to OUT
#include <matnet/model.hpp>
#include <matnet/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// The test set as `matnet train` exports it: x float32 (n, features), y int64 (n,).
struct TestSet {
  std::vector<float> x;
  std::vector<std::int64_t> y;
  std::int64_t rows = 0, features = 0;
};

TestSet read_test_set(const std::string& path) {
  const matnet::TensorFile file = matnet::TensorFile::open(path);
  const matnet::TensorView x = file.tensor("x"), y = file.tensor("y");
  if (x.dtype != "F32" || x.shape.size() != 2 || y.dtype != "I64" || y.shape.size() != 1 ||
      y.shape[0] != x.shape[0])
    throw std::runtime_error(path + ": expected x F32 (n, features) and y I64 (n,)");
  TestSet t;
  t.rows = x.shape[0];
  t.features = x.shape[1];
  t.x.resize(x.nbytes / sizeof(float));
  t.y.resize(y.nbytes / sizeof(std::int64_t));
  std::memcpy(t.x.data(), x.data, x.nbytes);  // the mapped data need not be aligned
  std::memcpy(t.y.data(), y.data, y.nbytes);
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: serve MODEL.safetensors TEST_DATA.safetensors [--batch B] [--repeat R] "
                 "[--threads T] [--predictions OUT]\n";
    return 2;
  }
  std::int64_t batch = 1;
  int repeat = 5;
  std::string predictions_path;
  try {
    for (int i = 3; i + 1 < argc; i += 2) {
      const std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--batch") batch = std::stoll(value);
      else if (flag == "--repeat") repeat = std::stoi(value);
      else if (flag == "--threads") matnet::set_num_threads(std::stoi(value));
      else if (flag == "--predictions") predictions_path = value;
      else throw std::invalid_argument("unknown option " + flag);
    }
    if (batch < 1 || repeat < 1) throw std::invalid_argument("--batch and --repeat must be >= 1");

    const matnet::Model model = matnet::load_model(argv[1]);
    const TestSet test = read_test_set(argv[2]);
    if (test.features != model.input_size())
      throw std::runtime_error("the test set has " + std::to_string(test.features) +
                               " features, the model takes " + std::to_string(model.input_size()));
    const std::int64_t classes = model.output_size();
    const bool f64 = std::string(model.dtype()) == "float64";
    const std::vector<double> x64(test.x.begin(), test.x.end());  // a float64 model takes doubles
    std::vector<float> out(static_cast<std::size_t>(test.rows * classes));
    std::vector<double> out64(f64 ? out.size() : 0);

    // Every pass classifies the whole test set in calls of `batch` rows; the
    // latency is the median over calls of the later passes (the first warms
    // the caches and the workspace).
    std::vector<double> call_us;
    for (int pass = 0; pass <= repeat; ++pass) {
      for (std::int64_t r = 0; r < test.rows; r += batch) {
        const std::int64_t n = std::min(batch, test.rows - r);
        const auto t0 = std::chrono::steady_clock::now();
        if (f64)
          model.predict(x64.data() + r * test.features, n, out64.data() + r * classes);
        else
          model.predict(test.x.data() + r * test.features, n, out.data() + r * classes);
        const auto t1 = std::chrono::steady_clock::now();
        if (pass > 0) call_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
    }
    std::int64_t correct = 0;
    for (std::int64_t r = 0; r < test.rows; ++r) {
      std::int64_t best = 0;
      for (std::int64_t c = 1; c < classes; ++c) {
        const std::size_t i = static_cast<std::size_t>(r * classes);
        if (f64 ? out64[i + c] > out64[i + best] : out[i + c] > out[i + best]) best = c;
      }
      correct += best == test.y[static_cast<std::size_t>(r)];
    }
    if (!predictions_path.empty()) {  // raw, row-major, in the model's dtype
      std::ofstream f(predictions_path, std::ios::binary);
      if (f64)
        f.write(reinterpret_cast<const char*>(out64.data()),
                static_cast<std::streamsize>(out64.size() * sizeof(double)));
      else
        f.write(reinterpret_cast<const char*>(out.data()),
                static_cast<std::streamsize>(out.size() * sizeof(float)));
      if (!f) throw std::runtime_error("cannot write " + predictions_path);
    }
    std::printf("model: %s, %zu layers, %lld -> %lld, %s; kernels: %s, %d thread(s)\n", argv[1],
                model.layer_count(), static_cast<long long>(model.input_size()),
                static_cast<long long>(classes), model.dtype(), matnet::isa_name(matnet::active_isa()),
                matnet::get_num_threads());
    std::printf("latency: %.2f us per call of %lld row(s) (median of %zu calls)\n",
                median(call_us), static_cast<long long>(batch), call_us.size());
    std::printf("test accuracy: %.4f\n", static_cast<double>(correct) / static_cast<double>(test.rows));
  } catch (const std::exception& e) {
    std::cerr << "serve: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
