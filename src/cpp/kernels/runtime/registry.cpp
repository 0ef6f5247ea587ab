// The kernel tables, one per ISA (see registry.hpp). Every ISA switch of the
// library is here.
#include "runtime/registry.hpp"

namespace matnet::detail {

namespace {

KernelTable generic_table() {
  return {Isa::generic,
          {&sgemm_kernel_generic(), &sgemv_kernels_generic(), &eltwise_f32_generic(),
           &optim_loops_generic_f32(), &attention_f32_generic(), &small_lu_f32_generic(),
           &small_tridiag_f32_generic(),
           &winograd_f32_generic()},
          {&dgemm_kernel_generic(), &dgemv_kernels_generic(), &eltwise_f64_generic(),
           &optim_loops_generic_f64(), &attention_f64_generic(), &small_lu_f64_generic(),
           &small_tridiag_f64_generic(),
           &winograd_f64_generic()}};
}

KernelTable avx2_table() {
  // float64 element-wise (and attention softmax) loops stay the libm-based
  // generic ones: their accuracy is the point of float64 here.
  return {Isa::avx2,
          {&sgemm_kernel_avx2(), &sgemv_kernels_avx2(), &eltwise_f32_avx2(),
           &optim_loops_avx2_f32(), &attention_f32_avx2(), &small_lu_f32_avx2(),
           &small_tridiag_f32_avx2(),
           &winograd_f32_avx2()},
          {&dgemm_kernel_avx2(), &dgemv_kernels_avx2(), &eltwise_f64_generic(),
           &optim_loops_avx2_f64(), &attention_f64_generic(), &small_lu_f64_avx2(),
           &small_tridiag_f64_avx2(),
           &winograd_f64_avx2()}};
}

KernelTable avx512_table() {
  // The AVX2 table with the kernels that AVX-512 made faster (so far the
  // sup GEMM, gemm_sup_avx512.cpp, the small-matrix LU and the small
  // tridiagonalisation, twice the lanes).
  KernelTable t = avx2_table();
  t.isa = Isa::avx512;
  t.f32.gemm = &sgemm_kernel_avx512();
  t.f64.gemm = &dgemm_kernel_avx512();
  t.f32.small_lu = &small_lu_f32_avx512();
  t.f64.small_lu = &small_lu_f64_avx512();
  t.f32.small_tridiag = &small_tridiag_f32_avx512();
  t.f64.small_tridiag = &small_tridiag_f64_avx512();
  return t;
}

KernelTable table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512_table();
    case Isa::avx2: return avx2_table();
    case Isa::generic: break;
  }
  return generic_table();
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table = table_for(active_isa());
  return table;
}

}  // namespace matnet::detail
