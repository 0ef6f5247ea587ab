// Bindings: element-wise activations and softmax / log_softmax, forward and
// backward, on arrays of any shape.
#include <string>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/activations.hpp"

namespace matnet::bind {

namespace {

/// The activation named `kind`; ValueError listing the valid names otherwise.
Activation parse_activation(const std::string& kind, const char* fn) {
  try {
    return activation_from_name(kind);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(fn) + ": " + e.what());
  }
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

void require_same_shape(const py::array& a, const char* an, const py::array& b, const char* bn,
                        const std::string& fn) {
  if (shape_of(a) != shape_of(b)) {
    throw py::value_error(fn + ": " + an + " and " + bn + " must have the same shape, got " +
                          an + " " + shape_str(a) + " and " + bn + " " + shape_str(b));
  }
}

template <class T>
void run_forward(py::array& y, const py::array& x, Activation act, double slope) {
  T* yp = static_cast<T*>(y.mutable_data());
  const T* xp = static_cast<const T*>(x.data());
  const std::int64_t n = x.size();
  py::gil_scoped_release release;
  activation_forward(yp, xp, n, act, static_cast<T>(slope));
}

template <class T>
void run_backward(py::array& dx, const py::array& g, const py::array& x, Activation act,
                  double slope) {
  T* dp = static_cast<T*>(dx.mutable_data());
  const T* gp = static_cast<const T*>(g.data());
  const T* xp = static_cast<const T*>(x.data());
  const std::int64_t n = x.size();
  py::gil_scoped_release release;
  activation_backward(dp, gp, xp, n, act, static_cast<T>(slope));
}

py::array activation_py(const py::object& x_obj, const std::string& kind, double slope) {
  const std::string fn = kind;
  const Activation act = parse_activation(kind, fn.c_str());
  py::array x = c_contiguous(to_array(x_obj, fn.c_str(), "x"));
  const DType dt = float_dtype(x, fn.c_str(), "x");
  py::array y = empty_array(dt, shape_of(x));
  if (dt == DType::f32) run_forward<float>(y, x, act, slope);
  else run_forward<double>(y, x, act, slope);
  return y;
}

py::array activation_backward_py(const py::object& g_obj, const py::object& x_obj,
                                 const std::string& kind, double slope) {
  const std::string fn = kind + "_backward";
  const Activation act = parse_activation(kind, fn.c_str());
  py::array g = to_array(g_obj, fn.c_str(), "grad");
  py::array x = to_array(x_obj, fn.c_str(), "x");
  const DType dt = common_float_dtype({{"grad", &g}, {"x", &x}}, fn.c_str());
  require_same_shape(g, "grad", x, "x", fn);
  g = c_contiguous(g);
  x = c_contiguous(x);
  py::array dx = empty_array(dt, shape_of(x));
  if (dt == DType::f32) run_backward<float>(dx, g, x, act, slope);
  else run_backward<double>(dx, g, x, act, slope);
  return dx;
}

struct AxisSplit {
  std::int64_t outer = 1, len = 1, inner = 1;
};

AxisSplit split_axis(const py::array& x, int axis, const std::string& fn) {
  const int nd = static_cast<int>(x.ndim());
  if (nd == 0) throw py::value_error(fn + ": x must have at least 1 dimension, got a scalar");
  if (axis < -nd || axis >= nd) {
    throw py::value_error(fn + ": axis " + std::to_string(axis) + " is out of range for shape " +
                          shape_str(x));
  }
  if (axis < 0) axis += nd;
  AxisSplit s;
  for (int d = 0; d < nd; ++d) {
    if (d < axis) s.outer *= x.shape(d);
    else if (d == axis) s.len = x.shape(d);
    else s.inner *= x.shape(d);
  }
  return s;
}

template <class T>
void run_softmax(py::array& y, const py::array& x, const AxisSplit& s, bool log) {
  T* yp = static_cast<T*>(y.mutable_data());
  const T* xp = static_cast<const T*>(x.data());
  py::gil_scoped_release release;
  if (log) log_softmax_forward(yp, xp, s.outer, s.len, s.inner);
  else softmax_forward(yp, xp, s.outer, s.len, s.inner);
}

template <class T>
void run_softmax_backward(py::array& dx, const py::array& g, const py::array& y,
                          const AxisSplit& s, bool log) {
  T* dp = static_cast<T*>(dx.mutable_data());
  const T* gp = static_cast<const T*>(g.data());
  const T* yp = static_cast<const T*>(y.data());
  py::gil_scoped_release release;
  if (log) log_softmax_backward(dp, gp, yp, s.outer, s.len, s.inner);
  else softmax_backward(dp, gp, yp, s.outer, s.len, s.inner);
}

py::array softmax_py(const py::object& x_obj, int axis, bool log) {
  const std::string fn = log ? "log_softmax" : "softmax";
  py::array x = c_contiguous(to_array(x_obj, fn.c_str(), "x"));
  const DType dt = float_dtype(x, fn.c_str(), "x");
  const AxisSplit s = split_axis(x, axis, fn);
  py::array y = empty_array(dt, shape_of(x));
  if (dt == DType::f32) run_softmax<float>(y, x, s, log);
  else run_softmax<double>(y, x, s, log);
  return y;
}

py::array softmax_backward_py(const py::object& g_obj, const py::object& y_obj, int axis,
                              bool log) {
  const std::string fn = log ? "log_softmax_backward" : "softmax_backward";
  py::array g = to_array(g_obj, fn.c_str(), "grad");
  py::array y = to_array(y_obj, fn.c_str(), "y");
  const DType dt = common_float_dtype({{"grad", &g}, {"y", &y}}, fn.c_str());
  require_same_shape(g, "grad", y, "y", fn);
  g = c_contiguous(g);
  y = c_contiguous(y);
  const AxisSplit s = split_axis(y, axis, fn);
  py::array dx = empty_array(dt, shape_of(y));
  if (dt == DType::f32) run_softmax_backward<float>(dx, g, y, s, log);
  else run_softmax_backward<double>(dx, g, y, s, log);
  return dx;
}

}  // namespace

void register_ops(py::module_& m) {
  m.def("activation", &activation_py, py::arg("x"), py::arg("kind"),
        py::arg("negative_slope") = 0.01,
        "act(x) element-wise for kind in relu, leaky_relu, sigmoid, tanh, gelu, gelu_tanh, "
        "silu, identity; a new array of x's shape and dtype.");
  m.def("activation_backward", &activation_backward_py, py::arg("grad"), py::arg("x"),
        py::arg("kind"), py::arg("negative_slope") = 0.01,
        "grad * act'(x), x the forward input; a new array.");
  m.def("softmax", &softmax_py, py::arg("x"), py::arg("axis") = -1, py::arg("log") = false,
        "softmax (or log_softmax when log) of x along axis; a new array.");
  m.def("softmax_backward", &softmax_backward_py, py::arg("grad"), py::arg("y"),
        py::arg("axis") = -1, py::arg("log") = false,
        "Backward of softmax (or log_softmax) from its forward output y; a new array.");
  m.def("activation_names", []() {
    py::list names;
    for (int a = 0; a <= static_cast<int>(Activation::silu); ++a)
      names.append(activation_name(static_cast<Activation>(a)));
    return names;
  }, "Names accepted by activation() and dense_forward().");
}

}  // namespace matnet::bind
