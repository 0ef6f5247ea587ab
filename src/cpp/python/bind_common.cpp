#include "bind_common.hpp"

#include <algorithm>
#include <sstream>

namespace matnet::bind {

std::string shape_str(const py::array& arr) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
    if (i) os << ", ";
    os << arr.shape(i);
  }
  if (arr.ndim() == 1) os << ",";
  os << ")";
  return os.str();
}

namespace {

/// NumPy's ALIGNED flag: data pointer and every stride are multiples of the itemsize.
bool is_aligned(const py::array& arr) {
  const auto item = static_cast<std::intptr_t>(arr.itemsize());
  if (reinterpret_cast<std::uintptr_t>(arr.data()) % item != 0) return false;
  for (py::ssize_t d = 0; d < arr.ndim(); ++d)
    if (arr.strides(d) % item != 0) return false;
  return true;
}

}  // namespace

std::string dtype_str(const py::array& arr) { return py::str(arr.dtype()).cast<std::string>(); }

py::array to_array(const py::handle& obj, const char* fn, const char* name) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  try {
    return py::module_::import("numpy").attr("asarray")(obj).cast<py::array>();
  } catch (py::error_already_set& e) {
    throw py::type_error(std::string(fn) + ": " + name + " must be a NumPy array or array-like, got " +
                         py::str(py::type::of(obj)).cast<std::string>() + " (" + e.what() + ")");
  }
}

DType float_dtype(const py::array& arr, const char* fn, const char* name) {
  if (arr.dtype().is(py::dtype::of<float>())) return DType::f32;
  if (arr.dtype().is(py::dtype::of<double>())) return DType::f64;
  // dtype equality (not identity) covers byte-swapped and equivalent dtypes.
  const auto kind = arr.dtype().kind();
  const auto size = arr.dtype().itemsize();
  if (kind == 'f' && size == 4) return DType::f32;
  if (kind == 'f' && size == 8) return DType::f64;
  throw py::type_error(std::string(fn) + ": " + name + " must be float32 or float64, got " +
                       dtype_str(arr) + "; convert it with .astype(np.float32) first");
}

DType common_float_dtype(std::initializer_list<std::pair<const char*, const py::array*>> args,
                         const char* fn) {
  bool first = true;
  DType dt = DType::f32;
  bool mixed = false;
  for (const auto& [name, arr] : args) {
    const DType d = float_dtype(*arr, fn, name);
    if (!first && d != dt) mixed = true;
    if (first) dt = d;
    first = false;
  }
  if (mixed) {
    // Names are built only on error: str(dtype) runs Python code (~5 us each).
    std::string names;
    for (const auto& [name, arr] : args) {
      if (!names.empty()) names += ", ";
      names += std::string(name) + "=" + dtype_str(*arr);
    }
    throw py::type_error(std::string(fn) + ": arguments must share one dtype, got " + names +
                         "; convert them with .astype() to float32 or float64");
  }
  return dt;
}

void require_ndim(const py::array& arr, int ndim, const char* fn, const char* name) {
  if (arr.ndim() != ndim) {
    throw py::value_error(std::string(fn) + ": " + name + " must be " + std::to_string(ndim) +
                          "-D, got shape " + shape_str(arr));
  }
}

py::array c_contiguous(const py::array& arr, const char* dtype) {
  const bool ok = (arr.flags() & py::array::c_style) && is_aligned(arr) &&
                  arr.dtype().byteorder() != '>' &&
                  (dtype == nullptr || arr.dtype().is(py::dtype(dtype)));
  if (ok) return arr;
  // A fresh array (NumPy aligns its allocations): np.ascontiguousarray would
  // return a C-contiguous but misaligned array unchanged.
  if (dtype == nullptr && arr.dtype().kind() == 'f')
    dtype = arr.dtype().itemsize() == 4 ? "float32" : "float64";
  auto np = py::module_::import("numpy");
  py::object want = dtype != nullptr ? py::object(py::dtype(dtype)) : py::object(arr.dtype());
  return np.attr("array")(arr, py::arg("dtype") = want, py::arg("order") = "C",
                          py::arg("copy") = true)
      .cast<py::array>();
}

bool matrix_layout(const py::array& x, std::int64_t& ld, bool& transposed) {
  const py::ssize_t d = x.ndim();
  const std::int64_t rows = x.shape(d - 2), cols = x.shape(d - 1), item = x.itemsize();
  if (rows == 0 || cols == 0) {  // never read: any valid leading dimension
    ld = std::max<std::int64_t>(cols, 1);
    transposed = false;
    return true;
  }
  if (!is_aligned(x) || x.dtype().byteorder() == '>') return false;
  const std::int64_t s0 = x.strides(d - 2) / item, s1 = x.strides(d - 1) / item;
  // Row-major with unit column stride (a single row may have any stride).
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= cols)) {
    ld = rows == 1 ? cols : s0;
    transposed = false;
    return true;
  }
  // Column-major: the transpose is row-major.
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= rows)) {
    ld = cols == 1 ? rows : s1;
    transposed = true;
    return true;
  }
  return false;
}

MatrixView matrix_view(const py::array& arr) {
  const std::int64_t rows = arr.shape(0), cols = arr.shape(1);
  std::int64_t ld = 1;
  bool transposed = false;
  if (matrix_layout(arr, ld, transposed)) {
    return transposed ? MatrixView{arr, arr.data(), cols, rows, ld, true}
                      : MatrixView{arr, arr.data(), rows, cols, ld, false};
  }
  py::array copy = c_contiguous(arr);
  return {copy, copy.data(), rows, cols, std::max<std::int64_t>(cols, 1), false};
}

void check_out(const py::array& out, DType dt, const std::vector<py::ssize_t>& shape,
               const char* fn) {
  const bool dt_ok = (dt == DType::f32 && out.dtype().is(py::dtype::of<float>())) ||
                     (dt == DType::f64 && out.dtype().is(py::dtype::of<double>()));
  if (!dt_ok) {
    throw py::type_error(std::string(fn) + ": out must have dtype " +
                          (dt == DType::f32 ? "float32" : "float64") + ", got " + dtype_str(out));
  }
  bool shape_ok = out.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; shape_ok && i < shape.size(); ++i) shape_ok = out.shape(i) == shape[i];
  if (!shape_ok) {
    // Built only on error: this check runs on every call with out=.
    std::string want = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    want += shape.size() == 1 ? ",)" : ")";
    throw py::value_error(std::string(fn) + ": out must have shape " + want + ", got " +
                          shape_str(out));
  }
  if (!(out.flags() & py::array::c_style) || !is_aligned(out)) {
    throw py::value_error(std::string(fn) + ": out must be C-contiguous and aligned");
  }
  if (!out.writeable()) throw py::value_error(std::string(fn) + ": out is read-only");
}

bool may_overlap(const py::array& x, const py::array& y) {
  auto span = [](const py::array& a, std::uintptr_t& lo, std::uintptr_t& hi) {
    lo = reinterpret_cast<std::uintptr_t>(a.data());
    hi = lo;
    if (a.size() == 0) return false;
    std::intptr_t low = 0, high = 0;
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
      const std::intptr_t ext = static_cast<std::intptr_t>(a.shape(d) - 1) * a.strides(d);
      if (ext < 0) low += ext; else high += ext;
    }
    lo = static_cast<std::uintptr_t>(static_cast<std::intptr_t>(lo) + low);
    hi = static_cast<std::uintptr_t>(static_cast<std::intptr_t>(hi) + high + a.itemsize());
    return true;
  };
  std::uintptr_t xl, xh, yl, yh;
  if (!span(x, xl, xh) || !span(y, yl, yh)) return false;
  return xl < yh && yl < xh;
}

py::array empty_array(DType dt, const std::vector<py::ssize_t>& shape) {
  if (dt == DType::f32) return py::array_t<float>(shape);
  return py::array_t<double>(shape);
}

Activation activation_arg(const py::object& act, const char* fn) {
  if (act.is_none()) return Activation::identity;
  if (!py::isinstance<py::str>(act)) {
    throw py::type_error(std::string(fn) + ": activation must be None or a str, got " +
                         py::str(py::type::of(act)).cast<std::string>());
  }
  try {
    return activation_from_name(act.cast<std::string>());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(fn) + ": " + e.what());
  }
}

DType xwb_arrays(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                 const char* fn, py::array& x, py::array& w, py::array& b, bool& has_b) {
  x = to_array(x_obj, fn, "x");
  w = to_array(w_obj, fn, "w");
  has_b = !b_obj.is_none();
  if (!has_b) return common_float_dtype({{"x", &x}, {"w", &w}}, fn);
  b = to_array(b_obj, fn, "b");
  return common_float_dtype({{"x", &x}, {"w", &w}, {"b", &b}}, fn);
}

DType backward_arrays(const py::object& gy_obj, const py::object& x_obj, const py::object& w_obj,
                      const py::object& z_obj, Activation act, const char* fn,
                      const char* producer, py::array& gy, py::array& x, py::array& w,
                      py::array& z, bool& has_z) {
  gy = to_array(gy_obj, fn, "grad_y");
  x = to_array(x_obj, fn, "x");
  w = to_array(w_obj, fn, "w");
  has_z = !z_obj.is_none();
  if (!has_z && act != Activation::identity) {
    throw py::value_error(std::string(fn) + ": z (the pre-activation from " + producer +
                          ") is required for activation '" + activation_name(act) + "'");
  }
  if (!has_z) return common_float_dtype({{"grad_y", &gy}, {"x", &x}, {"w", &w}}, fn);
  z = to_array(z_obj, fn, "z");
  return common_float_dtype({{"grad_y", &gy}, {"x", &x}, {"w", &w}, {"z", &z}}, fn);
}

}  // namespace matnet::bind
