// Bindings: layer normalization over the last axis, forward and backward
// (matnet/layer_norm.hpp), on arrays of any shape (..., C).
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/layer_norm.hpp"

namespace matnet::bind {

namespace {

using Shape = std::vector<py::ssize_t>;

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

/// rows x cols view of x (..., C); ValueError for a 0-d x.
void rows_cols(const py::array& x, const char* fn, std::int64_t& rows, std::int64_t& cols) {
  if (x.ndim() < 1)
    throw py::value_error(std::string(fn) + ": x must have at least 1 dimension, got a scalar");
  cols = x.shape(x.ndim() - 1);
  rows = cols > 0 ? x.size() / cols : 0;
  if (cols == 0) {
    rows = 1;
    for (int i = 0; i + 1 < x.ndim(); ++i) rows *= x.shape(i);
  }
}

/// An optional (C,) parameter: None, or an array of x's dtype and shape (C,).
py::object param(const py::object& obj, DType dt, std::int64_t cols, const char* fn,
                 const char* name) {
  if (obj.is_none()) return obj;
  py::array a = to_array(obj, fn, name);
  if (float_dtype(a, fn, name) != dt)
    throw py::type_error(std::string(fn) + ": " + name + " must have the dtype of x, got " +
                         dtype_str(a));
  if (a.ndim() != 1 || a.shape(0) != cols)
    throw py::value_error(std::string(fn) + ": " + name + " must have shape (" +
                          std::to_string(cols) + ",) to match the last axis of x, got " +
                          shape_str(a));
  return c_contiguous(a);
}

template <class T>
const T* ptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<const T*>(o.cast<py::array>().data());
}

template <class T>
py::tuple run_forward(const py::array& x, const py::object& w, const py::object& b,
                      std::int64_t rows, std::int64_t cols, double eps, DType dt) {
  Shape stat(x.shape(), x.shape() + x.ndim() - 1);
  py::array y = empty_array(dt, shape_of(x)), mean = empty_array(dt, stat),
            rstd = empty_array(dt, stat);
  T* yp = static_cast<T*>(y.mutable_data());
  T* mp = static_cast<T*>(mean.mutable_data());
  T* rp = static_cast<T*>(rstd.mutable_data());
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = ptr<T>(w);
  const T* bp = ptr<T>(b);
  {
    py::gil_scoped_release release;
    layer_norm_forward(yp, mp, rp, xp, wp, bp, rows, cols, static_cast<T>(eps));
  }
  return py::make_tuple(y, mean, rstd);
}

py::tuple layer_norm_py(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                        double eps) {
  const char* fn = "layer_norm";
  py::array x = c_contiguous(to_array(x_obj, fn, "x"));
  const DType dt = float_dtype(x, fn, "x");
  std::int64_t rows = 0, cols = 0;
  rows_cols(x, fn, rows, cols);
  if (!(eps >= 0.0)) throw py::value_error(std::string(fn) + ": eps must be >= 0, got " + std::to_string(eps));
  if (cols == 0 && rows > 0)
    throw py::value_error(std::string(fn) + ": the last axis of x must not be empty, got shape " + shape_str(x));
  const py::object w = param(w_obj, dt, cols, fn, "weight"), b = param(b_obj, dt, cols, fn, "bias");
  if (dt == DType::f32) return run_forward<float>(x, w, b, rows, cols, eps, dt);
  return run_forward<double>(x, w, b, rows, cols, eps, dt);
}

template <class T>
py::tuple run_backward(const py::array& gy, const py::array& x, const py::object& w,
                       const py::array& mean, const py::array& rstd, std::int64_t rows,
                       std::int64_t cols, DType dt) {
  py::array dx = empty_array(dt, shape_of(x)), dw = empty_array(dt, {cols}),
            db = empty_array(dt, {cols});
  T* dxp = static_cast<T*>(dx.mutable_data());
  T* dwp = static_cast<T*>(dw.mutable_data());
  T* dbp = static_cast<T*>(db.mutable_data());
  const T* gp = static_cast<const T*>(gy.data());
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = ptr<T>(w);
  const T* mp = static_cast<const T*>(mean.data());
  const T* rp = static_cast<const T*>(rstd.data());
  {
    py::gil_scoped_release release;
    layer_norm_backward(dxp, dwp, dbp, gp, xp, wp, mp, rp, rows, cols);
  }
  return py::make_tuple(dx, dw, db);
}

py::tuple layer_norm_backward_py(const py::object& gy_obj, const py::object& x_obj,
                                 const py::object& w_obj, const py::object& mean_obj,
                                 const py::object& rstd_obj) {
  const char* fn = "layer_norm_backward";
  py::array gy = to_array(gy_obj, fn, "grad_y"), x = to_array(x_obj, fn, "x"),
            mean = to_array(mean_obj, fn, "mean"), rstd = to_array(rstd_obj, fn, "rstd");
  const DType dt = common_float_dtype(
      {{"grad_y", &gy}, {"x", &x}, {"mean", &mean}, {"rstd", &rstd}}, fn);
  std::int64_t rows = 0, cols = 0;
  rows_cols(x, fn, rows, cols);
  if (cols == 0 && rows > 0)
    throw py::value_error(std::string(fn) + ": the last axis of x must not be empty, got shape " + shape_str(x));
  if (shape_of(gy) != shape_of(x))
    throw py::value_error(std::string(fn) + ": grad_y and x must have the same shape, got grad_y " +
                          shape_str(gy) + " and x " + shape_str(x));
  const Shape stat(x.shape(), x.shape() + x.ndim() - 1);
  for (const py::array* a : {&mean, &rstd}) {
    if (shape_of(*a) != stat)
      throw py::value_error(std::string(fn) + ": mean and rstd must have shape x.shape[:-1], got x " +
                            shape_str(x) + ", mean " + shape_str(mean) + " and rstd " + shape_str(rstd));
  }
  const py::object w = param(w_obj, dt, cols, fn, "weight");
  gy = c_contiguous(gy);
  x = c_contiguous(x);
  mean = c_contiguous(mean);
  rstd = c_contiguous(rstd);
  if (dt == DType::f32) return run_backward<float>(gy, x, w, mean, rstd, rows, cols, dt);
  return run_backward<double>(gy, x, w, mean, rstd, rows, cols, dt);
}

}  // namespace

void register_layer_norm(py::module_& m) {
  m.def("layer_norm", &layer_norm_py, py::arg("x"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
        "(y, mean, rstd): layer normalization of x over its last axis, y = xhat * weight + bias.");
  m.def("layer_norm_backward", &layer_norm_backward_py, py::arg("grad_y"), py::arg("x"),
        py::arg("weight"), py::arg("mean"), py::arg("rstd"),
        "(dx, dweight, dbias) of layer_norm from the forward input and statistics.");
}

}  // namespace matnet::bind
