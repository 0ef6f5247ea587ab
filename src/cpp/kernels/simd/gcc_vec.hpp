// GCC/Clang generic vectors of L lanes of T (internal), for kernel families
// written once and compiled per ISA by the registry (small LU, small
// tridiagonal reduction, Winograd transforms): the compiler maps them onto
// whatever vector width the including file is built for. Anonymous
// namespace: each TU keeps its own copy, built with its own flags, so the
// builds never merge at link time. Derive from GccVec and bring its names in
// with using-declarations.
#pragma once

#include <cstring>

// Vector types by value: the SSE2 (generic) build warns that passing them
// would change the ABI; they never leave the including file's inlined helpers.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace matnet::detail {
namespace {

template <class T, int L>
struct GccVec {
  // (a typedef: GCC ignores the attribute on a dependent `using` alias)
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  using Mask = decltype(V{} < V{});  // all ones / zero per lane

  /// Unaligned load and store (memcpy: any address, no aliasing concerns).
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  static V splat(T x) { return V{} + x; }
  static V vabs(V v) { return v < T(0) ? -v : v; }
};

}  // namespace
}  // namespace matnet::detail
