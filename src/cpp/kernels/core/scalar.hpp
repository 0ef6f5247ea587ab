// Scalar rules shared by the factorizations and the triangular solves.
#pragma once

#include <cmath>
#include <limits>

namespace matnet::detail {

/// Whether 1 / d overflows, i.e. d is subnormal (LAPACK's sfmin test in
/// DGETF2): then divide by d instead of multiplying by its reciprocal. The
/// SIMD small LU (linalg/small_lu_impl.hpp) applies the same rule per lane.
template <class T>
[[gnu::always_inline]] inline bool reciprocal_overflows(T d) {
  return std::abs(d) < std::numeric_limits<T>::min();
}

}  // namespace matnet::detail
