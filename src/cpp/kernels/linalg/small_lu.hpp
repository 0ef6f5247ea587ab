// LU with partial pivoting of stacks of small matrices, many at once
// (internal): the kernels of the stacked solve / inv / det (batched.cpp)
// for orders up to thresholds::small_lu_max_n. One table per dtype and ISA,
// in the kernel registry (runtime/registry.hpp).
//
// Each SIMD lane holds one matrix of the stack: the group of `lanes`
// consecutive matrices is interleaved element by element into vectors
// (element (i, j) of all of them in one vector), and every step of the
// elimination is a vector operation on the group. Pivot rows are chosen
// per lane (compare + blend), so pivoting is LAPACK's partial pivoting on
// each matrix: the first row of largest |a_ij| in column j (IDAMAX), rows
// swapped, multipliers l = a_ij * (1 / pivot) as DGETF2, B carried along
// the elimination (L^{-1} P B), then back substitution with U. A per-matrix
// loop at n = 8 spends its time in branches (pivot search) and loop control;
// across lanes there are none.
//
// The kernels never throw, allocate or know of threads.
#pragma once

#include <cstdint>

namespace matnet::detail {

template <class T>
struct SmallLuKernels {
  /// For each of the `count` matrices A_m (n x n, a + m n n, read only) of a
  /// stack, n <= small_lu_max_n, nrhs <= small_lu_max_nrhs:
  ///   P A_m = L U (partial pivoting);
  ///   when nrhs > 0: B_m := A_m^{-1} B_m (b + m n nrhs, n x nrhs), where
  ///   B_m is the identity (nrhs = n, b only written) when b_identity;
  ///   when diag is not null: diag[m n + k] = U_kk, perm[m] = det(P) = +-1;
  ///   info[m] = 0, or k + 1 for the first zero pivot U_kk (then B_m holds
  ///   garbage), or -1 when A_m or B_m holds NaN/Inf (then B_m, diag and
  ///   perm hold garbage).
  void (*factor_solve)(std::int64_t n, std::int64_t nrhs, std::int64_t count, const T* a, T* b,
                       bool b_identity, T* diag, T* perm, std::int64_t* info);
  /// Matrices per group (the SIMD width): callers split stacks on multiples.
  int lanes;
  const char* name;
};

const SmallLuKernels<float>& small_lu_f32_generic();
const SmallLuKernels<double>& small_lu_f64_generic();
const SmallLuKernels<float>& small_lu_f32_avx2();
const SmallLuKernels<double>& small_lu_f64_avx2();
const SmallLuKernels<float>& small_lu_f32_avx512();
const SmallLuKernels<double>& small_lu_f64_avx512();

}  // namespace matnet::detail
