// Bindings: thread control and CPU / kernel information.
#include <omp.h>

#include "bind_common.hpp"
#include "bindings.hpp"
#include "matnet/gemm.hpp"
#include "matnet/runtime.hpp"

namespace matnet::bind {

void register_runtime(py::module_& m) {
  m.def("get_num_threads", &matnet::get_num_threads,
        "Number of threads matnet's kernels use (process-wide; honours OMP_NUM_THREADS).");
  m.def("max_num_threads", &matnet::max_num_threads,
        "The largest count set_num_threads accepts (4 x the CPUs available).");
  m.def("set_num_threads", &matnet::set_num_threads, py::arg("n"),
        "Sets the number of threads matnet's kernels use, for every thread "
        "(ValueError outside [1, max_num_threads()]).");
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
