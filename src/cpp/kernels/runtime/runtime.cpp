// Run-time ISA selection and thread control (see matnet/runtime.hpp).
#include "matnet/runtime.hpp"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace matnet {

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::generic:
      return true;
    case Isa::avx2:
#if defined(__x86_64__) || defined(__i386__)
      // libgcc's CPU model also checks (via XGETBV) that the OS saves ymm state.
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
      return false;
#endif
    case Isa::avx512:
#if defined(__x86_64__) || defined(__i386__)
      // As for AVX2, libgcc also checks that the OS saves the zmm and mask state.
      __builtin_cpu_init();
      return cpu_supports(Isa::avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512vl");
#else
      return false;
#endif
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

namespace {

Isa choose_isa() {
  const char* forced = std::getenv("MATNET_ISA");
  if (forced != nullptr && forced[0] != '\0') {
    Isa want;
    if (std::strcmp(forced, "generic") == 0) {
      want = Isa::generic;
    } else if (std::strcmp(forced, "avx2") == 0) {
      want = Isa::avx2;
    } else if (std::strcmp(forced, "avx512") == 0) {
      want = Isa::avx512;
    } else {
      throw std::runtime_error(std::string("MATNET_ISA='") + forced +
                               "' is not a known path; use 'generic', 'avx2' or 'avx512'");
    }
    if (!cpu_supports(want)) {
      throw std::runtime_error(std::string("MATNET_ISA='") + forced +
                               "' was requested but this CPU does not support it");
    }
    return want;
  }
  if (cpu_supports(Isa::avx512)) return Isa::avx512;
  return cpu_supports(Isa::avx2) ? Isa::avx2 : Isa::generic;
}

}  // namespace

Isa active_isa() {
  static const Isa isa = choose_isa();  // thread-safe static init; rethrows if it failed
  return isa;
}

int get_num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  if (n < 1) {
    throw matnet::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  }
  omp_set_num_threads(n);
}

}  // namespace matnet
