// Bindings: batch normalization over (N, C, ...) arrays.
#include <cmath>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/norm.hpp"

namespace matnet::bind {

namespace {

using I = std::int64_t;

/// (N, C, S) of x (N, C, *spatial); ValueError unless x has >= 2 axes.
void ncs(const py::array& x, const char* fn, I& n, I& c, I& s) {
  if (x.ndim() < 2)
    throw py::value_error(std::string(fn) + ": x must have shape (N, C, ...), got " +
                          shape_str(x));
  n = x.shape(0);
  c = x.shape(1);
  s = 1;
  for (py::ssize_t i = 2; i < x.ndim(); ++i) s *= x.shape(i);
}

/// A (C,) vector argument of x's dtype, C-contiguous; an empty array when None.
py::array channel_vec(const py::object& obj, DType dt, I c, const char* fn, const char* name,
                      const py::array& x) {
  if (obj.is_none()) return py::array();
  py::array v = to_array(obj, fn, name);
  if ((float_dtype(v, fn, name) == DType::f32) != (dt == DType::f32))
    throw py::type_error(std::string(fn) + ": " + name + " has dtype " + dtype_str(v) +
                         " but x has " + dtype_str(x));
  if (v.ndim() != 1 || v.shape(0) != c)
    throw py::value_error(std::string(fn) + ": " + name + " must have shape (" +
                          std::to_string(c) + ",) for x of shape " + shape_str(x) + ", got " +
                          shape_str(v));
  return c_contiguous(v);
}

std::vector<py::ssize_t> shape_vec(const py::array& x) {
  return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim());
}

/// (y, mean, invstd); in training the running statistics (when given) are
/// updated in place, so they must be writeable C-contiguous arrays.
py::tuple batchnorm_forward_py(const py::object& x_obj, const py::object& gamma_obj,
                               const py::object& beta_obj, const py::object& rmean_obj,
                               const py::object& rvar_obj, bool training, double momentum,
                               double eps) {
  constexpr const char* fn = "batch_norm";
  py::array x = to_array(x_obj, fn, "x");
  const DType dt = float_dtype(x, fn, "x");
  I n, c, s;
  ncs(x, fn, n, c, s);
  py::array gamma = channel_vec(gamma_obj, dt, c, fn, "gamma", x);
  py::array beta = channel_vec(beta_obj, dt, c, fn, "beta", x);
  const bool has_running = !rmean_obj.is_none() || !rvar_obj.is_none();
  if (has_running && (rmean_obj.is_none() || rvar_obj.is_none()))
    throw py::value_error(std::string(fn) + ": give both running_mean and running_var or neither");
  if (!training && !has_running)
    throw py::value_error(std::string(fn) + ": evaluation needs running_mean and running_var");
  py::array rmean, rvar;
  if (has_running) {
    rmean = channel_vec(rmean_obj, dt, c, fn, "running_mean", x);
    rvar = channel_vec(rvar_obj, dt, c, fn, "running_var", x);
    if (training) {
      for (const py::object* o : {&rmean_obj, &rvar_obj}) {
        if (!py::isinstance<py::array>(*o))
          throw py::type_error(std::string(fn) + ": running_mean and running_var must be "
                                                 "NumPy arrays in training (updated in place)");
        const auto arr = py::reinterpret_borrow<py::array>(*o);
        if (!arr.writeable() ||
            !(arr.flags() & py::array::c_style) || arr.dtype().kind() != 'f' ||
            arr.itemsize() != (dt == DType::f32 ? 4 : 8))
          throw py::value_error(std::string(fn) + ": running_mean and running_var must be "
                                                  "writeable C-contiguous arrays of x's dtype "
                                                  "(they are updated in place)");
      }
      rmean = py::reinterpret_borrow<py::array>(rmean_obj);
      rvar = py::reinterpret_borrow<py::array>(rvar_obj);
    }
  }
  if (training && n * s <= 1)
    throw py::value_error(std::string(fn) + ": expected more than 1 value per channel when "
                                            "training, got input of shape " +
                          shape_str(x) + " (use a batch of 2 or more, or evaluation mode)");
  x = c_contiguous(x);
  py::array y = empty_array(dt, shape_vec(x));
  py::array mean = empty_array(dt, {c}), invstd = empty_array(dt, {c});
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* yp = static_cast<T*>(y.mutable_data());
    T* mp = static_cast<T*>(mean.mutable_data());
    T* ip = static_cast<T*>(invstd.mutable_data());
    const T* xp = static_cast<const T*>(x.data());
    const T* gp = gamma_obj.is_none() ? nullptr : static_cast<const T*>(gamma.data());
    const T* bp = beta_obj.is_none() ? nullptr : static_cast<const T*>(beta.data());
    T* rm = has_running ? static_cast<T*>(rmean.mutable_data()) : nullptr;
    T* rv = has_running ? static_cast<T*>(rvar.mutable_data()) : nullptr;
    py::gil_scoped_release release;
    if (training) {
      batchnorm_forward_train(yp, mp, ip, rm, rv, xp, gp, bp, n, c, s, static_cast<T>(momentum),
                              static_cast<T>(eps));
    } else {
      batchnorm_forward_eval(yp, xp, gp, bp, rm, rv, n, c, s, static_cast<T>(eps));
      for (I ch = 0; ch < c; ++ch) {
        mp[ch] = rm[ch];
        ip[ch] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(rv[ch]) + eps));
      }
    }
  });
  return py::make_tuple(y, mean, invstd);
}

py::tuple batchnorm_backward_py(const py::object& gy_obj, const py::object& x_obj,
                                const py::object& gamma_obj, const py::object& mean_obj,
                                const py::object& invstd_obj, bool batch_stats, bool need_dx) {
  constexpr const char* fn = "batch_norm_backward";
  py::array gy = to_array(gy_obj, fn, "grad_y");
  py::array x = to_array(x_obj, fn, "x");
  const DType dt = common_float_dtype({{"grad_y", &gy}, {"x", &x}}, fn);
  I n, c, s;
  ncs(x, fn, n, c, s);
  if (shape_vec(gy) != shape_vec(x))
    throw py::value_error(std::string(fn) + ": grad_y of shape " + shape_str(gy) +
                          " must have the shape of x, " + shape_str(x));
  py::array gamma = channel_vec(gamma_obj, dt, c, fn, "gamma", x);
  if (mean_obj.is_none() || invstd_obj.is_none())
    throw py::value_error(std::string(fn) + ": mean and invstd (from batch_norm) are required");
  py::array mean = channel_vec(mean_obj, dt, c, fn, "mean", x);
  py::array invstd = channel_vec(invstd_obj, dt, c, fn, "invstd", x);
  gy = c_contiguous(gy);
  x = c_contiguous(x);
  py::array dgamma = empty_array(dt, {c}), dbeta = empty_array(dt, {c}), dx;
  if (need_dx) dx = empty_array(dt, shape_vec(x));
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* dxp = need_dx ? static_cast<T*>(dx.mutable_data()) : nullptr;
    T* dgp = static_cast<T*>(dgamma.mutable_data());
    T* dbp = static_cast<T*>(dbeta.mutable_data());
    const T* gp = static_cast<const T*>(gy.data());
    const T* xp = static_cast<const T*>(x.data());
    const T* gam = gamma_obj.is_none() ? nullptr : static_cast<const T*>(gamma.data());
    const T* mp = static_cast<const T*>(mean.data());
    const T* ip = static_cast<const T*>(invstd.data());
    py::gil_scoped_release release;
    batchnorm_backward(dxp, dgp, dbp, gp, xp, gam, mp, ip, n, c, s, batch_stats);
  });
  return py::make_tuple(need_dx ? py::object(dx) : py::object(py::none()), dgamma, dbeta);
}

}  // namespace

void register_norm(py::module_& m) {
  m.def("batchnorm_forward", &batchnorm_forward_py, py::arg("x"), py::arg("gamma"),
        py::arg("beta"), py::arg("running_mean"), py::arg("running_var"), py::arg("training"),
        py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
        "(y, mean, invstd) of batch normalization over x (N, C, ...) per channel; training "
        "uses the batch statistics and updates running_mean/var in place (PyTorch's rule).");
  m.def("batchnorm_backward", &batchnorm_backward_py, py::arg("grad_y"), py::arg("x"),
        py::arg("gamma"), py::arg("mean"), py::arg("invstd"), py::arg("batch_stats") = true,
        py::arg("need_dx") = true,
        "(dx, dgamma, dbeta) from grad_y, with the mean/invstd the forward returned.");
}

}  // namespace matnet::bind
