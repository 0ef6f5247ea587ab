// Bindings: matmul and gemm on 2-D NumPy arrays.
#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/gemm.hpp"
#include "matnet/gemv.hpp"

#include <vector>

namespace matnet::bind {

namespace {

struct Operand {
  MatrixView view;
  bool trans;  // transpose flag to pass to the kernel
};

/// op(X) with the user's flag folded into the storage layout.
Operand operand(const py::array& x, bool user_trans) {
  MatrixView v = matrix_view(x);
  return {v, user_trans != v.transposed};
}

/// A fresh C-ordered copy (for inputs that overlap the output).
py::array c_contiguous_copy(const py::array& x) {
  return py::module_::import("numpy").attr("array")(x, py::arg("copy") = true).cast<py::array>();
}

template <class T>
void run_gemm(const Operand& a, const Operand& b, std::int64_t m, std::int64_t n, std::int64_t k,
              double alpha, double beta, py::array& c) {
  T* cp = static_cast<T*>(c.mutable_data());
  const T* ap = static_cast<const T*>(a.view.data);
  const T* bp = static_cast<const T*>(b.view.data);
  py::gil_scoped_release release;
  matnet::gemm(a.trans, b.trans, m, n, k, static_cast<T>(alpha), ap, a.view.ld, bp, b.view.ld,
               static_cast<T>(beta), cp, std::max<std::int64_t>(n, 1));
}

py::array matmul_nd(py::array a, py::array b, DType dt, bool trans_a, bool trans_b,
                    const py::handle& out_obj);

py::array gemm_impl(const char* fn, const py::handle& a_obj, const py::handle& b_obj,
                    const py::handle& c_obj, bool c_is_out, double alpha, double beta,
                    bool trans_a, bool trans_b) {
  py::array a = to_array(a_obj, fn, "a");
  py::array b = to_array(b_obj, fn, "b");
  const DType dt = common_float_dtype({{"a", &a}, {"b", &b}}, fn);
  if (c_is_out && (a.ndim() != 2 || b.ndim() != 2)) {
    return matmul_nd(a, b, dt, trans_a, trans_b, c_obj);
  }
  require_ndim(a, 2, fn, "a");
  require_ndim(b, 2, fn, "b");
  const std::int64_t m = trans_a ? a.shape(1) : a.shape(0);
  const std::int64_t ka = trans_a ? a.shape(0) : a.shape(1);
  const std::int64_t kb = trans_b ? b.shape(1) : b.shape(0);
  const std::int64_t n = trans_b ? b.shape(0) : b.shape(1);
  if (ka != kb) {
    throw py::value_error(std::string(fn) + ": inner dimensions differ: op(a) is (" +
                          std::to_string(m) + ", " + std::to_string(ka) + ") from a of shape " +
                          shape_str(a) + (trans_a ? " transposed" : "") + ", op(b) is (" +
                          std::to_string(kb) + ", " + std::to_string(n) + ") from b of shape " +
                          shape_str(b) + (trans_b ? " transposed" : ""));
  }
  py::array c;
  if (c_obj.is_none()) {
    if (!c_is_out && beta != 0.0) {
      throw py::value_error(std::string(fn) + ": beta=" + std::to_string(beta) +
                            " needs a c to scale; pass c or leave beta at 0");
    }
    c = empty_array(dt, {m, n});
    beta = 0.0;
  } else {
    if (!py::isinstance<py::array>(c_obj)) {
      throw py::type_error(std::string(fn) + ": " + (c_is_out ? "out" : "c") +
                           " must be a NumPy array");
    }
    c = py::reinterpret_borrow<py::array>(c_obj);
    check_out(c, dt, {m, n}, fn);
    // The kernel must never read an operand it is writing: copy overlapping inputs.
    if (may_overlap(c, a)) a = c_contiguous_copy(a);
    if (may_overlap(c, b)) b = c_contiguous_copy(b);
  }
  const Operand oa = operand(a, trans_a);
  const Operand ob = operand(b, trans_b);
  if (dt == DType::f32) {
    run_gemm<float>(oa, ob, m, n, ka, alpha, beta, c);
  } else {
    run_gemm<double>(oa, ob, m, n, ka, alpha, beta, c);
  }
  return c;
}

/// A 1-D operand as (pointer to its lowest-addressed element, increment),
/// BLAS style; copies when NumPy's strides are not whole elements, the
/// byte order is foreign, or the stride is 0 (broadcast views).
struct VectorView {
  py::array keep;
  void* lowest;
  std::int64_t inc;
};

VectorView vector_view(const py::array& x) {
  const std::int64_t item = x.itemsize(), len = x.shape(0);
  const std::int64_t stride = x.strides(0);
  const bool usable = stride % item == 0 && stride != 0 && x.dtype().byteorder() != '>' &&
                      reinterpret_cast<std::uintptr_t>(x.data()) % item == 0;
  if (len <= 1 || !usable) {
    py::array c = c_contiguous(x);
    return {c, const_cast<void*>(c.data()), 1};
  }
  const std::int64_t inc = stride / item;
  char* base = static_cast<char*>(const_cast<void*>(x.data()));
  if (inc < 0) base += (len - 1) * stride;
  return {x, base, inc};
}

py::array matvec_impl(const py::handle& a_obj, const py::handle& x_obj, bool trans,
                      const py::handle& out_obj) {
  constexpr const char* fn = "matvec";
  py::array a = to_array(a_obj, fn, "a");
  py::array x = to_array(x_obj, fn, "x");
  const DType dt = common_float_dtype({{"a", &a}, {"x", &x}}, fn);
  require_ndim(a, 2, fn, "a");
  require_ndim(x, 1, fn, "x");
  const std::int64_t m = a.shape(0), n = a.shape(1);
  const std::int64_t xlen = trans ? m : n, ylen = trans ? n : m;
  if (x.shape(0) != xlen) {
    throw py::value_error(std::string(fn) + ": a of shape " + shape_str(a) +
                          (trans ? " (transposed)" : "") + " and x of shape " + shape_str(x) +
                          " do not fit: x must have " + std::to_string(xlen) + " elements");
  }
  py::array y;
  if (out_obj.is_none()) {
    y = empty_array(dt, {ylen});
  } else {
    if (!py::isinstance<py::array>(out_obj)) throw py::type_error(std::string(fn) + ": out must be a NumPy array");
    y = py::reinterpret_borrow<py::array>(out_obj);
    if (y.ndim() != 1 || y.shape(0) != ylen) {
      throw py::value_error(std::string(fn) + ": out must have shape (" + std::to_string(ylen) +
                            ",), got " + shape_str(y));
    }
    const bool same_dtype = y.dtype().kind() == 'f' &&
                            y.dtype().itemsize() == (dt == DType::f32 ? 4 : 8);
    if (!same_dtype)
      throw py::type_error(std::string(fn) + ": out must have the dtype of a and x, got " + dtype_str(y));
    if (!y.writeable()) throw py::value_error(std::string(fn) + ": out is read-only");
    if (ylen > 1 && (y.strides(0) == 0 || y.strides(0) % y.itemsize() != 0 ||
                     y.dtype().byteorder() == '>' ||
                     reinterpret_cast<std::uintptr_t>(y.data()) % y.itemsize() != 0)) {
      throw py::value_error(std::string(fn) + ": out must be an aligned, native-order view "
                            "whose stride is a non-zero whole number of elements");
    }
    if (may_overlap(y, a)) a = c_contiguous_copy(a);
    if (may_overlap(y, x)) x = c_contiguous_copy(x);
  }
  const MatrixView av = matrix_view(a);
  const VectorView xv = vector_view(x);
  VectorView yv{y, y.mutable_data(), 1};
  if (ylen > 1) {
    yv.inc = y.strides(0) / y.itemsize();
    if (yv.inc < 0) yv.lowest = static_cast<char*>(y.mutable_data()) + (ylen - 1) * y.strides(0);
  }
  // A Fortran-ordered a is stored as its transpose.
  const bool t = trans != av.transposed;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* ap = static_cast<const T*>(av.data);
    const T* xp = static_cast<const T*>(xv.lowest);
    T* yp = static_cast<T*>(yv.lowest);
    py::gil_scoped_release release;
    matnet::gemv(t, av.rows, av.cols, T(1), ap, av.ld, xp, xv.inc, T(0), yp, yv.inc);
  };
  if (ylen > 0) {
    if (dt == DType::f32) run(float{});
    else run(double{});
  }
  return y;
}

py::array reshaped(const py::array& x, const std::vector<py::ssize_t>& shape) {
  py::tuple t(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
  return x.attr("reshape")(t).cast<py::array>();
}

/// np.matmul semantics for operands that are not both 2-D: 1-D operands
/// promoted and their axis dropped from the result, leading dimensions
/// broadcast, one product per broadcast index (matnet::gemm_batched).
py::array matmul_nd(py::array a, py::array b, DType dt, bool trans_a, bool trans_b,
                    const py::handle& out_obj) {
  constexpr const char* fn = "matmul";
  if (a.ndim() == 0 || b.ndim() == 0) {
    throw py::value_error(std::string(fn) + ": operands must have at least 1 dimension, got a of "
                          "shape " + shape_str(a) + " and b of shape " + shape_str(b));
  }
  const bool drop_m = a.ndim() == 1, drop_n = b.ndim() == 1;
  if ((drop_m && trans_a) || (drop_n && trans_b)) {
    throw py::value_error(std::string(fn) + ": trans_a/trans_b need an operand of at least 2 "
                          "dimensions, got a of shape " + shape_str(a) + " and b of shape " + shape_str(b));
  }
  const py::array a0 = a, b0 = b;
  if (drop_m) a = reshaped(a, {1, a.shape(0)});
  if (drop_n) b = reshaped(b, {b.shape(0), 1});
  const py::ssize_t da = a.ndim(), db = b.ndim();
  const std::int64_t m = trans_a ? a.shape(da - 1) : a.shape(da - 2);
  const std::int64_t ka = trans_a ? a.shape(da - 2) : a.shape(da - 1);
  const std::int64_t kb = trans_b ? b.shape(db - 1) : b.shape(db - 2);
  const std::int64_t n = trans_b ? b.shape(db - 2) : b.shape(db - 1);
  if (ka != kb) {
    throw py::value_error(std::string(fn) + ": inner dimensions differ: a of shape " + shape_str(a0) +
                          (trans_a ? " transposed" : "") + " and b of shape " + shape_str(b0) +
                          (trans_b ? " transposed" : "") + " give k = " + std::to_string(ka) +
                          " and " + std::to_string(kb));
  }
  // Broadcast the leading dimensions, right-aligned.
  const py::ssize_t lead = std::max(da, db) - 2;
  std::vector<py::ssize_t> batch_shape(static_cast<std::size_t>(lead));
  for (py::ssize_t i = 0; i < lead; ++i) {
    const py::ssize_t ia = i - (lead - (da - 2)), ib = i - (lead - (db - 2));
    const py::ssize_t sa = ia >= 0 ? a.shape(ia) : 1, sb = ib >= 0 ? b.shape(ib) : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      throw py::value_error(std::string(fn) + ": the batch dimensions of a of shape " +
                            shape_str(a0) + " and b of shape " + shape_str(b0) +
                            " do not broadcast");
    }
    batch_shape[static_cast<std::size_t>(i)] = sa == 1 ? sb : sa;
  }
  std::vector<py::ssize_t> full = batch_shape, final_shape = batch_shape;
  full.push_back(m);
  full.push_back(n);
  if (!drop_m) final_shape.push_back(m);
  if (!drop_n) final_shape.push_back(n);
  py::array out;
  if (out_obj.is_none()) {
    out = empty_array(dt, final_shape);
  } else {
    if (!py::isinstance<py::array>(out_obj)) throw py::type_error(std::string(fn) + ": out must be a NumPy array");
    out = py::reinterpret_borrow<py::array>(out_obj);
    check_out(out, dt, final_shape, fn);
    if (may_overlap(out, a)) a = c_contiguous_copy(a);
    if (may_overlap(out, b)) b = c_contiguous_copy(b);
  }
  std::int64_t batch = 1;
  for (py::ssize_t s : batch_shape) batch *= s;
  if (batch == 0 || m == 0 || n == 0) return out;
  py::array c = reshaped(out, full);
  std::int64_t lda = 1, ldb = 1;
  bool ta = false, tb = false;
  // Other strides (and foreign byte order): one C-ordered native copy.
  if (!matrix_layout(a, lda, ta)) {
    a = c_contiguous(a);
    matrix_layout(a, lda, ta);
  }
  if (!matrix_layout(b, ldb, tb)) {
    b = c_contiguous(b);
    matrix_layout(b, ldb, tb);
  }
  // One pointer per broadcast index: a size-1 (or missing) dimension of an
  // operand contributes stride 0.
  const std::int64_t item = a.itemsize();
  std::vector<const char*> pa(static_cast<std::size_t>(batch)), pb(pa.size());
  std::vector<char*> pc(pa.size());
  // Each operand's byte stride per broadcast dimension (0 where it has size
  // 1 or is missing), read from the arrays once: per product the offsets
  // then move by one stride (the arrays' accessors cost ~40 ns a product,
  // as much as an 8 x 8 x 8 product itself).
  const std::size_t nl = static_cast<std::size_t>(lead);
  std::vector<std::int64_t> step_a(nl, 0), step_b(nl, 0), idx(nl, 0);
  for (py::ssize_t i = 0; i < lead; ++i) {
    const py::ssize_t ia = i - (lead - (da - 2)), ib = i - (lead - (db - 2));
    if (ia >= 0 && a.shape(ia) != 1) step_a[static_cast<std::size_t>(i)] = a.strides(ia);
    if (ib >= 0 && b.shape(ib) != 1) step_b[static_cast<std::size_t>(i)] = b.strides(ib);
  }
  const char* abase = static_cast<const char*>(a.data());
  const char* bbase = static_cast<const char*>(b.data());
  char* cbase = static_cast<char*>(c.mutable_data());
  const std::int64_t c_mat = m * n * item;
  std::int64_t oa = 0, ob = 0;
  for (std::int64_t t = 0; t < batch; ++t) {
    pa[static_cast<std::size_t>(t)] = abase + oa;
    pb[static_cast<std::size_t>(t)] = bbase + ob;
    pc[static_cast<std::size_t>(t)] = cbase + t * c_mat;
    for (std::size_t i = nl; i-- > 0;) {  // next multi-index, last fastest
      oa += step_a[i];
      ob += step_b[i];
      if (++idx[i] < batch_shape[i]) break;
      oa -= idx[i] * step_a[i];
      ob -= idx[i] * step_b[i];
      idx[i] = 0;
    }
  }
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* const* ap = reinterpret_cast<const T* const*>(pa.data());
    const T* const* bp = reinterpret_cast<const T* const*>(pb.data());
    T* const* cp = reinterpret_cast<T* const*>(pc.data());
    py::gil_scoped_release release;
    matnet::gemm_batched(trans_a != ta, trans_b != tb, m, n, ka, T(1), ap, lda, bp, ldb, T(0), cp,
                         n, batch);
  };
  if (dt == DType::f32) run(float{});
  else run(double{});
  return out;
}

}  // namespace

void register_gemm(py::module_& m) {
  m.def(
      "matmul",
      [](const py::object& a, const py::object& b, bool trans_a, bool trans_b,
         const py::object& out) {
        return gemm_impl("matmul", a, b, out, true, 1.0, 0.0, trans_a, trans_b);
      },
      // Positional-or-keyword (ops.matmul is the keyword-only public face):
      // pybind11 parses keywords at ~0.35 us a call, a third of a small
      // product's overhead.
      py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
      py::arg("out") = py::none(),
      "op(a) @ op(b) for float32/float64 arrays with np.matmul semantics (N-D batches "
      "broadcast, 1-D operands); writes into out when given.");
  m.def(
      "matvec",
      [](const py::object& a, const py::object& x, bool trans, const py::object& out) {
        return matvec_impl(a, x, trans, out);
      },
      py::arg("a"), py::arg("x"), py::arg("trans") = false, py::arg("out") = py::none(),
      "op(a) @ x for a 2-D a and a 1-D x (GEMV).");
  m.def(
      "gemm",
      [](const py::object& a, const py::object& b, const py::object& c, double alpha, double beta,
         bool trans_a, bool trans_b) {
        return gemm_impl("gemm", a, b, c, false, alpha, beta, trans_a, trans_b);
      },
      py::arg("a"), py::arg("b"), py::arg("c") = py::none(), py::kw_only(),
      py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("trans_a") = false,
      py::arg("trans_b") = false,
      "alpha * op(a) @ op(b) + beta * c; updates c in place when given and returns it.");
  m.def(
      "_gemm_blocking",
      [](const std::string& dtype) {
        if (dtype != "float32" && dtype != "float64") {
          throw py::value_error("_gemm_blocking: dtype must be 'float32' or 'float64', got '" +
                                dtype + "'");
        }
        const GemmBlocking s = matnet::gemm_blocking(dtype == "float64");
        py::dict d;
        d["mr"] = s.mr;
        d["nr"] = s.nr;
        d["mc"] = s.mc;
        d["kc"] = s.kc;
        d["nc"] = s.nc;
        return d;
      },
      py::arg("dtype"),
      "Block sizes (mr, nr, mc, kc, nc) of the active GEMM kernel; for tests and tuning.");
}

}  // namespace matnet::bind
