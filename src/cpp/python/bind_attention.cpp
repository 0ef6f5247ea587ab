// Bindings: scaled dot-product attention, forward and backward
// (matnet/attention.hpp). q, k, v are (..., L, D) with equal leading
// dimensions; the mask arrives from matnet.ops already additive, of q's
// dtype and broadcast (a view, strides 0 allowed) to (..., Lq, Lk).
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/attention.hpp"

namespace matnet::bind {

namespace {

using Shape = std::vector<py::ssize_t>;

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

std::string shape_text(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

/// The sizes of one call: entries (leading dimensions flattened), lengths, widths.
struct Dims {
  Shape lead;
  std::int64_t batch = 1, lq = 0, lk = 0, d = 0, dv = 0;
};

Dims check_qkv(const py::array& q, const py::array& k, const py::array& v, const char* fn) {
  const std::string f(fn);
  if (q.ndim() < 2)
    throw py::value_error(f + ": q must be (..., L, D) with at least 2 dimensions, got shape " +
                          shape_str(q));
  if (k.ndim() != q.ndim() || v.ndim() != q.ndim())
    throw py::value_error(f + ": q, k and v must have the same number of dimensions, got q " +
                          shape_str(q) + ", k " + shape_str(k) + " and v " + shape_str(v));
  Dims s;
  const int nd = static_cast<int>(q.ndim());
  for (int i = 0; i < nd - 2; ++i) {
    if (k.shape(i) != q.shape(i) || v.shape(i) != q.shape(i))
      throw py::value_error(f + ": q, k and v must have the same leading dimensions, got q " +
                            shape_str(q) + ", k " + shape_str(k) + " and v " + shape_str(v));
    s.lead.push_back(q.shape(i));
    s.batch *= q.shape(i);
  }
  s.lq = q.shape(nd - 2);
  s.d = q.shape(nd - 1);
  s.lk = k.shape(nd - 2);
  s.dv = v.shape(nd - 1);
  if (k.shape(nd - 1) != s.d)
    throw py::value_error(f + ": q and k must have the same last dimension, got q " +
                          shape_str(q) + " and k " + shape_str(k));
  if (v.shape(nd - 2) != s.lk)
    throw py::value_error(f + ": k and v must have the same length (axis -2), got k " +
                          shape_str(k) + " and v " + shape_str(v));
  return s;
}

void require_shape(const py::array& a, const Shape& want, const char* name, const char* fn) {
  if (shape_of(a) != want)
    throw py::value_error(std::string(fn) + ": " + name + " must have shape " + shape_text(want) +
                          ", got " + shape_str(a));
}

Shape with(Shape s, std::initializer_list<py::ssize_t> tail) {
  s.insert(s.end(), tail);
  return s;
}

/// The mask as AttentionMask strides and per-entry offsets into `keep`
/// (which holds the data): the (..., Lq, Lk) view is read in place when its
/// strides are whole elements, else copied once.
template <class T>
struct MaskArg {
  py::array keep;
  std::vector<std::int64_t> offsets;
  AttentionMask<T> mask;
};

template <class T>
MaskArg<T> mask_arg(const py::object& obj, const Dims& s, const char* fn) {
  MaskArg<T> out;
  if (obj.is_none()) return out;
  py::array m = to_array(obj, fn, "mask");
  if (float_dtype(m, fn, "mask") != (sizeof(T) == 4 ? DType::f32 : DType::f64))
    throw py::type_error(std::string(fn) + ": mask must have the dtype of q, got " + dtype_str(m));
  require_shape(m, with(s.lead, {s.lq, s.lk}), "mask", fn);
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  bool ok = m.dtype().byteorder() != '>' &&
            reinterpret_cast<std::uintptr_t>(m.data()) % alignof(T) == 0;
  for (int i = 0; i < m.ndim(); ++i) ok = ok && m.strides(i) % item == 0;
  if (!ok) m = c_contiguous(m);
  out.keep = m;
  const int nd = static_cast<int>(m.ndim());
  out.offsets.assign(static_cast<std::size_t>(s.batch), 0);
  // Entry b's offset: its leading-dimension index, digit by digit.
  for (std::int64_t b = 0; b < s.batch; ++b) {
    std::int64_t rest = b, off = 0;
    for (int i = nd - 3; i >= 0; --i) {
      off += (rest % m.shape(i)) * (m.strides(i) / item);
      rest /= m.shape(i);
    }
    out.offsets[static_cast<std::size_t>(b)] = off;
  }
  out.mask.data = static_cast<const T*>(m.data());
  out.mask.offsets = out.offsets.data();
  out.mask.row_stride = m.strides(nd - 2) / item;
  out.mask.col_stride = m.strides(nd - 1) / item;
  return out;
}

template <class T>
py::tuple run_forward(const py::array& q, const py::array& k, const py::array& v,
                      const py::object& mask_obj, const Dims& s, double scale, bool causal,
                      DType dt) {
  const char* fn = "scaled_dot_product_attention";
  MaskArg<T> ma = mask_arg<T>(mask_obj, s, fn);
  py::array out = empty_array(dt, with(s.lead, {s.lq, s.dv}));
  py::array lse = empty_array(dt, with(s.lead, {s.lq}));
  T* op = static_cast<T*>(out.mutable_data());
  T* lp = static_cast<T*>(lse.mutable_data());
  const T* qp = static_cast<const T*>(q.data());
  const T* kp = static_cast<const T*>(k.data());
  const T* vp = static_cast<const T*>(v.data());
  {
    py::gil_scoped_release release;
    attention_forward(op, lp, qp, kp, vp, ma.mask, s.batch, s.lq, s.lk, s.d, s.dv,
                      static_cast<T>(scale), causal);
  }
  return py::make_tuple(out, lse);
}

py::tuple attention_py(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                       const py::object& mask, double scale, bool causal) {
  const char* fn = "scaled_dot_product_attention";
  py::array q = to_array(q_obj, fn, "q"), k = to_array(k_obj, fn, "k"), v = to_array(v_obj, fn, "v");
  const DType dt = common_float_dtype({{"q", &q}, {"k", &k}, {"v", &v}}, fn);
  const Dims s = check_qkv(q, k, v, fn);
  q = c_contiguous(q);
  k = c_contiguous(k);
  v = c_contiguous(v);
  if (dt == DType::f32) return run_forward<float>(q, k, v, mask, s, scale, causal, dt);
  return run_forward<double>(q, k, v, mask, s, scale, causal, dt);
}

template <class T>
py::tuple run_backward(const py::array& go, const py::array& q, const py::array& k,
                       const py::array& v, const py::array& o, const py::array& lse,
                       const py::object& mask_obj, const Dims& s, double scale, bool causal,
                       DType dt) {
  const char* fn = "scaled_dot_product_attention_backward";
  MaskArg<T> ma = mask_arg<T>(mask_obj, s, fn);
  py::array dq = empty_array(dt, shape_of(q)), dk = empty_array(dt, shape_of(k)),
            dv = empty_array(dt, shape_of(v));
  T* dqp = static_cast<T*>(dq.mutable_data());
  T* dkp = static_cast<T*>(dk.mutable_data());
  T* dvp = static_cast<T*>(dv.mutable_data());
  auto in = [](const py::array& a) { return static_cast<const T*>(a.data()); };
  {
    py::gil_scoped_release release;
    attention_backward(dqp, dkp, dvp, in(go), in(q), in(k), in(v), in(o), in(lse), ma.mask,
                       s.batch, s.lq, s.lk, s.d, s.dv, static_cast<T>(scale), causal);
  }
  return py::make_tuple(dq, dk, dv);
}

py::tuple attention_backward_py(const py::object& go_obj, const py::object& q_obj,
                                const py::object& k_obj, const py::object& v_obj,
                                const py::object& o_obj, const py::object& lse_obj,
                                const py::object& mask, double scale, bool causal) {
  const char* fn = "scaled_dot_product_attention_backward";
  py::array go = to_array(go_obj, fn, "grad_out"), q = to_array(q_obj, fn, "q"),
            k = to_array(k_obj, fn, "k"), v = to_array(v_obj, fn, "v"),
            o = to_array(o_obj, fn, "out"), lse = to_array(lse_obj, fn, "lse");
  const DType dt = common_float_dtype(
      {{"grad_out", &go}, {"q", &q}, {"k", &k}, {"v", &v}, {"out", &o}, {"lse", &lse}}, fn);
  const Dims s = check_qkv(q, k, v, fn);
  require_shape(go, with(s.lead, {s.lq, s.dv}), "grad_out", fn);
  require_shape(o, with(s.lead, {s.lq, s.dv}), "out", fn);
  require_shape(lse, with(s.lead, {s.lq}), "lse", fn);
  go = c_contiguous(go);
  q = c_contiguous(q);
  k = c_contiguous(k);
  v = c_contiguous(v);
  o = c_contiguous(o);
  lse = c_contiguous(lse);
  if (dt == DType::f32) return run_backward<float>(go, q, k, v, o, lse, mask, s, scale, causal, dt);
  return run_backward<double>(go, q, k, v, o, lse, mask, s, scale, causal, dt);
}

}  // namespace

void register_attention(py::module_& m) {
  m.def("attention", &attention_py, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("mask").none(true), py::arg("scale"), py::arg("causal") = false,
        "(out, lse) of softmax(scale * q k^T + mask) v; mask additive, of q's dtype, shaped "
        "(..., Lq, Lk) (a broadcast view is read in place).");
  m.def("attention_backward", &attention_backward_py, py::arg("grad_out"), py::arg("q"),
        py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("mask").none(true),
        py::arg("scale"), py::arg("causal") = false,
        "(dq, dk, dv) of attention() from grad_out and the forward's out and lse.");
}

}  // namespace matnet::bind
