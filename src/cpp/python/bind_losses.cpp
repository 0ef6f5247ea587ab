// Bindings: losses, each returning (loss: float, grad: array).
#include <string>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/losses.hpp"

namespace matnet::bind {

namespace {

/// labels as a C-contiguous int64 array; TypeError for non-integer dtypes.
py::array int_labels(const py::object& obj, const char* fn) {
  py::array a = to_array(obj, fn, "labels");
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(fn) + ": labels must be an integer array, got dtype " +
                         dtype_str(a) + "; convert class indices with .astype(np.int64)");
  }
  if (kind == 'u' && a.dtype().itemsize() == 8 && a.size() > 0) {
    // uint64 values above int64's range would wrap on conversion.
    auto np = py::module_::import("numpy");
    if (np.attr("any")(np.attr("greater")(a, py::int_(INT64_MAX))).cast<bool>())
      throw py::value_error(std::string(fn) + ": a label is larger than any class index");
  }
  return c_contiguous(a, "int64");
}

py::tuple cross_entropy_py(const py::object& logits_obj, const py::object& labels_obj,
                           double smoothing) {
  constexpr const char* fn = "cross_entropy";
  py::array x = to_array(logits_obj, fn, "logits");
  const DType dt = float_dtype(x, fn, "logits");
  require_ndim(x, 2, fn, "logits");
  py::array labels = int_labels(labels_obj, fn);
  if (labels.ndim() != 1 || labels.shape(0) != x.shape(0)) {
    throw py::value_error(std::string(fn) + ": labels must have shape (" +
                          std::to_string(x.shape(0)) + ",) to match logits of shape " +
                          shape_str(x) + ", got " + shape_str(labels));
  }
  x = c_contiguous(x);
  const std::int64_t n = x.shape(0), c = x.shape(1);
  py::array grad = empty_array(dt, {n, c});
  const auto* lp = static_cast<const std::int64_t*>(labels.data());
  double loss;
  if (dt == DType::f32) {
    auto* g = static_cast<float*>(grad.mutable_data());
    const auto* xp = static_cast<const float*>(x.data());
    py::gil_scoped_release release;
    loss = cross_entropy(g, xp, lp, n, c, smoothing);
  } else {
    auto* g = static_cast<double*>(grad.mutable_data());
    const auto* xp = static_cast<const double*>(x.data());
    py::gil_scoped_release release;
    loss = cross_entropy(g, xp, lp, n, c, smoothing);
  }
  return py::make_tuple(loss, grad);
}

/// mse and binary_cross_entropy: two same-shape float arrays of any shape.
template <class F32, class F64>
py::tuple pairwise_loss(const char* fn, const char* an, const char* bn, const py::object& a_obj,
                        const py::object& b_obj, F32 f32, F64 f64) {
  py::array a = to_array(a_obj, fn, an);
  py::array b = to_array(b_obj, fn, bn);
  const DType dt = common_float_dtype({{an, &a}, {bn, &b}}, fn);
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == b.shape(d);
  if (!same) {
    throw py::value_error(std::string(fn) + ": " + an + " and " + bn +
                          " must have the same shape, got " + an + " " + shape_str(a) + " and " +
                          bn + " " + shape_str(b));
  }
  a = c_contiguous(a);
  b = c_contiguous(b);
  py::array grad = empty_array(dt, std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  const std::int64_t n = a.size();
  double loss;
  if (dt == DType::f32) {
    auto* g = static_cast<float*>(grad.mutable_data());
    const auto* ap = static_cast<const float*>(a.data());
    const auto* bp = static_cast<const float*>(b.data());
    py::gil_scoped_release release;
    loss = f32(g, ap, bp, n);
  } else {
    auto* g = static_cast<double*>(grad.mutable_data());
    const auto* ap = static_cast<const double*>(a.data());
    const auto* bp = static_cast<const double*>(b.data());
    py::gil_scoped_release release;
    loss = f64(g, ap, bp, n);
  }
  return py::make_tuple(loss, grad);
}

}  // namespace

void register_losses(py::module_& m) {
  m.def("cross_entropy", &cross_entropy_py, py::arg("logits"), py::arg("labels"),
        py::arg("label_smoothing") = 0.0,
        "(loss, grad): softmax cross-entropy of (batch, classes) logits with integer labels, "
        "mean over the batch; grad = d loss / d logits.");
  m.def(
      "mse",
      [](const py::object& pred, const py::object& target) {
        return pairwise_loss(
            "mse", "pred", "target", pred, target,
            [](float* g, const float* a, const float* b, std::int64_t n) {
              return mse(g, a, b, n);
            },
            [](double* g, const double* a, const double* b, std::int64_t n) {
              return mse(g, a, b, n);
            });
      },
      py::arg("pred"), py::arg("target"),
      "(loss, grad): mean squared error over all elements; grad = d loss / d pred.");
  m.def(
      "binary_cross_entropy",
      [](const py::object& logits, const py::object& targets) {
        return pairwise_loss(
            "binary_cross_entropy", "logits", "targets", logits, targets,
            [](float* g, const float* a, const float* b, std::int64_t n) {
              return binary_cross_entropy(g, a, b, n);
            },
            [](double* g, const double* a, const double* b, std::int64_t n) {
              return binary_cross_entropy(g, a, b, n);
            });
      },
      py::arg("logits"), py::arg("targets"),
      "(loss, grad): binary cross-entropy with logits, mean over all elements.");
}

}  // namespace matnet::bind
