// Bindings: in-place optimizer updates. Parameter and state arrays must be
// C-contiguous and writeable (they are updated where they are, never copied);
// the gradient may have any layout.
#include <string>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/optim.hpp"

namespace matnet::bind {

namespace {

struct Operands {
  DType dt;
  py::array param, grad;
  std::vector<py::array> states;  // same order as requested (placeholder for None)
  std::vector<bool> present;      // false where the caller passed None
};

/// A writeable C-contiguous state array with the shape of param; ValueError
/// naming the requirement it misses.
void require_inplace(const py::array& a, const py::array& param, const char* fn,
                     const char* name) {
  bool same = a.ndim() == param.ndim();
  for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == param.shape(d);
  if (!same) {
    throw py::value_error(std::string(fn) + ": " + name + " must have the shape of param " +
                          shape_str(param) + ", got " + shape_str(a));
  }
  if (!(a.flags() & py::array::c_style) || a.dtype().byteorder() == '>' ||
      reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() != 0) {
    throw py::value_error(std::string(fn) + ": " + name +
                          " must be C-contiguous and aligned (it is updated in place)");
  }
  if (!a.writeable()) throw py::value_error(std::string(fn) + ": " + name + " is read-only");
}

Operands operands(const char* fn, const py::object& param_obj, const py::object& grad_obj,
                  std::initializer_list<std::pair<const char*, const py::object*>> states) {
  Operands ops;
  if (!py::isinstance<py::array>(param_obj))
    throw py::type_error(std::string(fn) + ": param must be a NumPy array (updated in place)");
  ops.param = py::reinterpret_borrow<py::array>(param_obj);
  ops.grad = to_array(grad_obj, fn, "grad");
  std::vector<std::pair<const char*, const py::array*>> typed{{"param", &ops.param},
                                                              {"grad", &ops.grad}};
  ops.states.reserve(states.size());
  for (const auto& [name, obj] : states) {
    ops.present.push_back(!obj->is_none());
    if (obj->is_none()) {
      ops.states.emplace_back();
      continue;
    }
    if (!py::isinstance<py::array>(*obj))
      throw py::type_error(std::string(fn) + ": " + name + " must be a NumPy array or None");
    ops.states.push_back(py::reinterpret_borrow<py::array>(*obj));
  }
  // dtype check over everything present (TypeError naming every dtype).
  std::size_t i = 0;
  for (const auto& [name, obj] : states) {
    if (!obj->is_none()) typed.emplace_back(name, &ops.states[i]);
    ++i;
  }
  ops.dt = float_dtype(*typed[0].second, fn, typed[0].first);
  bool mixed = false;
  for (const auto& [name, arr] : typed) mixed = float_dtype(*arr, fn, name) != ops.dt || mixed;
  if (mixed) {  // names built only now: str(dtype) runs Python code
    std::string names;
    for (const auto& [name, arr] : typed)
      names += (names.empty() ? "" : ", ") + std::string(name) + "=" + dtype_str(*arr);
    throw py::type_error(std::string(fn) + ": arguments must share one dtype, got " + names);
  }
  require_inplace(ops.param, ops.param, fn, "param");
  bool same = ops.grad.ndim() == ops.param.ndim();
  for (py::ssize_t d = 0; same && d < ops.grad.ndim(); ++d)
    same = ops.grad.shape(d) == ops.param.shape(d);
  if (!same) {
    throw py::value_error(std::string(fn) + ": grad must have the shape of param " +
                          shape_str(ops.param) + ", got " + shape_str(ops.grad));
  }
  i = 0;
  for (const auto& [name, obj] : states) {
    if (!obj->is_none()) {
      require_inplace(ops.states[i], ops.param, fn, name);
      if (may_overlap(ops.states[i], ops.param))
        throw py::value_error(std::string(fn) + ": " + name + " shares memory with param");
      for (std::size_t j = 0; j < i; ++j)
        if (ops.present[j] && may_overlap(ops.states[i], ops.states[j]))
          throw py::value_error(std::string(fn) + ": two state arrays share memory");
    }
    ++i;
  }
  // grad is only read: copy it if it overlaps something written or is strided.
  bool grad_overlaps = may_overlap(ops.grad, ops.param);
  for (std::size_t j = 0; j < ops.states.size(); ++j)
    grad_overlaps = grad_overlaps || (ops.present[j] && may_overlap(ops.grad, ops.states[j]));
  if (grad_overlaps) {
    ops.grad = py::module_::import("numpy").attr("array")(ops.grad, py::arg("copy") = true)
                   .cast<py::array>();
  }
  ops.grad = c_contiguous(ops.grad);
  return ops;
}

template <class T>
T* state_data(Operands& o, std::size_t i) {
  return o.present[i] ? static_cast<T*>(o.states[i].mutable_data()) : nullptr;
}

void sgd_py(const py::object& param, const py::object& grad, const py::object& velocity,
            double lr, double momentum, double dampening, bool nesterov, double weight_decay,
            bool first_step, bool check_only) {
  constexpr const char* fn = "sgd_update";
  Operands o = operands(fn, param, grad, {{"velocity", &velocity}});
  if (momentum != 0.0 && !o.present[0])
    throw py::value_error(std::string(fn) + ": momentum != 0 needs a velocity array");
  SgdOptions opt;
  opt.lr = lr;
  opt.momentum = momentum;
  opt.dampening = dampening;
  opt.nesterov = nesterov;
  opt.weight_decay = weight_decay;
  // check_only: the kernel still checks the options (n = 0 writes nothing).
  const std::int64_t n = check_only ? 0 : o.param.size();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(o.param.mutable_data());
    T* v = momentum != 0.0 ? state_data<T>(o, 0) : nullptr;
    const T* g = static_cast<const T*>(o.grad.data());
    py::gil_scoped_release release;
    sgd_update(p, v, g, n, opt, first_step);
  };
  if (o.dt == DType::f32) run(float{});
  else run(double{});
}

void adam_py(const py::object& param, const py::object& grad, const py::object& m,
             const py::object& v, std::int64_t step, double lr, double beta1, double beta2,
             double eps, double weight_decay, bool decoupled, bool check_only) {
  constexpr const char* fn = "adam_update";
  if (m.is_none() || v.is_none())
    throw py::value_error(std::string(fn) + ": m and v (the moment estimates) are required");
  Operands o = operands(fn, param, grad, {{"m", &m}, {"v", &v}});
  AdamOptions opt;
  opt.lr = lr;
  opt.beta1 = beta1;
  opt.beta2 = beta2;
  opt.eps = eps;
  opt.weight_decay = weight_decay;
  opt.decoupled = decoupled;
  // check_only: the kernel still checks the options (n = 0 writes nothing).
  const std::int64_t n = check_only ? 0 : o.param.size();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(o.param.mutable_data());
    T* mp = state_data<T>(o, 0);
    T* vp = state_data<T>(o, 1);
    const T* g = static_cast<const T*>(o.grad.data());
    py::gil_scoped_release release;
    adam_update(p, mp, vp, g, n, step, opt);
  };
  if (o.dt == DType::f32) run(float{});
  else run(double{});
}

void rmsprop_py(const py::object& param, const py::object& grad, const py::object& square_avg,
                double lr, double alpha, double eps, double weight_decay, double momentum,
                const py::object& momentum_buffer, bool centered, const py::object& grad_avg,
                bool check_only) {
  constexpr const char* fn = "rmsprop_update";
  if (square_avg.is_none())
    throw py::value_error(std::string(fn) + ": square_avg is required");
  Operands o = operands(fn, param, grad,
                        {{"square_avg", &square_avg},
                         {"momentum_buffer", &momentum_buffer},
                         {"grad_avg", &grad_avg}});
  if (momentum > 0.0 && !o.present[1])
    throw py::value_error(std::string(fn) + ": momentum > 0 needs a momentum_buffer array");
  if (centered && !o.present[2])
    throw py::value_error(std::string(fn) + ": centered=True needs a grad_avg array");
  RmspropOptions opt;
  opt.lr = lr;
  opt.alpha = alpha;
  opt.eps = eps;
  opt.weight_decay = weight_decay;
  opt.momentum = momentum;
  opt.centered = centered;
  // check_only: the kernel still checks the options (n = 0 writes nothing).
  const std::int64_t n = check_only ? 0 : o.param.size();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(o.param.mutable_data());
    T* sq = state_data<T>(o, 0);
    T* buf = momentum > 0.0 ? state_data<T>(o, 1) : nullptr;
    T* ga = centered ? state_data<T>(o, 2) : nullptr;
    const T* g = static_cast<const T*>(o.grad.data());
    py::gil_scoped_release release;
    rmsprop_update(p, sq, buf, ga, g, n, opt);
  };
  if (o.dt == DType::f32) run(float{});
  else run(double{});
}

}  // namespace

void register_optim(py::module_& m) {
  m.def("sgd_update", &sgd_py, py::arg("param"), py::arg("grad"), py::arg("velocity"),
        py::kw_only(), py::arg("lr"), py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
        py::arg("nesterov") = false, py::arg("weight_decay") = 0.0,
        py::arg("first_step") = false, py::arg("check_only") = false,
        "In-place SGD step (torch.optim.SGD formulas); check_only: validate, write nothing.");
  m.def("adam_update", &adam_py, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"),
        py::kw_only(), py::arg("step"), py::arg("lr"), py::arg("beta1") = 0.9,
        py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
        py::arg("decoupled") = false, py::arg("check_only") = false,
        "In-place Adam step (AdamW when decoupled), torch.optim formulas, 1-based step.");
  m.def("rmsprop_update", &rmsprop_py, py::arg("param"), py::arg("grad"), py::arg("square_avg"),
        py::kw_only(), py::arg("lr"), py::arg("alpha") = 0.99, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("momentum") = 0.0,
        py::arg("momentum_buffer") = py::none(), py::arg("centered") = false,
        py::arg("grad_avg") = py::none(), py::arg("check_only") = false,
        "In-place RMSprop step (torch.optim.RMSprop formulas).");
}

}  // namespace matnet::bind
