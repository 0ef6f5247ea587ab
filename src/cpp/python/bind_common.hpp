// Shared argument checks and conversions for the pybind11 bindings.
// Everything a user can get wrong becomes a Python TypeError or ValueError here,
// before any kernel sees a pointer.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "matnet/activations.hpp"

namespace matnet::bind {

namespace py = pybind11;

enum class DType { f32, f64 };

/// "(3, 4)"-style text for error messages.
std::string shape_str(const py::array& arr);

/// Name of the array's dtype ("float32", "int64", ...).
std::string dtype_str(const py::array& arr);

/// Turns any array-like into an ndarray (lists included); raises TypeError for
/// objects NumPy cannot turn into a numeric array.
py::array to_array(const py::handle& obj, const char* fn, const char* name);

/// float32 or float64, else TypeError naming the function, argument and dtype.
DType float_dtype(const py::array& arr, const char* fn, const char* name);

/// All arrays share one floating dtype, else TypeError naming every dtype.
DType common_float_dtype(std::initializer_list<std::pair<const char*, const py::array*>> args,
                         const char* fn);

/// ndim must equal `ndim`, else ValueError naming the shape.
void require_ndim(const py::array& arr, int ndim, const char* fn, const char* name);

/// A 2-D operand as a row-major matrix with unit column stride: either a view
/// of the array (possibly marked transposed, for Fortran order) or a C-ordered
/// copy when the strides allow neither. `keep` holds whatever owns the data.
struct MatrixView {
  py::array keep;
  const void* data;
  std::int64_t rows, cols;  // of the stored matrix (after a possible transpose)
  std::int64_t ld;
  bool transposed;  // true when the stored matrix is the transpose of the array
};
MatrixView matrix_view(const py::array& arr);

/// The last two axes of arr (ndim >= 2) as a row-major matrix with unit
/// column stride, in place: true, with its leading dimension and whether the
/// stored matrix is the transpose of those axes; false when the strides,
/// alignment or byte order allow neither layout. Zero-size: always true.
bool matrix_layout(const py::array& arr, std::int64_t& ld, bool& transposed);

/// C-contiguous, aligned, native-byte-order version of arr (arr itself when
/// it already is one, else a copy), of the given NumPy dtype name when one is
/// given (floats: float32 or float64 by itemsize).
py::array c_contiguous(const py::array& arr, const char* dtype = nullptr);

/// Checks a user-provided output array: dtype, exact shape, C-contiguous,
/// writeable; raises ValueError saying which requirement failed.
void check_out(const py::array& out, DType dt, const std::vector<py::ssize_t>& shape,
               const char* fn);

/// True if the memory ranges spanned by the two arrays overlap.
bool may_overlap(const py::array& x, const py::array& y);

/// A fresh uninitialised C-contiguous array of the dtype.
py::array empty_array(DType dt, const std::vector<py::ssize_t>& shape);

/// An activation argument: None (identity) or a name (activation_from_name);
/// TypeError for another type, ValueError for an unknown name.
Activation activation_arg(const py::object& act, const char* fn);

/// x, w and b (None: left empty, has_b false) as arrays of one float
/// dtype, returned; TypeError naming the dtypes otherwise.
DType xwb_arrays(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                 const char* fn, py::array& x, py::array& w, py::array& b, bool& has_b);

/// The arrays of a fused layer's backward: grad_y, x, w and z (None: left
/// empty, has_z false; ValueError when act needs it, naming `producer`, the
/// forward that returns z), all of one float dtype, returned.
DType backward_arrays(const py::object& gy_obj, const py::object& x_obj, const py::object& w_obj,
                      const py::object& z_obj, Activation act, const char* fn,
                      const char* producer, py::array& gy, py::array& x, py::array& w,
                      py::array& z, bool& has_z);

/// The data of an array the caller checked to hold T.
template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* mptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

/// f(float{}) or f(double{}) for the dtype: the kernel call of a binding.
template <class F>
void dispatch(DType dt, F&& f) {
  if (dt == DType::f32) f(float{});
  else f(double{});
}

}  // namespace matnet::bind
