// One registration function per binding file; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace matnet::bind {

void register_runtime(pybind11::module_& m);
void register_gemm(pybind11::module_& m);
void register_ops(pybind11::module_& m);
void register_dense(pybind11::module_& m);
void register_losses(pybind11::module_& m);
void register_optim(pybind11::module_& m);
void register_attention(pybind11::module_& m);
void register_layer_norm(pybind11::module_& m);
void register_conv(pybind11::module_& m);
void register_norm(pybind11::module_& m);
void register_linalg(pybind11::module_& m);

}  // namespace matnet::bind
