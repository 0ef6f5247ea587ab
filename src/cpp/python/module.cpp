// matnet._core: the private extension module. The public API is re-exported
// by the Python package (src/python/matnet).
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "matnet/runtime.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "matnet C++ kernels (private; use the matnet package)";
  // Resolve the ISA now so a bad MATNET_ISA fails at import with its message.
  matnet::active_isa();
  matnet::bind::register_runtime(m);
  matnet::bind::register_gemm(m);
  matnet::bind::register_ops(m);
  matnet::bind::register_dense(m);
  matnet::bind::register_losses(m);
  matnet::bind::register_optim(m);
  matnet::bind::register_attention(m);
  matnet::bind::register_layer_norm(m);
  matnet::bind::register_conv(m);
  matnet::bind::register_norm(m);
  matnet::bind::register_linalg(m);
}
