// Bindings: matmul and gemm on 2-D NumPy arrays.
#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/gemm.hpp"

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

py::array gemm_impl(const char* fn, const py::handle& a_obj, const py::handle& b_obj,
                    const py::handle& c_obj, bool c_is_out, double alpha, double beta,
                    bool trans_a, bool trans_b) {
  py::array a = to_array(a_obj, fn, "a");
  py::array b = to_array(b_obj, fn, "b");
  const DType dt = common_float_dtype({{"a", &a}, {"b", &b}}, fn);
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

}  // namespace

void register_gemm(py::module_& m) {
  m.def(
      "matmul",
      [](const py::object& a, const py::object& b, bool trans_a, bool trans_b,
         const py::object& out) {
        return gemm_impl("matmul", a, b, out, true, 1.0, 0.0, trans_a, trans_b);
      },
      py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
      py::arg("trans_b") = false, py::arg("out") = py::none(),
      "op(a) @ op(b) for 2-D float32/float64 arrays; writes into out when given.");
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
