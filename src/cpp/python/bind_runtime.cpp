// Bindings: thread control and CPU / kernel information.
#include <omp.h>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/gemm.hpp"
#include "matnet/runtime.hpp"

namespace matnet::bind {

void register_runtime(py::module_& m) {
  m.def("get_num_threads", &matnet::get_num_threads,
        "Number of OpenMP threads matnet's kernels use (honours OMP_NUM_THREADS).");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
        matnet::set_num_threads(n);
      },
      py::arg("n"), "Sets the number of OpenMP threads matnet's kernels use.");
  m.def(
      "cpu_info",
      []() {
        py::dict d;
        d["isa"] = isa_name(active_isa());
        d["threads"] = get_num_threads();
        d["max_cpus"] = omp_get_num_procs();
        py::dict sup;
        sup["generic"] = cpu_supports(Isa::generic);
        sup["avx2"] = cpu_supports(Isa::avx2);
        sup["avx512"] = cpu_supports(Isa::avx512);
        d["supported_isas"] = sup;
        d["gemm_kernel_float32"] = gemm_kernel_name(false);
        d["gemm_kernel_float64"] = gemm_kernel_name(true);
        d["openmp"] = _OPENMP;
        return d;
      },
      "Which kernel path runs: ISA in use, thread count, supported ISAs, GEMM microkernels.");
}

}  // namespace matnet::bind
