// Bindings: matnet.linalg's kernels (matnet/linalg.hpp) on stacks of
// matrices. The Python layer (matnet/linalg.py) broadcasts, converts and
// copies the inputs into fresh C-contiguous (batch, m, n) arrays that the
// kernels overwrite; these functions only check that contract, allocate the
// outputs and release the GIL around the kernel.
#include <string>
#include <tuple>
#include <vector>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/linalg.hpp"

namespace matnet::bind {

namespace {

/// A (batch, m, n) stack the kernel may overwrite (or only reads).
DType stack(const py::array& a, const char* fn, const char* name, bool read_only = false) {
  const DType dt = float_dtype(a, fn, name);
  require_ndim(a, 3, fn, name);
  if (!(a.flags() & py::array::c_style) || !(read_only || a.writeable()) ||
      a.dtype().byteorder() == '>')
    throw py::value_error(std::string(fn) + ": " + name + " must be a " +
                          (read_only ? "" : "writeable, ") + "C-contiguous, native-order array");
  return dt;
}

py::array_t<std::int64_t> new_info(py::ssize_t batch) { return py::array_t<std::int64_t>(batch); }

/// A stack of square matrices: its dtype and order.
DType square_stack(const py::array& a, const char* fn, py::ssize_t& n, bool read_only = false) {
  const DType dt = stack(a, fn, "a", read_only);
  n = a.shape(1);
  if (a.shape(2) != n)
    throw py::value_error(std::string(fn) + ": matrices must be square, got " + shape_str(a));
  return dt;
}

/// A fresh array of the shape when wanted, else None.
py::object maybe_array(DType dt, bool want, const std::vector<py::ssize_t>& shape) {
  return want ? py::object(empty_array(dt, shape)) : py::object(py::none());
}

/// The data of an array (or null for None), taken while the GIL is held.
void* data(const py::object& o) {
  return o.is_none() ? nullptr : o.cast<py::array>().mutable_data();
}

/// The data of an array the kernel only reads (it may be read-only).
const void* cdata(const py::array& a) { return a.data(); }

/// f(T{}) for the dtype with the GIL released; f casts its data pointers
/// (taken before) with as<T>.
template <class F>
void released(DType dt, F&& f) {
  py::gil_scoped_release release;
  if (dt == DType::f32) f(float{});
  else f(double{});
}

template <class T>
T* as(void* p) {
  return static_cast<T*>(p);
}

template <class T>
T* as(const void* p) {
  return static_cast<T*>(p);
}

py::object lu_factor_impl(py::array a) {
  py::ssize_t n;
  const DType dt = square_stack(a, "lu_factor", n);
  const py::ssize_t batch = a.shape(0);
  py::array_t<std::int64_t> piv({batch, n});
  auto info = new_info(batch);
  void* ap = data(a);
  std::int64_t *pp = piv.mutable_data(), *ip = info.mutable_data();
  released(dt, [&](auto t) { matnet::linalg::lu_factor(batch, n, as<decltype(t)>(ap), pp, ip); });
  return py::make_tuple(piv, info);
}

py::object solve_impl(py::array a, py::array b) {
  py::ssize_t n;
  const DType dt = square_stack(a, "solve", n, true);
  if (stack(b, "solve", "b") != dt) throw py::type_error("solve: a and b must share a dtype");
  const py::ssize_t batch = a.shape(0), k = b.shape(2);
  if (b.shape(0) != batch || b.shape(1) != n)
    throw py::value_error("solve: shapes " + shape_str(a) + " and " + shape_str(b) + " do not fit");
  auto info = new_info(batch);
  const void* ap = cdata(a);
  void* bp = data(b);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) {
    using T = decltype(t);
    matnet::linalg::solve(batch, n, k, as<const T>(ap), as<T>(bp), ip);
  });
  return std::move(info);
}

py::object det_impl(py::array a) {
  py::ssize_t n;
  const DType dt = square_stack(a, "det", n, true);
  const py::ssize_t batch = a.shape(0);
  py::array d = empty_array(dt, {batch}), s = empty_array(dt, {batch}), l = empty_array(dt, {batch});
  auto info = new_info(batch);
  const void* ap = cdata(a);
  void *dp = data(d), *sp = data(s), *lp = data(l);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) {
    using T = decltype(t);
    matnet::linalg::det(batch, n, as<const T>(ap), as<T>(dp), as<T>(sp), as<T>(lp), ip);
  });
  return py::make_tuple(d, s, l, info);
}

py::object inv_impl(py::array a) {
  py::ssize_t n;
  const DType dt = square_stack(a, "inv", n, true);
  const py::ssize_t batch = a.shape(0);
  py::array out = empty_array(dt, {batch, n, n});
  auto info = new_info(batch);
  const void* ap = cdata(a);
  void* op = data(out);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) {
    using T = decltype(t);
    matnet::linalg::inv(batch, n, as<const T>(ap), as<T>(op), ip);
  });
  return py::make_tuple(out, info);
}

py::object cholesky_impl(py::array a) {
  py::ssize_t n;
  const DType dt = square_stack(a, "cholesky", n);
  const py::ssize_t batch = a.shape(0);
  auto info = new_info(batch);
  void* ap = data(a);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) { matnet::linalg::cholesky(batch, n, as<decltype(t)>(ap), ip); });
  return std::move(info);
}

py::object qr_impl(py::array a, std::int64_t q_cols) {
  const DType dt = stack(a, "qr", "a");
  const py::ssize_t batch = a.shape(0), m = a.shape(1), n = a.shape(2);
  const py::ssize_t k = std::min(m, n);
  if (q_cols >= 0 && (q_cols < k || q_cols > m))
    throw py::value_error("qr: q_cols must be in [min(m, n), m]");
  py::object q = maybe_array(dt, q_cols >= 0, {batch, m, static_cast<py::ssize_t>(q_cols)});
  auto info = new_info(batch);
  void *ap = data(a), *qp = data(q);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) {
    using T = decltype(t);
    matnet::linalg::qr(batch, m, n, as<T>(ap), as<T>(qp), q_cols, ip);
  });
  return py::make_tuple(q, info);
}

py::object eigh_impl(py::array a, bool vectors) {
  py::ssize_t n;
  const DType dt = square_stack(a, "eigh", n, true);
  const py::ssize_t batch = a.shape(0);
  py::array w = empty_array(dt, {batch, n});
  py::object v = maybe_array(dt, vectors, {batch, n, n});
  auto info = new_info(batch);
  const void* ap = cdata(a);
  void *wp = data(w), *vp = data(v);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) {
    using T = decltype(t);
    matnet::linalg::eigh(batch, n, as<const T>(ap), as<T>(wp), as<T>(vp), ip);
  });
  return py::make_tuple(w, v, info);
}

py::object svd_impl(py::array a, bool compute_uv, bool full) {
  const DType dt = stack(a, "svd", "a");
  const py::ssize_t batch = a.shape(0), m = a.shape(1), n = a.shape(2);
  const py::ssize_t k = std::min(m, n);
  py::array s = empty_array(dt, {batch, k});
  py::object u = maybe_array(dt, compute_uv, {batch, m, full ? m : k});
  py::object vt = maybe_array(dt, compute_uv, {batch, full ? n : k, n});
  auto info = new_info(batch);
  void *ap = data(a), *sp = data(s), *up = data(u), *vp = data(vt);
  std::int64_t* ip = info.mutable_data();
  released(dt, [&](auto t) {
    using T = decltype(t);
    matnet::linalg::svd(batch, m, n, as<T>(ap), as<T>(sp), as<T>(up), as<T>(vp), full, ip);
  });
  return py::make_tuple(s, u, vt, info);
}

}  // namespace

void register_linalg(py::module_& m) {
  const char* contract =
      " The input stack (batch, m, n) must be a writeable C-contiguous float32/float64 array;"
      " it is overwritten. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 failure at step k.";
  m.def("linalg_lu_factor", &lu_factor_impl, py::arg("a"),
        (std::string("LU with partial pivoting in place; returns (piv, info).") + contract).c_str());
  const char* read_only =
      " a (batch, n, n) must be a C-contiguous float32/float64 array; it is only read."
      " info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 zero pivot at step k.";
  m.def("linalg_solve", &solve_impl, py::arg("a"), py::arg("b"),
        (std::string("Solves a x = b in place (b (batch, n, k), writeable and C-contiguous, becomes "
                     "x); returns info.") + read_only).c_str());
  m.def("linalg_det", &det_impl, py::arg("a"),
        (std::string("Determinants via LU; returns (det, sign, logabsdet, info).") + read_only).c_str());
  m.def("linalg_inv", &inv_impl, py::arg("a"),
        (std::string("Inverses via LU; returns (inv, info).") + read_only).c_str());
  m.def("linalg_cholesky", &cholesky_impl, py::arg("a"),
        (std::string("Lower Cholesky factor in place; returns info.") + contract).c_str());
  m.def("linalg_qr", &qr_impl, py::arg("a"), py::arg("q_cols"),
        (std::string("Householder QR: a becomes R; returns (Q with q_cols columns or None if "
                     "q_cols < 0, info).") + contract).c_str());
  m.def("linalg_eigh", &eigh_impl, py::arg("a"), py::arg("vectors"),
        (std::string("Symmetric eigensolver (lower triangle read); returns (w, v or None, info).") +
         read_only).c_str());
  m.def("linalg_svd", &svd_impl, py::arg("a"), py::arg("compute_uv"), py::arg("full_matrices"),
        (std::string("SVD; returns (s, u, vt, info), u and vt None without compute_uv.") +
         contract).c_str());
}

}  // namespace matnet::bind
