// Serving saved models (matnet/model.hpp): load_model validates the file
// (model_spec), copies the weights into aligned memory and compiles the
// layers into a short plan of kernel calls that predict runs.
#include "matnet/model.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/checks.hpp"
#include "core/workspace.hpp"
#include "matnet/activations.hpp"
#include "matnet/dense.hpp"
#include "serve/mapped_file.hpp"
#include "serve/model_spec.hpp"
#include "serve/safetensors.hpp"

namespace matnet {

// ------------------------------------------------------------ TensorFile

struct TensorFile::Impl {
  std::shared_ptr<const detail::MappedFile> file;
  detail::SafetensorsHeader header;
};

TensorFile TensorFile::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->file = detail::MappedFile::open(path);
  impl->header = detail::parse_safetensors(impl->file->data(), impl->file->size(), path);
  return TensorFile(std::move(impl));
}

std::vector<std::string> TensorFile::names() const {
  std::vector<std::string> out;
  for (const auto& t : impl_->header.tensors) out.push_back(t.name);
  return out;
}

bool TensorFile::contains(const std::string& name) const {
  return impl_->header.find(name) != nullptr;
}

TensorView TensorFile::tensor(const std::string& name) const {
  const detail::TensorEntry* t = impl_->header.find(name);
  if (t == nullptr) detail::fail("TensorFile::tensor", "no tensor named '" + name + "'");
  TensorView v;
  v.dtype = t->dtype;
  v.shape = t->shape;
  v.nbytes = static_cast<std::size_t>(t->end - t->begin);
  v.data = impl_->file->data() + impl_->header.data_offset + t->begin;
  return v;
}

std::optional<std::string> TensorFile::metadata(const std::string& key) const {
  const std::string* v = impl_->header.meta(key);
  return v ? std::optional<std::string>(*v) : std::nullopt;
}

// ------------------------------------------------------------ Model

namespace {

struct AlignedFree {
  void operator()(unsigned char* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

/// One kernel call of the plan.
template <class T>
struct Step {
  enum class Kind { chain, activation, softmax, log_softmax } kind;
  std::vector<DenseLayerRef<T>> chain;  // kind == chain
  Activation act = Activation::identity;
  T negative_slope = T(0.01);
};

}  // namespace

struct Model::Impl {
  detail::ModelSpec spec;
  std::unique_ptr<unsigned char[], AlignedFree> weights;
  std::int64_t widest = 0;  // the widest activation between layers
  std::vector<Step<float>> plan32;
  std::vector<Step<double>> plan64;
};

namespace {

// Dense runs become one dense_chain_forward; an activation layer right
// after a Dense without its own activation is fused into it; identities
// (Dropout, Flatten) vanish.
template <class T>
std::vector<Step<T>> compile_plan(const detail::ModelSpec& spec, const unsigned char* weights,
                                  const std::vector<std::uint64_t>& w_at,
                                  const std::vector<std::uint64_t>& b_at) {
  using Kind = detail::LayerSpec::Kind;
  std::vector<Step<T>> plan;
  for (std::size_t i = 0; i < spec.layers.size(); ++i) {
    const detail::LayerSpec& L = spec.layers[i];
    Step<T>* prev = plan.empty() ? nullptr : &plan.back();
    switch (L.kind) {
      case Kind::identity:
        break;
      case Kind::dense: {
        DenseLayerRef<T> ref{reinterpret_cast<const T*>(weights + w_at[i]),
                             L.use_bias ? reinterpret_cast<const T*>(weights + b_at[i]) : nullptr,
                             L.in_features, L.out_features, L.act, static_cast<T>(L.negative_slope)};
        if (prev != nullptr && prev->kind == Step<T>::Kind::chain) {
          prev->chain.push_back(ref);
        } else {
          Step<T> s{Step<T>::Kind::chain, {ref}};
          plan.push_back(std::move(s));
        }
        break;
      }
      case Kind::activation:
        if (prev != nullptr && prev->kind == Step<T>::Kind::chain &&
            prev->chain.back().act == Activation::identity) {
          prev->chain.back().act = L.act;
          prev->chain.back().negative_slope = static_cast<T>(L.negative_slope);
        } else {
          Step<T> s{Step<T>::Kind::activation, {}, L.act, static_cast<T>(L.negative_slope)};
          plan.push_back(std::move(s));
        }
        break;
      case Kind::softmax:
      case Kind::log_softmax:
        plan.push_back(Step<T>{L.kind == Kind::softmax ? Step<T>::Kind::softmax
                                                       : Step<T>::Kind::log_softmax, {}});
        break;
    }
  }
  return plan;
}

template <class T>
void run_plan(const Model::Impl& m, const std::vector<Step<T>>& plan, const T* x,
              std::int64_t rows, T* out) {
  constexpr const char* fn = "Model::predict";
  detail::require_size(fn, "rows", rows);
  if (rows == 0) return;
  detail::require_ptr(fn, "x", x);
  detail::require_ptr(fn, "out", out);
  if (rows > (std::int64_t(1) << 62) / std::max<std::int64_t>(m.widest, 1))
    detail::fail(fn, "rows " + std::to_string(rows) + " is too large");
  detail::WorkspaceScope ws;
  T* bufs[2] = {nullptr, nullptr};
  if (plan.size() > 1) {
    bufs[0] = ws.alloc<T>(static_cast<std::size_t>(rows * m.widest));
    bufs[1] = ws.alloc<T>(static_cast<std::size_t>(rows * m.widest));
  }
  const T* cur = x;
  std::int64_t width = m.spec.input_size;
  for (std::size_t s = 0; s < plan.size(); ++s) {
    const Step<T>& step = plan[s];
    T* dst = s + 1 == plan.size() ? out : (cur == bufs[0] ? bufs[1] : bufs[0]);
    switch (step.kind) {
      case Step<T>::Kind::chain:
        dense_chain_forward(step.chain.data(), static_cast<std::int64_t>(step.chain.size()), cur,
                            rows, dst);
        width = step.chain.back().out_features;
        break;
      case Step<T>::Kind::activation:
        activation_forward(dst, cur, rows * width, step.act, step.negative_slope);
        break;
      case Step<T>::Kind::softmax:
        softmax_forward(dst, cur, rows, width, 1);
        break;
      case Step<T>::Kind::log_softmax:
        log_softmax_forward(dst, cur, rows, width, 1);
        break;
    }
    cur = dst;
  }
}

}  // namespace

Model load_model(const std::string& path) {
  const auto file = detail::MappedFile::open(path);
  auto impl = std::make_shared<Model::Impl>();
  impl->spec = detail::parse_model_file(file->data(), file->size(), path);
  const detail::ModelSpec& spec = impl->spec;
  const std::size_t item = spec.float64 ? sizeof(double) : sizeof(float);

  // Every array at a 64-byte boundary of one block (the file promises no
  // alignment at all, the kernels like cache-line-aligned rows).
  auto round_up = [](std::uint64_t n) { return (n + 63) / 64 * 64; };
  std::vector<std::uint64_t> w_at(spec.layers.size()), b_at(spec.layers.size());
  std::uint64_t total = 0;
  impl->widest = spec.input_size;
  for (std::size_t i = 0; i < spec.layers.size(); ++i) {
    const detail::LayerSpec& L = spec.layers[i];
    if (L.kind != detail::LayerSpec::Kind::dense) continue;
    impl->widest = std::max(impl->widest, L.out_features);
    w_at[i] = total;
    total += round_up(static_cast<std::uint64_t>(L.in_features * L.out_features) * item);
    b_at[i] = total;
    if (L.use_bias) total += round_up(static_cast<std::uint64_t>(L.out_features) * item);
  }
  impl->weights.reset(static_cast<unsigned char*>(
      ::operator new[](std::max<std::uint64_t>(total, 64), std::align_val_t(64))));
  for (std::size_t i = 0; i < spec.layers.size(); ++i) {
    const detail::LayerSpec& L = spec.layers[i];
    if (L.kind != detail::LayerSpec::Kind::dense) continue;
    std::memcpy(impl->weights.get() + w_at[i], file->data() + L.w_offset,
                static_cast<std::size_t>(L.in_features * L.out_features) * item);
    if (L.use_bias)
      std::memcpy(impl->weights.get() + b_at[i], file->data() + L.b_offset,
                  static_cast<std::size_t>(L.out_features) * item);
  }
  if (spec.float64)
    impl->plan64 = compile_plan<double>(spec, impl->weights.get(), w_at, b_at);
  else
    impl->plan32 = compile_plan<float>(spec, impl->weights.get(), w_at, b_at);
  return Model(std::move(impl));
}

std::int64_t Model::input_size() const { return impl_->spec.input_size; }
std::int64_t Model::output_size() const { return impl_->spec.output_size; }
const char* Model::dtype() const { return impl_->spec.float64 ? "float64" : "float32"; }
std::size_t Model::layer_count() const { return impl_->spec.layers.size(); }

std::vector<std::string> Model::layer_types() const {
  std::vector<std::string> out;
  for (const auto& L : impl_->spec.layers) out.push_back(L.type);
  return out;
}

void Model::predict(const float* x, std::int64_t rows, float* out) const {
  if (impl_->spec.float64)
    detail::fail("Model::predict", "the model's weights are float64; pass double arrays");
  run_plan(*impl_, impl_->plan32, x, rows, out);
}

void Model::predict(const double* x, std::int64_t rows, double* out) const {
  if (!impl_->spec.float64)
    detail::fail("Model::predict", "the model's weights are float32; pass float arrays");
  run_plan(*impl_, impl_->plan64, x, rows, out);
}

}  // namespace matnet
