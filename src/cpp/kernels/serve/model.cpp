// Serving saved models (matnet/model.hpp): load_model validates the file
// (model_spec), copies the weights into aligned memory and compiles the
// layers into a short plan of kernel calls that predict runs.
#include "matnet/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>

#include "core/checks.hpp"
#include "core/parallel.hpp"
#include "core/workspace.hpp"
#include "matnet/activations.hpp"
#include "matnet/attention.hpp"
#include "matnet/conv.hpp"
#include "matnet/dense.hpp"
#include "matnet/layer_norm.hpp"
#include "matnet/norm.hpp"
#include "matnet/pool.hpp"
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

/// One kernel call of the plan. Sizes are per sample; rows multiply them.
template <class T>
struct Step {
  enum class Kind {
    chain, activation, softmax, log_softmax, conv2d, max_pool2d, avg_pool2d, batch_norm,
    layer_norm, attention, positional_embedding, sequence_mean, residual
  };
  Kind kind = Kind::chain;
  std::vector<DenseLayerRef<T>> chain;  // kind == chain
  Activation act = Activation::identity;
  T negative_slope = T(0.01);
  std::int64_t in_count = 0, out_count = 0;  // values per sample
  std::int64_t lead = 1, last = 0;  // a sample as (lead, last): last = its last axis
  Conv2dShape conv;                 // batch set per call
  Pool2dShape pool;                 // batch set per call
  bool count_include_pad = true;
  const T* w[4] = {nullptr, nullptr, nullptr, nullptr};  // the layer's tensors, in spec order
  T eps = T(0);
  std::int64_t heads = 1, length = 0, features = 0;
  bool causal = false;
  std::vector<Step> inner;        // residual: the wrapped layer's plan
  std::int64_t inner_widest = 0;  // its widest sample
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

using WeightAt = std::map<std::uint64_t, std::uint64_t>;  // file offset -> offset in the block

std::int64_t product(const detail::Shape& s, std::size_t from = 0,
                     std::size_t to = ~std::size_t(0)) {
  std::int64_t n = 1;
  for (std::size_t i = from; i < std::min(to, s.size()); ++i) n *= s[i];
  return n;
}

// Dense runs become one dense_chain_forward; an activation layer right
// after a Dense without its own activation is fused into it; identities
// (Dropout, Flatten, Reshape) vanish; nested Sequentials are inlined.
template <class T>
void compile(const std::vector<detail::LayerSpec>& layers, const unsigned char* weights,
             const WeightAt& at, std::vector<Step<T>>& plan, std::int64_t& widest) {
  using Kind = detail::LayerSpec::Kind;
  using S = Step<T>;
  for (const detail::LayerSpec& L : layers) {
    if (L.kind == Kind::identity) continue;
    if (L.kind == Kind::sequential) {
      compile(L.children, weights, at, plan, widest);
      continue;
    }
    S* prev = plan.empty() ? nullptr : &plan.back();
    const std::int64_t lead = product(L.in_shape, 0, L.in_shape.size() - 1);
    widest = std::max({widest, product(L.in_shape), product(L.out_shape)});
    if (L.kind == Kind::dense) {
      auto weight = [&](std::size_t j) {
        return reinterpret_cast<const T*>(weights + at.at(L.tensors[j].offset));
      };
      DenseLayerRef<T> ref{weight(0), L.use_bias ? weight(1) : nullptr,
                           L.in_features, L.out_features, L.act, static_cast<T>(L.negative_slope)};
      if (prev != nullptr && prev->kind == S::Kind::chain && prev->lead == lead) {
        prev->chain.push_back(ref);
        prev->out_count = product(L.out_shape);
      } else {
        S s;
        s.chain.push_back(ref);
        s.lead = lead;
        s.in_count = product(L.in_shape);
        s.out_count = product(L.out_shape);
        plan.push_back(std::move(s));
      }
      continue;
    }
    if (L.kind == Kind::activation && prev != nullptr && prev->kind == S::Kind::chain &&
        prev->chain.back().act == Activation::identity) {
      prev->chain.back().act = L.act;
      prev->chain.back().negative_slope = static_cast<T>(L.negative_slope);
      continue;
    }
    S s;
    s.kind = S::Kind::activation;
    s.act = L.act;
    s.negative_slope = static_cast<T>(L.negative_slope);
    s.in_count = product(L.in_shape);
    s.out_count = product(L.out_shape);
    s.lead = lead;
    s.last = L.in_shape.back();
    s.eps = static_cast<T>(L.eps);
    s.features = L.features;
    for (std::size_t j = 0; j < L.tensors.size() && j < 4; ++j)
      s.w[j] = reinterpret_cast<const T*>(weights + at.at(L.tensors[j].offset));
    switch (L.kind) {
      case Kind::activation: break;
      case Kind::softmax: s.kind = S::Kind::softmax; break;
      case Kind::log_softmax: s.kind = S::Kind::log_softmax; break;
      case Kind::conv2d:
        s.kind = S::Kind::conv2d;
        s.conv.in_channels = L.in_channels;
        s.conv.height = L.in_shape[1];
        s.conv.width = L.in_shape[2];
        s.conv.out_channels = L.out_channels;
        s.conv.kernel_h = L.kernel[0], s.conv.kernel_w = L.kernel[1];
        s.conv.stride_h = L.stride[0], s.conv.stride_w = L.stride[1];
        s.conv.pad_top = L.pad[0], s.conv.pad_bottom = L.pad[1];
        s.conv.pad_left = L.pad[2], s.conv.pad_right = L.pad[3];
        s.conv.dilation_h = L.dilation[0], s.conv.dilation_w = L.dilation[1];
        s.conv.groups = L.groups;
        if (!L.use_bias) s.w[1] = nullptr;
        break;
      case Kind::max_pool2d:
      case Kind::avg_pool2d:
      case Kind::global_avg_pool2d: {
        const bool global = L.kind == Kind::global_avg_pool2d;
        s.kind = L.kind == Kind::max_pool2d ? S::Kind::max_pool2d : S::Kind::avg_pool2d;
        s.pool.channels = L.in_shape[0];
        s.pool.height = L.in_shape[1];
        s.pool.width = L.in_shape[2];
        s.pool.kernel_h = global ? L.in_shape[1] : L.kernel[0];
        s.pool.kernel_w = global ? L.in_shape[2] : L.kernel[1];
        s.pool.stride_h = global ? L.in_shape[1] : L.stride[0];
        s.pool.stride_w = global ? L.in_shape[2] : L.stride[1];
        s.pool.pad_h = global ? 0 : L.pad[0];
        s.pool.pad_w = global ? 0 : L.pad[2];
        s.count_include_pad = global || L.count_include_pad;
        break;
      }
      case Kind::batch_norm:
        s.kind = S::Kind::batch_norm;
        if (!L.affine) {  // tensors: running_mean, running_var only
          s.w[2] = s.w[0], s.w[3] = s.w[1];
          s.w[0] = s.w[1] = nullptr;
        }
        break;
      case Kind::layer_norm: s.kind = S::Kind::layer_norm; break;
      case Kind::attention:
        s.kind = S::Kind::attention;
        s.heads = L.num_heads;
        s.length = L.in_shape[0];
        s.causal = L.causal;
        break;
      case Kind::positional_embedding: s.kind = S::Kind::positional_embedding; break;
      case Kind::sequence_mean:
        s.kind = S::Kind::sequence_mean;
        s.length = L.in_shape[0];
        break;
      case Kind::residual:
        s.kind = S::Kind::residual;
        compile(L.children, weights, at, s.inner, s.inner_widest);
        break;
      default:
        detail::fail("load_model", "internal error: layer " + L.type + " has no step");
    }
    plan.push_back(std::move(s));
  }
}

template <class T>
void run_steps(const std::vector<Step<T>>& plan, std::int64_t widest, std::int64_t in_count,
               const T* x, std::int64_t rows, T* out);

template <class T>
void run_step(const Step<T>& step, const T* cur, std::int64_t rows, T* dst) {
  using S = Step<T>;
  switch (step.kind) {
    case S::Kind::chain:
      dense_chain_forward(step.chain.data(), static_cast<std::int64_t>(step.chain.size()), cur,
                          rows * step.lead, dst);
      break;
    case S::Kind::activation:
      activation_forward(dst, cur, rows * step.in_count, step.act, step.negative_slope);
      break;
    case S::Kind::softmax:
      softmax_forward(dst, cur, rows * step.lead, step.last, 1);
      break;
    case S::Kind::log_softmax:
      log_softmax_forward(dst, cur, rows * step.lead, step.last, 1);
      break;
    case S::Kind::conv2d: {
      Conv2dShape s = step.conv;
      s.batch = rows;
      conv2d_forward(dst, static_cast<T*>(nullptr), cur, step.w[0], step.w[1], s, step.act,
                     step.negative_slope);
      break;
    }
    case S::Kind::max_pool2d:
    case S::Kind::avg_pool2d: {
      Pool2dShape s = step.pool;
      s.batch = rows;
      if (step.kind == S::Kind::max_pool2d)
        max_pool2d_forward(dst, nullptr, cur, s);
      else
        avg_pool2d_forward(dst, cur, s, step.count_include_pad);
      break;
    }
    case S::Kind::batch_norm:
      batchnorm_forward_eval(dst, cur, step.w[0], step.w[1], step.w[2], step.w[3], rows,
                             step.features, step.in_count / step.features, step.eps);
      break;
    case S::Kind::layer_norm:
      layer_norm_forward(dst, static_cast<T*>(nullptr), static_cast<T*>(nullptr), cur, step.w[0],
                         step.w[1], rows * step.lead, step.last, step.eps);
      break;
    case S::Kind::attention: {
      // As layers/attention.py: qkv = x W_qkv + b_qkv, split into heads
      // (N, H, L, d), softmax(q k^T / sqrt(d)) v, heads joined, times W_o + b_o.
      const std::int64_t len = step.length, e = step.last, h = step.heads, d = e / h;
      const std::int64_t r = rows * len;
      detail::WorkspaceScope ws;
      T* qkv = ws.alloc<T>(static_cast<std::size_t>(r * 3 * e));
      T* q = ws.alloc<T>(static_cast<std::size_t>(r * e));
      T* k = ws.alloc<T>(static_cast<std::size_t>(r * e));
      T* v = ws.alloc<T>(static_cast<std::size_t>(r * e));
      T* o = ws.alloc<T>(static_cast<std::size_t>(r * e));
      dense_forward(qkv, static_cast<T*>(nullptr), cur, step.w[0], step.w[1], r, e, 3 * e,
                    Activation::identity);
      const std::size_t row_bytes = sizeof(T) * static_cast<std::size_t>(d);
      // Token (n, t) of head hh: q[n, hh, t, :] = qkv[n * len + t, hh * d : (hh + 1) * d].
      const int nt = detail::threads_for(r * 3 * e);
      detail::parallel_split(r, nt, 1, [&](std::int64_t b, std::int64_t end) {
        for (std::int64_t i = b; i < end; ++i) {
          const std::int64_t n = i / len, t = i % len;
          const T* src = qkv + i * 3 * e;
          for (std::int64_t hh = 0; hh < h; ++hh) {
            const std::int64_t to = ((n * h + hh) * len + t) * d;
            std::memcpy(q + to, src + hh * d, row_bytes);
            std::memcpy(k + to, src + e + hh * d, row_bytes);
            std::memcpy(v + to, src + 2 * e + hh * d, row_bytes);
          }
        }
      });
      const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
      attention_forward(o, static_cast<T*>(nullptr), q, k, v, AttentionMask<T>{}, rows * h, len,
                        len, d, d, scale, step.causal);
      T* joined = qkv;  // (N, L, E), reusing the qkv buffer
      const int nt_join = detail::threads_for(r * e);
      detail::parallel_split(r, nt_join, 1, [&](std::int64_t b, std::int64_t end) {
        for (std::int64_t i = b; i < end; ++i) {
          const std::int64_t n = i / len, t = i % len;
          for (std::int64_t hh = 0; hh < h; ++hh)
            std::memcpy(joined + i * e + hh * d, o + ((n * h + hh) * len + t) * d, row_bytes);
        }
      });
      dense_forward(dst, static_cast<T*>(nullptr), joined, step.w[2], step.w[3], r, e, e,
                    Activation::identity);
      break;
    }
    case S::Kind::positional_embedding: {
      const std::int64_t n = step.in_count;
      const T* p = step.w[0];
      const int nt = detail::threads_for(rows * n);
      detail::parallel_split(rows, nt, 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i)
          for (std::int64_t j = 0; j < n; ++j) dst[i * n + j] = cur[i * n + j] + p[j];
      });
      break;
    }
    case S::Kind::sequence_mean: {
      const std::int64_t len = step.length, e = step.last;
      const T count = static_cast<T>(len);
      const int nt = detail::threads_for(rows * len * e);
      detail::parallel_split(rows, nt, 1, [&](std::int64_t b, std::int64_t end) {
        for (std::int64_t i = b; i < end; ++i) {
          T* y = dst + i * e;
          const T* xi = cur + i * len * e;
          std::copy(xi, xi + e, y);
          for (std::int64_t t = 1; t < len; ++t)
            for (std::int64_t j = 0; j < e; ++j) y[j] += xi[t * e + j];
          for (std::int64_t j = 0; j < e; ++j) y[j] /= count;  // as NumPy's mean: sum, then divide
        }
      });
      break;
    }
    case S::Kind::residual: {
      run_steps(step.inner, step.inner_widest, step.in_count, cur, rows, dst);
      const std::int64_t n = rows * step.in_count;
      const int nt = detail::threads_for(n);
      detail::parallel_split(n, nt, 16, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) dst[i] = cur[i] + dst[i];
      });
      break;
    }
  }
}

template <class T>
void run_steps(const std::vector<Step<T>>& plan, std::int64_t widest, std::int64_t in_count,
               const T* x, std::int64_t rows, T* out) {
  if (plan.empty()) {  // only identities
    std::memcpy(out, x, sizeof(T) * static_cast<std::size_t>(rows * in_count));
    return;
  }
  detail::WorkspaceScope ws;
  T* bufs[2] = {nullptr, nullptr};
  if (plan.size() > 1) {
    bufs[0] = ws.alloc<T>(static_cast<std::size_t>(rows * widest));
    bufs[1] = ws.alloc<T>(static_cast<std::size_t>(rows * widest));
  }
  const T* cur = x;
  for (std::size_t s = 0; s < plan.size(); ++s) {
    T* dst = s + 1 == plan.size() ? out : (cur == bufs[0] ? bufs[1] : bufs[0]);
    run_step(plan[s], cur, rows, dst);
    cur = dst;
  }
}

template <class T>
void run_plan(const Model::Impl& m, const std::vector<Step<T>>& plan, const T* x,
              std::int64_t rows, T* out) {
  constexpr const char* fn = "Model::predict";
  detail::require_size(fn, "rows", rows);
  if (rows == 0) return;
  detail::require_ptr(fn, "x", x);
  detail::require_ptr(fn, "out", out);
  // 3 * widest bounds every intermediate (attention's qkv is 3 * L * E).
  if (rows > (std::int64_t(1) << 60) / std::max<std::int64_t>(m.widest, 1))
    detail::fail(fn, "rows " + std::to_string(rows) + " is too large");
  run_steps(plan, m.widest, m.spec.input_size, x, rows, out);
}

void collect(const std::vector<detail::LayerSpec>& layers,
             std::vector<const detail::TensorSpec*>& out) {
  for (const auto& L : layers) {
    for (const auto& t : L.tensors) out.push_back(&t);
    collect(L.children, out);
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
  std::vector<const detail::TensorSpec*> tensors;
  collect(spec.layers, tensors);
  WeightAt at;
  std::uint64_t total = 0;
  for (const detail::TensorSpec* t : tensors) {
    at[t->offset] = total;
    total += round_up(static_cast<std::uint64_t>(t->count) * item);
  }
  impl->weights.reset(static_cast<unsigned char*>(
      ::operator new[](std::max<std::uint64_t>(total, 64), std::align_val_t(64))));
  for (const detail::TensorSpec* t : tensors)
    std::memcpy(impl->weights.get() + at[t->offset], file->data() + t->offset,
                static_cast<std::size_t>(t->count) * item);
  impl->widest = spec.input_size;
  if (spec.float64)
    compile<double>(spec.layers, impl->weights.get(), at, impl->plan64, impl->widest);
  else
    compile<float>(spec.layers, impl->weights.get(), at, impl->plan32, impl->widest);
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
