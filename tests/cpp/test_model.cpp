// tests/cpp/test_model.cpp - matnet/model.hpp: TensorFile and load_model on
// files written here byte by byte (the safetensors layout), predictions
// against dense_forward layer by layer, concurrency and errors.
#include <matnet/dense.hpp>
#include <matnet/model.hpp>
#include <matnet/runtime.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

std::string shape_json(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A safetensors file: 8-byte header length, JSON header, float32 data.
void write_file(const std::string& path, const std::vector<Tensor>& tensors,
                const std::string& config, const std::string& version = "1") {
  std::string header = "{\"__metadata__\":{\"format\":\"matnet.Sequential\",\"format_version\":\"" +
                       version + "\",\"matnet_config\":\"" + escape(config) + "\"}";
  std::uint64_t at = 0;
  for (const Tensor& t : tensors) {
    const std::uint64_t bytes = t.values.size() * sizeof(float);
    header += ",\"" + t.name + "\":{\"dtype\":\"F32\",\"shape\":" + shape_json(t.shape) +
              ",\"data_offsets\":[" + std::to_string(at) + "," + std::to_string(at + bytes) + "]}";
    at += bytes;
  }
  header += "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  std::ofstream f(path, std::ios::binary);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xFF));
  f << header;
  for (const Tensor& t : tensors)
    f.write(reinterpret_cast<const char*>(t.values.data()),
            static_cast<std::streamsize>(t.values.size() * sizeof(float)));
}

// Small integers: every product and sum is exact in float32, so any
// summation order gives the same bits and predictions can be compared exactly.
std::vector<float> ints(std::size_t n, int seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(static_cast<int>((i * 7 + seed * 13) % 9) - 4);
  return v;
}

const char* kConfig =
    "{\"format\": \"matnet.Sequential\", \"format_version\": 1, \"layers\": ["
    "{\"type\": \"Flatten\", \"config\": {}},"
    "{\"type\": \"Dense\", \"config\": {\"in_features\": 5, \"out_features\": 7, \"activation\": "
    "\"relu\", \"use_bias\": true, \"dtype\": \"float32\", \"negative_slope\": 0.01}},"
    "{\"type\": \"Dropout\", \"config\": {\"p\": 0.5, \"seed\": null}},"
    "{\"type\": \"Dense\", \"config\": {\"in_features\": 7, \"out_features\": 3, \"activation\": "
    "null, \"use_bias\": false, \"dtype\": \"float32\"}},"
    "{\"type\": \"ReLU\", \"config\": {}}]}";

std::string temp_path(const char* name) {
  return std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/matnet_test_" +
         std::to_string(static_cast<long long>(std::hash<std::thread::id>()(std::this_thread::get_id()) % 100000)) +
         "_" + name;
}

std::vector<Tensor> tensors() {
  return {{"layers.1.W", {5, 7}, ints(35, 1)}, {"layers.1.b", {7}, ints(7, 2)},
          {"layers.3.W", {7, 3}, ints(21, 3)}};
}

// The same network through dense_forward, layer by layer.
std::vector<float> reference(const std::vector<float>& x, std::int64_t rows) {
  const auto t = tensors();
  std::vector<float> h(static_cast<std::size_t>(rows * 7)), y(static_cast<std::size_t>(rows * 3));
  matnet::dense_forward(h.data(), nullptr, x.data(), t[0].values.data(), t[1].values.data(), rows,
                        5, 7, matnet::Activation::relu);
  matnet::dense_forward(y.data(), nullptr, h.data(), t[2].values.data(), nullptr, rows, 7, 3,
                        matnet::Activation::relu);
  return y;
}

void test_model_predicts_like_dense_forward() {
  const std::string path = temp_path("model.safetensors");
  write_file(path, tensors(), kConfig);
  const matnet::Model model = matnet::load_model(path);
  CHECK(model.input_size() == 5);
  CHECK(model.output_size() == 3);
  CHECK(std::string(model.dtype()) == "float32");
  CHECK(model.layer_count() == 5);
  CHECK(model.layer_types() ==
        (std::vector<std::string>{"Flatten", "Dense", "Dropout", "Dense", "ReLU"}));
  for (std::int64_t rows : {1, 2, 9, 33}) {
    const std::vector<float> x = ints(static_cast<std::size_t>(rows * 5), 4);
    std::vector<float> out(static_cast<std::size_t>(rows * 3), -99.0f);
    model.predict(x.data(), rows, out.data());
    CHECK(out == reference(x, rows));
  }
  const matnet::Model copy = model;  // shares the weights
  std::vector<float> x = ints(5, 4), a(3), b(3);
  model.predict(x.data(), 1, a.data());
  copy.predict(x.data(), 1, b.data());
  CHECK(a == b);
  model.predict(x.data(), 0, nullptr);  // rows == 0: nothing to do, nothing read
  std::remove(path.c_str());
}

void test_model_predict_from_several_threads() {
  const std::string path = temp_path("threads.safetensors");
  write_file(path, tensors(), kConfig);
  const matnet::Model model = matnet::load_model(path);
  std::remove(path.c_str());  // the model owns its weights; the file is not needed
  const std::int64_t rows = 17;
  const std::vector<float> x = ints(static_cast<std::size_t>(rows * 5), 6);
  const std::vector<float> want = reference(x, rows);
  std::vector<int> ok(4, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      std::vector<float> out(static_cast<std::size_t>(rows * 3));
      bool good = true;
      for (int i = 0; i < 200; ++i) {
        model.predict(x.data(), rows, out.data());
        good = good && out == want;
      }
      ok[static_cast<std::size_t>(t)] = good;
    });
  for (auto& th : pool) th.join();
  CHECK(ok == std::vector<int>(4, 1));
}

void test_tensor_file_reads_names_metadata_and_data() {
  const std::string path = temp_path("tensors.safetensors");
  write_file(path, tensors(), kConfig);
  const matnet::TensorFile file = matnet::TensorFile::open(path);
  CHECK(file.names() == (std::vector<std::string>{"layers.1.W", "layers.1.b", "layers.3.W"}));
  CHECK(file.contains("layers.1.b") && !file.contains("layers.2.b"));
  CHECK(file.metadata("format").value_or("") == "matnet.Sequential");
  CHECK(!file.metadata("nope").has_value());
  const matnet::TensorView w = file.tensor("layers.3.W");
  CHECK(w.dtype == "F32" && w.shape == (std::vector<std::int64_t>{7, 3}) && w.nbytes == 84);
  std::vector<float> values(21);
  std::memcpy(values.data(), w.data, w.nbytes);
  CHECK(values == ints(21, 3));
  bool threw = false;
  try {
    file.tensor("absent");
  } catch (const matnet::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  std::remove(path.c_str());
}

void test_model_errors() {
  CHECK(throws<std::runtime_error>([] { matnet::load_model("/nonexistent/model.safetensors"); }));
  CHECK(throws<std::runtime_error>([] { matnet::load_model("/dev/zero"); }));  // not a regular file
  const std::string path = temp_path("errors.safetensors");
  write_file(path, tensors(), kConfig);
  const matnet::Model model = matnet::load_model(path);
  std::vector<float> x(10), out(6);
  std::vector<double> xd(10), outd(6);
  CHECK(throws<matnet::invalid_argument>([&] { model.predict(x.data(), -1, out.data()); }));
  CHECK(throws<matnet::invalid_argument>([&] { model.predict(nullptr, 2, out.data()); }));
  CHECK(throws<matnet::invalid_argument>([&] { model.predict(x.data(), 2, nullptr); }));
  CHECK(throws<matnet::invalid_argument>([&] { model.predict(xd.data(), 2, outd.data()); }));

  // Malformed files: a model_format_error, which is an invalid_argument.
  auto refused = [&](const std::vector<Tensor>& ts, const std::string& config,
                     const std::string& version = "1") {
    write_file(path, ts, config, version);
    return throws<matnet::model_format_error>([&] { matnet::load_model(path); }) &&
           throws<matnet::invalid_argument>([&] { matnet::load_model(path); });
  };
  CHECK(refused(tensors(), kConfig, "2"));                         // unknown version
  CHECK(refused(tensors(), "{\"layers\": []}"));                   // no layers
  CHECK(refused(tensors(), std::string(kConfig).substr(0, 40)));   // config not JSON
  auto wrong_shape = tensors();
  wrong_shape[0].shape = {7, 5};
  CHECK(refused(wrong_shape, kConfig));
  auto missing = tensors();
  missing.pop_back();
  CHECK(refused(missing, kConfig));
  std::string unknown = kConfig;
  unknown.replace(unknown.find("\"ReLU\""), 6, "\"Evil\"");
  CHECK(refused(tensors(), unknown));
  write_file(path, tensors(), kConfig);
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() - 1);  // truncated
  }
  CHECK(throws<matnet::model_format_error>([&] { matnet::load_model(path); }));
  std::remove(path.c_str());
}

}  // namespace

int main() {
  return run_tests({
      {"model_predicts_like_dense_forward", test_model_predicts_like_dense_forward},
      {"model_predict_from_several_threads", test_model_predict_from_several_threads},
      {"tensor_file_reads_names_metadata_and_data", test_tensor_file_reads_names_metadata_and_data},
      {"model_errors", test_model_errors},
  });
}
