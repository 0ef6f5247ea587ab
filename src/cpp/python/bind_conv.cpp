// Bindings: 2-D convolution and pooling (NCHW), forward and backward.
// Geometry arrives resolved by matnet.ops (pairs of ints; padding as
// top, bottom, left, right); this file checks arrays, dtypes and shapes.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/conv.hpp"
#include "matnet/pool.hpp"

namespace matnet::bind {

namespace {

using I = std::int64_t;
using Ints = std::vector<I>;

Ints need(const Ints& v, std::size_t n, const char* fn, const char* name) {
  if (v.size() != n)
    throw py::value_error(std::string(fn) + ": " + name + " must have " + std::to_string(n) +
                          " ints, got " + std::to_string(v.size()));
  return v;
}

std::string shape4(I a, I b, I c, I d) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ", " +
         std::to_string(d) + ")";
}

void require_shape(const py::array& a, const std::vector<I>& want, const char* fn,
                   const char* name, const std::string& why) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
  for (std::size_t i = 0; ok && i < want.size(); ++i) ok = a.shape(i) == want[i];
  if (!ok)
    throw py::value_error(std::string(fn) + ": " + name + " must have shape " +
                          shape4(want[0], want[1], want[2], want[3]) + " (" + why + "), got " +
                          shape_str(a));
}


/// The geometry of x (N, C, H, W) and w (F, C/groups, KH, KW); ValueError
/// naming both shapes when they do not fit.
Conv2dShape conv_shape(const py::array& x, const py::array& w, const Ints& stride,
                       const Ints& padding, const Ints& dilation, I groups, const char* fn) {
  require_ndim(x, 4, fn, "x (N, C, H, W)");
  require_ndim(w, 4, fn, "w (out_channels, in_channels/groups, kh, kw)");
  need(stride, 2, fn, "stride");
  need(padding, 4, fn, "padding");
  need(dilation, 2, fn, "dilation");
  if (groups < 1) throw py::value_error(std::string(fn) + ": groups must be >= 1");
  Conv2dShape s;
  s.batch = x.shape(0);
  s.in_channels = x.shape(1);
  s.height = x.shape(2);
  s.width = x.shape(3);
  s.out_channels = w.shape(0);
  s.kernel_h = w.shape(2);
  s.kernel_w = w.shape(3);
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_top = padding[0];
  s.pad_bottom = padding[1];
  s.pad_left = padding[2];
  s.pad_right = padding[3];
  s.dilation_h = dilation[0];
  s.dilation_w = dilation[1];
  s.groups = groups;
  if (w.shape(1) * groups != s.in_channels || s.out_channels % groups != 0)
    throw py::value_error(std::string(fn) + ": x of shape " + shape_str(x) + " and w of shape " +
                          shape_str(w) + " do not fit with groups=" + std::to_string(groups) +
                          ": need w.shape[1] * groups == x.shape[1] and groups dividing "
                          "w.shape[0]");
  if (s.kernel_h < 1 || s.kernel_w < 1)
    throw py::value_error(std::string(fn) + ": w of shape " + shape_str(w) +
                          " has an empty kernel");
  try {
    conv2d_check_shape(fn, s);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(e.what()) + " (x " + shape_str(x) + ", w " + shape_str(w) +
                          ")");
  }
  return s;
}

py::tuple conv2d_forward_py(const py::object& x_obj, const py::object& w_obj,
                            const py::object& b_obj, const Ints& stride, const Ints& padding,
                            const Ints& dilation, I groups, const py::object& act_obj,
                            double slope, bool keep_z) {
  constexpr const char* fn = "conv2d";
  const Activation act = activation_arg(act_obj, fn);
  py::array x, w, b;
  bool has_b = false;
  const DType dt = xwb_arrays(x_obj, w_obj, b_obj, fn, x, w, b, has_b);
  const Conv2dShape s = conv_shape(x, w, stride, padding, dilation, groups, fn);
  if (has_b && (b.ndim() != 1 || b.shape(0) != s.out_channels))
    throw py::value_error(std::string(fn) + ": b must have shape (" +
                          std::to_string(s.out_channels) + ",) to match w of shape " +
                          shape_str(w) + ", got " + shape_str(b));
  x = c_contiguous(x);
  w = c_contiguous(w);
  if (has_b) b = c_contiguous(b);
  py::array y = empty_array(dt, {s.batch, s.out_channels, s.out_h(), s.out_w()});
  const bool separate_z = keep_z && act != Activation::identity;
  py::array z = separate_z ? empty_array(dt, {s.batch, s.out_channels, s.out_h(), s.out_w()}) : y;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* yp = mptr<T>(y);
    T* zp = separate_z ? mptr<T>(z) : nullptr;
    const T* xp = cptr<T>(x);
    const T* wp = cptr<T>(w);
    const T* bp = has_b ? cptr<T>(b) : nullptr;
    py::gil_scoped_release release;
    conv2d_forward(yp, zp, xp, wp, bp, s, act, static_cast<T>(slope));
  });
  return py::make_tuple(y, keep_z ? py::object(z) : py::object(py::none()));
}

py::tuple conv2d_backward_py(const py::object& gy_obj, const py::object& x_obj,
                             const py::object& w_obj, const py::object& z_obj,
                             const Ints& stride, const Ints& padding, const Ints& dilation,
                             I groups, const py::object& act_obj, double slope, bool need_dx,
                             bool need_db) {
  constexpr const char* fn = "conv2d_backward";
  const Activation act = activation_arg(act_obj, fn);
  py::array gy, x, w, z;
  bool has_z = false;
  const DType dt = backward_arrays(gy_obj, x_obj, w_obj, z_obj, act, fn, "conv2d", gy, x, w, z,
                                   has_z);
  const Conv2dShape s = conv_shape(x, w, stride, padding, dilation, groups, fn);
  const std::vector<I> out{s.batch, s.out_channels, s.out_h(), s.out_w()};
  require_shape(gy, out, fn, "grad_y", "the output of conv2d(x, w)");
  if (has_z) require_shape(z, out, fn, "z", "the output of conv2d(x, w)");
  gy = c_contiguous(gy);
  x = c_contiguous(x);
  w = c_contiguous(w);
  if (has_z) z = c_contiguous(z);
  py::array dw = empty_array(dt, {w.shape(0), w.shape(1), w.shape(2), w.shape(3)});
  py::array db, dx;
  if (need_db) db = empty_array(dt, {s.out_channels});
  if (need_dx) dx = empty_array(dt, {s.batch, s.in_channels, s.height, s.width});
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* dxp = need_dx ? mptr<T>(dx) : nullptr;
    T* dwp = mptr<T>(dw);
    T* dbp = need_db ? mptr<T>(db) : nullptr;
    const T* gp = cptr<T>(gy);
    const T* xp = cptr<T>(x);
    const T* wp = cptr<T>(w);
    const T* zp = has_z ? cptr<T>(z) : nullptr;
    py::gil_scoped_release release;
    conv2d_backward(dxp, dwp, dbp, gp, xp, wp, zp, s, act, static_cast<T>(slope));
  });
  return py::make_tuple(need_dx ? py::object(dx) : py::object(py::none()), dw,
                        need_db ? py::object(db) : py::object(py::none()));
}

/// A new array `shape` written by kernel(out, in) (pointers of the dtype), GIL released.
template <class K>
py::array run_pool(DType dt, const py::array& in, const std::vector<I>& shape, K&& kernel) {
  py::array out = empty_array(dt, std::vector<py::ssize_t>(shape.begin(), shape.end()));
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* o = mptr<T>(out);
    const T* i = cptr<T>(in);
    py::gil_scoped_release release;
    kernel(o, i);
  });
  return out;
}

/// Pooling geometry of an (N, C, H, W) shape.
Pool2dShape pool_shape(const std::vector<I>& xs, const Ints& kernel, const Ints& stride,
                       const Ints& padding, const char* fn) {
  need(kernel, 2, fn, "kernel_size");
  need(stride, 2, fn, "stride");
  need(padding, 2, fn, "padding");
  Pool2dShape s;
  s.batch = xs[0];
  s.channels = xs[1];
  s.height = xs[2];
  s.width = xs[3];
  s.kernel_h = kernel[0];
  s.kernel_w = kernel[1];
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_h = padding[0];
  s.pad_w = padding[1];
  try {
    pool2d_check_shape(fn, s);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(e.what()) + " (input " +
                          shape4(xs[0], xs[1], xs[2], xs[3]) + ")");
  }
  return s;
}

std::vector<I> shape_of(const py::array& x, const char* fn, const char* name) {
  require_ndim(x, 4, fn, name);
  return {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
}

std::vector<I> shape_arg(const Ints& shape, const char* fn) {
  need(shape, 4, fn, "x_shape");
  for (I v : shape)
    if (v < 0) throw py::value_error(std::string(fn) + ": x_shape must be >= 0");
  return shape;
}

py::tuple max_pool2d_py(const py::object& x_obj, const Ints& kernel, const Ints& stride,
                        const Ints& padding) {
  constexpr const char* fn = "max_pool2d";
  py::array x = to_array(x_obj, fn, "x");
  const DType dt = float_dtype(x, fn, "x");
  const Pool2dShape s = pool_shape(shape_of(x, fn, "x (N, C, H, W)"), kernel, stride, padding, fn);
  x = c_contiguous(x);
  const std::vector<py::ssize_t> out{s.batch, s.channels, s.out_h(), s.out_w()};
  py::array_t<I> argmax(out);
  I* ap = argmax.mutable_data();
  py::array y = run_pool(dt, x, {out.begin(), out.end()},
                         [&](auto* yp, const auto* xp) { max_pool2d_forward(yp, ap, xp, s); });
  return py::make_tuple(y, argmax);
}

py::array max_pool2d_backward_py(const py::object& gy_obj, const py::object& argmax_obj,
                                 const Ints& x_shape, const Ints& kernel, const Ints& stride,
                                 const Ints& padding) {
  constexpr const char* fn = "max_pool2d_backward";
  py::array gy = to_array(gy_obj, fn, "grad_y");
  const DType dt = float_dtype(gy, fn, "grad_y");
  const Pool2dShape s = pool_shape(shape_arg(x_shape, fn), kernel, stride, padding, fn);
  const std::vector<I> out{s.batch, s.channels, s.out_h(), s.out_w()};
  require_shape(gy, out, fn, "grad_y", "the output of max_pool2d");
  py::array am = to_array(argmax_obj, fn, "argmax");
  if (!py::isinstance<py::array_t<I>>(am) || am.dtype().kind() != 'i' || am.itemsize() != 8)
    throw py::type_error(std::string(fn) + ": argmax must be the int64 array max_pool2d returned");
  require_shape(am, out, fn, "argmax", "the output of max_pool2d");
  gy = c_contiguous(gy);
  am = c_contiguous(am);
  const I hw = s.height * s.width;
  const I* ap = static_cast<const I*>(am.data());
  for (I i = 0, count = s.batch * s.channels * s.out_h() * s.out_w(); i < count; ++i)
    if (ap[i] < 0 || ap[i] >= hw)
      throw py::value_error(std::string(fn) + ": argmax holds an index outside the input plane");
  return run_pool(dt, gy, {s.batch, s.channels, s.height, s.width},
                  [&](auto* dxp, const auto* gp) { max_pool2d_backward(dxp, gp, ap, s); });
}

py::array avg_pool2d_py(const py::object& x_obj, const Ints& kernel, const Ints& stride,
                        const Ints& padding, bool include_pad) {
  constexpr const char* fn = "avg_pool2d";
  py::array x = to_array(x_obj, fn, "x");
  const DType dt = float_dtype(x, fn, "x");
  const Pool2dShape s = pool_shape(shape_of(x, fn, "x (N, C, H, W)"), kernel, stride, padding, fn);
  x = c_contiguous(x);
  return run_pool(dt, x, {s.batch, s.channels, s.out_h(), s.out_w()},
                  [&](auto* yp, const auto* xp) { avg_pool2d_forward(yp, xp, s, include_pad); });
}

py::array avg_pool2d_backward_py(const py::object& gy_obj, const Ints& x_shape,
                                 const Ints& kernel, const Ints& stride, const Ints& padding,
                                 bool include_pad) {
  constexpr const char* fn = "avg_pool2d_backward";
  py::array gy = to_array(gy_obj, fn, "grad_y");
  const DType dt = float_dtype(gy, fn, "grad_y");
  const Pool2dShape s = pool_shape(shape_arg(x_shape, fn), kernel, stride, padding, fn);
  require_shape(gy, {s.batch, s.channels, s.out_h(), s.out_w()}, fn, "grad_y",
                "the output of avg_pool2d");
  gy = c_contiguous(gy);
  return run_pool(dt, gy, {s.batch, s.channels, s.height, s.width}, [&](auto* dxp, const auto* gp) {
    avg_pool2d_backward(dxp, gp, s, include_pad);
  });
}

}  // namespace

void register_conv(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward_py, py::arg("x"), py::arg("w"), py::arg("b"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("activation") = py::none(), py::arg("negative_slope") = 0.01,
        py::arg("keep_z") = true,
        "(y, z): z = conv2d(x, w) + b (NCHW; padding = (top, bottom, left, right)), "
        "y = act(z); z is y for activation None, None when not keep_z.");
  m.def("conv2d_backward", &conv2d_backward_py, py::arg("grad_y"), py::arg("x"), py::arg("w"),
        py::arg("z"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("activation") = py::none(), py::arg("negative_slope") = 0.01,
        py::arg("need_dx") = true, py::arg("need_db") = true,
        "(dx, dw, db) from grad_y: dZ = grad_y * act'(z); db = dZ summed over n, h, w; "
        "dw, dx by implicit GEMM (None where not needed).");
  m.def("max_pool2d_forward", &max_pool2d_py, py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"),
        "(y, argmax): max over each window of x (N, C, H, W); argmax (int64) indexes the "
        "input plane, for max_pool2d_backward.");
  m.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("grad_y"), py::arg("argmax"),
        py::arg("x_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        "dx (x_shape): grad_y routed to the argmax positions.");
  m.def("avg_pool2d_forward", &avg_pool2d_py, py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("count_include_pad") = true,
        "y: mean over each window of x (N, C, H, W).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("grad_y"), py::arg("x_shape"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("count_include_pad") = true, "dx (x_shape): grad_y spread over each window.");
}

}  // namespace matnet::bind
