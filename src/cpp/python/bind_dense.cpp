// Bindings: the fused dense layer, forward and backward.
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/dense.hpp"

namespace matnet::bind {

namespace {

std::string dims(std::int64_t a, std::int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

void require_shape2(const py::array& a, std::int64_t r, std::int64_t c, const char* fn,
                    const char* name, const std::string& why) {
  if (a.ndim() != 2 || a.shape(0) != r || a.shape(1) != c) {
    throw py::value_error(std::string(fn) + ": " + name + " must have shape " + dims(r, c) +
                          " (" + why + "), got " + shape_str(a));
  }
}

/// x (N, K) and w (K, M), else ValueError naming both shapes.
void check_x_w(const py::array& x, const py::array& w, const char* fn) {
  require_ndim(x, 2, fn, "x");
  require_ndim(w, 2, fn, "w");
  if (w.shape(0) != x.shape(1)) {
    throw py::value_error(std::string(fn) + ": x of shape " + shape_str(x) + " and w of shape " +
                          shape_str(w) + " do not fit: w must have x.shape[1] = " +
                          std::to_string(x.shape(1)) + " rows");
  }
}

/// y = act(x @ w + b); with keep_z also the pre-activation z (a second
/// array unless the activation is identity). `out`, when given, receives y:
/// a C-contiguous, writeable (N, M) array of the dtype, not overlapping x,
/// w or b (inference reuses one buffer per layer this way).
py::tuple dense_forward_common(const char* fn, const py::object& x_obj, const py::object& w_obj,
                               const py::object& b_obj, const py::object& act_obj, double slope,
                               bool keep_z, const py::object& out_obj) {
  const Activation act = activation_arg(act_obj, fn);
  py::array x, w, b;
  bool has_b = false;
  const DType dt = xwb_arrays(x_obj, w_obj, b_obj, fn, x, w, b, has_b);
  check_x_w(x, w, fn);
  const std::int64_t n = x.shape(0), k = x.shape(1), m = w.shape(1);
  if (has_b && (b.ndim() != 1 || b.shape(0) != m)) {
    throw py::value_error(std::string(fn) + ": b must have shape (" + std::to_string(m) +
                          ",) to match w of shape " + shape_str(w) + ", got " + shape_str(b));
  }
  x = c_contiguous(x);
  w = c_contiguous(w);
  if (has_b) b = c_contiguous(b);
  py::array y;
  if (out_obj.is_none()) {
    y = empty_array(dt, {n, m});
  } else {
    if (!py::isinstance<py::array>(out_obj)) throw py::type_error(std::string(fn) + ": out must be a NumPy array");
    y = py::reinterpret_borrow<py::array>(out_obj);
    check_out(y, dt, {n, m}, fn);
    if (may_overlap(y, x) || may_overlap(y, w) || (has_b && may_overlap(y, b)))
      throw py::value_error(std::string(fn) + ": out overlaps an input");
  }
  const bool separate_z = keep_z && act != Activation::identity;
  py::array z = separate_z ? empty_array(dt, {n, m}) : y;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* yp = mptr<T>(y);
    T* zp = separate_z ? mptr<T>(z) : nullptr;
    const T* xp = cptr<T>(x);
    const T* wp = cptr<T>(w);
    const T* bp = has_b ? cptr<T>(b) : nullptr;
    py::gil_scoped_release release;
    dense_forward(yp, zp, xp, wp, bp, n, k, m, act, static_cast<T>(slope));
  };
  if (dt == DType::f32) run(float{});
  else run(double{});
  return py::make_tuple(y, z);
}

py::tuple dense_forward_py(const py::object& x_obj, const py::object& w_obj,
                           const py::object& b_obj, const py::object& act_obj, double slope) {
  return dense_forward_common("dense_forward", x_obj, w_obj, b_obj, act_obj, slope, true,
                              py::none());
}

py::object dense_infer_py(const py::object& x_obj, const py::object& w_obj,
                          const py::object& b_obj, const py::object& act_obj, double slope,
                          const py::object& out_obj) {
  return dense_forward_common("dense_infer", x_obj, w_obj, b_obj, act_obj, slope, false,
                              out_obj)[0];
}

/// `dw_out` / `db_out`, when given, receive dw / db: C-contiguous, writeable
/// arrays of the dtype and shape, overlapping no input and not each other
/// (data-parallel training has backward write into its fused buffer).
py::tuple dense_backward_py(const py::object& gy_obj, const py::object& x_obj,
                            const py::object& w_obj, const py::object& z_obj,
                            const py::object& act_obj, double slope, bool need_dx,
                            const py::object& dw_out, const py::object& db_out) {
  constexpr const char* fn = "dense_backward";
  const Activation act = activation_arg(act_obj, fn);
  py::array gy, x, w, z;
  bool has_z = false;
  const DType dt = backward_arrays(gy_obj, x_obj, w_obj, z_obj, act, fn, "dense_forward", gy, x,
                                   w, z, has_z);
  check_x_w(x, w, fn);
  const std::int64_t n = x.shape(0), k = x.shape(1), m = w.shape(1);
  require_shape2(gy, n, m, fn, "grad_y", "x.shape[0], w.shape[1]");
  if (has_z) require_shape2(z, n, m, fn, "z", "x.shape[0], w.shape[1]");
  gy = c_contiguous(gy);
  x = c_contiguous(x);
  w = c_contiguous(w);
  if (has_z) z = c_contiguous(z);
  auto grad_out = [&](const py::object& out, std::vector<py::ssize_t> shape,
                      const char* what) -> py::array {
    if (out.is_none()) return empty_array(dt, shape);
    if (!py::isinstance<py::array>(out))
      throw py::type_error(std::string(fn) + ": " + what + " must be a NumPy array");
    py::array a = py::reinterpret_borrow<py::array>(out);
    check_out(a, dt, shape, (std::string(fn) + " (" + what + ")").c_str());
    if (may_overlap(a, gy) || may_overlap(a, x) || may_overlap(a, w) || (has_z && may_overlap(a, z)))
      throw py::value_error(std::string(fn) + ": " + what + " overlaps an input");
    return a;
  };
  py::array dw = grad_out(dw_out, {k, m}, "dw_out");
  py::array db = grad_out(db_out, {m}, "db_out");
  if (!dw_out.is_none() && !db_out.is_none() && may_overlap(dw, db))
    throw py::value_error(std::string(fn) + ": dw_out and db_out overlap");
  py::object dx_obj = py::none();
  py::array dx;
  if (need_dx) {
    dx = empty_array(dt, {n, k});
    dx_obj = dx;
  }
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* dxp = need_dx ? mptr<T>(dx) : nullptr;
    T* dwp = mptr<T>(dw);
    T* dbp = mptr<T>(db);
    const T* gp = cptr<T>(gy);
    const T* xp = cptr<T>(x);
    const T* wp = cptr<T>(w);
    const T* zp = has_z ? cptr<T>(z) : nullptr;
    py::gil_scoped_release release;
    dense_backward(dxp, dwp, dbp, gp, xp, wp, zp, n, k, m, act, static_cast<T>(slope));
  };
  if (dt == DType::f32) run(float{});
  else run(double{});
  return py::make_tuple(dx_obj, dw, db);
}

/// y = the chain of dense layers applied to x (inference). `layers` is a
/// sequence of (w, b or None, activation or None, negative_slope); every
/// array must already be C-contiguous of x's dtype (Sequential builds this
/// plan once from its layers).
/// Index of the first row of a C-contiguous (rows, cols) array holding NaN
/// or Inf, or -1. An exponent of all ones is what NaN and Inf share; an
/// integer OR over the row vectorises (a float compare chain would not).
template <class T>
std::int64_t first_nonfinite_row(const T* x, std::int64_t rows, std::int64_t cols) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr U exponent = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  for (std::int64_t r = 0; r < rows; ++r) {
    U bad = 0;
    for (std::int64_t j = 0; j < cols; ++j) {
      U bits;
      std::memcpy(&bits, x + r * cols + j, sizeof(T));
      bad |= static_cast<U>((bits & exponent) == exponent);
    }
    if (bad != 0) return r;
  }
  return -1;
}

/// A Dense stack ready for inference: the layers' arrays checked once (one
/// float dtype, 2-D weights whose shapes chain, 1-D biases, known
/// activations), kept alive here, and handed to dense_chain_forward on every
/// call with no further parsing. Sequential.predict builds one per set of
/// weights and reuses it.
class DenseChain {
 public:
  explicit DenseChain(const py::sequence& layers) {
    constexpr const char* fn = "DenseChain";
    if (layers.size() == 0) throw py::value_error(std::string(fn) + ": no layers");
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (!py::isinstance<py::tuple>(layers[i]) || py::len(layers[i]) != 4)
        throw py::type_error(std::string(fn) + ": each layer is a tuple (w, b, activation, slope)");
    }
    const py::tuple first = layers[0].cast<py::tuple>();
    if (!py::isinstance<py::array>(first[0]))
      throw py::type_error(std::string(fn) + ": w must be a NumPy array");
    dt_ = float_dtype(py::reinterpret_borrow<py::array>(first[0]), fn, "w");
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const py::tuple spec = layers[i].cast<py::tuple>();
      const py::array w = keep(spec[0], "w", 2);
      if (i > 0 && w.shape(0) != out_) {
        throw py::value_error(std::string(fn) + ": layer " + std::to_string(i) + " takes " +
                              std::to_string(w.shape(0)) + " features, layer " +
                              std::to_string(i - 1) + " gives " + std::to_string(out_));
      }
      if (i == 0) in_ = w.shape(0);
      out_ = w.shape(1);
      const void* bp = nullptr;
      if (!spec[1].is_none()) {
        const py::array b = keep(spec[1], "b", 1);
        if (b.shape(0) != w.shape(1)) throw py::value_error(std::string(fn) + ": b does not match w");
        bp = b.data();
      }
      const Activation act = activation_arg(spec[2], fn);
      const double slope = spec[3].cast<double>();
      if (dt_ == DType::f32) {
        f32_.push_back({static_cast<const float*>(w.data()), static_cast<const float*>(bp),
                        w.shape(0), w.shape(1), act, static_cast<float>(slope)});
      } else {
        f64_.push_back({static_cast<const double*>(w.data()), static_cast<const double*>(bp),
                        w.shape(0), w.shape(1), act, slope});
      }
    }
  }

  /// y = the stack applied to x (N, in_features) of the plan's dtype; with
  /// check_finite, NaN or Inf in x is a ValueError naming the first such row.
  py::array run(const py::object& x_obj, bool check_finite) const {
    constexpr const char* fn = "DenseChain";
    py::array x = to_array(x_obj, fn, "x");
    if (float_dtype(x, fn, "x") != dt_)
      throw py::type_error(std::string(fn) + ": x must have the dtype of the weights");
    require_ndim(x, 2, fn, "x");
    if (x.shape(1) != in_) {
      throw py::value_error(std::string(fn) + ": x has " + std::to_string(x.shape(1)) +
                            " features, the first layer takes " + std::to_string(in_));
    }
    x = c_contiguous(x);
    py::array y = empty_array(dt_, {x.shape(0), out_});
    auto go = [&](const auto& refs) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(refs.front().w)>>;
      if (check_finite) {
        const std::int64_t bad = first_nonfinite_row(cptr<T>(x), x.shape(0), x.shape(1));
        if (bad >= 0)
          throw py::value_error("x contains NaN or Inf (first in row " + std::to_string(bad) + ")");
      }
      const T* xp = cptr<T>(x);
      T* yp = mptr<T>(y);
      py::gil_scoped_release release;
      dense_chain_forward(refs.data(), static_cast<std::int64_t>(refs.size()), xp, x.shape(0), yp);
    };
    if (dt_ == DType::f32) go(f32_);
    else go(f64_);
    return y;
  }

 private:
  py::array keep(const py::handle& h, const char* name, int ndim) {
    constexpr const char* fn = "DenseChain";
    if (!py::isinstance<py::array>(h))
      throw py::type_error(std::string(fn) + ": " + name + " must be a NumPy array");
    py::array a = py::reinterpret_borrow<py::array>(h);
    if (float_dtype(a, fn, name) != dt_)
      throw py::type_error(std::string(fn) + ": every " + name + " must have the first w's dtype");
    require_ndim(a, ndim, fn, name);
    arrays_.push_back(c_contiguous(a));
    return arrays_.back();
  }

  DType dt_ = DType::f32;
  std::int64_t in_ = 0, out_ = 0;
  std::vector<py::array> arrays_;  // owns what the pointers below point into
  // The layers in the plan's dtype (the other vector stays empty).
  std::vector<DenseLayerRef<float>> f32_;
  std::vector<DenseLayerRef<double>> f64_;
};

}  // namespace

void register_dense(py::module_& m) {
  m.def("dense_forward", &dense_forward_py, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("activation") = py::none(), py::arg("negative_slope") = 0.01,
        "(y, z): z = x @ w + b, y = act(z), bias and activation fused into the GEMM; z is y "
        "when the activation is None.");
  m.def("dense_infer", &dense_infer_py, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("activation") = py::none(), py::arg("negative_slope") = 0.01,
        py::arg("out") = py::none(),
        "y = act(x @ w + b) without the pre-activation (inference); into out when given.");
  py::class_<DenseChain>(m, "DenseChain",
                         "Inference through dense layers [(w, b, activation, slope), ...], "
                         "checked once; call it on x.")
      .def(py::init<const py::sequence&>(), py::arg("layers"))
      .def("__call__", &DenseChain::run, py::arg("x"), py::arg("check_finite") = false,
           "y for x (N, in_features); with check_finite, NaN or Inf in x is a ValueError.");
  m.def("dense_backward", &dense_backward_py, py::arg("grad_y"), py::arg("x"), py::arg("w"),
        py::arg("z"), py::arg("activation") = py::none(), py::arg("negative_slope") = 0.01,
        py::arg("need_dx") = true, py::arg("dw_out") = py::none(), py::arg("db_out") = py::none(),
        "(dx, dw, db) from grad_y: dZ = grad_y * act'(z) fused with db = dZ.sum(0); "
        "dw = x.T @ dZ; dx = dZ @ w.T (None unless need_dx); dw and db into dw_out and "
        "db_out when given.");
}

}  // namespace matnet::bind
