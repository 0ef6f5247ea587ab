// The optimizer update loops (optim_loops.hpp) compiled for AVX2: 8 float /
// 4 double lanes. Adam and RMSprop are bound by the divider and the square
// root, whose 256-bit forms retire about twice the elements per cycle of the
// 128-bit ones the portable build is limited to.
//
// No FMA contraction here (the TU is compiled with -mfma): torch rounds the
// product and the sum separately, and the portable build cannot fuse, so both
// builds give the same bits.
#pragma GCC optimize("fp-contract=off")

#include "optim/optim_loops.hpp"

namespace matnet::detail {

const OptimLoops<float>& optim_loops_avx2_f32() {
  static constexpr OptimLoops<float> loops = make_optim_loops<float>();
  return loops;
}

const OptimLoops<double>& optim_loops_avx2_f64() {
  static constexpr OptimLoops<double> loops = make_optim_loops<double>();
  return loops;
}

}  // namespace matnet::detail
