// The one kernel registry (internal).
//
// A table per ISA holds every kernel family: GEMM microkernels with their
// packers and block sizes (and the direct-A, tail and sup variants where the
// ISA has them), GEMV, element-wise loops, optimizer loops, attention's
// softmax steps, the small-matrix LU, the small tridiagonalisation and the
// Winograd transforms, for float and double. The table of active_isa()
// (CPUID, or MATNET_ISA) is chosen once;
// drivers ask kernels<T>() and never switch on the ISA themselves. A new
// kernel family adds a field to KernelSet and an entry in each ISA's table
// (registry.cpp); a new ISA adds a table there.
#pragma once

#include "blas2/gemv_kernels.hpp"
#include "blas3/ukernel.hpp"
#include "linalg/small_lu.hpp"
#include "linalg/small_tridiag.hpp"
#include "nn/attention_kernels.hpp"
#include "nn/winograd_kernels.hpp"
#include "matnet/runtime.hpp"
#include "ops/eltwise.hpp"
#include "optim/optim_loops.hpp"

namespace matnet::detail {

/// Every kernel of one ISA for one dtype.
template <class T>
struct KernelSet {
  const GemmKernel<T>* gemm;
  const GemvKernels<T>* gemv;
  const EltwiseKernels<T>* eltwise;
  const OptimLoops<T>* optim;
  const AttentionKernels<T>* attention;
  const SmallLuKernels<T>* small_lu;
  const SmallTridiagKernels<T>* small_tridiag;
  const WinogradKernels<T>* winograd;
};

struct KernelTable {
  Isa isa;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

/// The table of the active ISA; chosen on first use, thread-safe. Throws
/// std::runtime_error if MATNET_ISA names a path the CPU lacks.
const KernelTable& kernel_table();

template <class T>
const KernelSet<T>& kernels() {
  if constexpr (sizeof(T) == 4) return kernel_table().f32;
  else return kernel_table().f64;
}

}  // namespace matnet::detail
