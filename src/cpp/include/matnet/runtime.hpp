// matnet/runtime.hpp - instruction-set dispatch and thread control.
//
// libmatnet is compiled for baseline x86-64; kernels for wider instruction
// sets sit in their own translation units and are picked once, the first time
// any kernel runs, from CPUID. The environment variable MATNET_ISA
// ("generic", "avx2" or "avx512") forces a path; forcing a path the CPU lacks is an
// error (std::runtime_error from the first call that needs a kernel).
#pragma once

#include <string>

#include "matnet/errors.hpp"
#include "matnet/export.hpp"

namespace matnet {

/// Kernel families, in increasing order of capability.
enum class Isa {
  generic = 0,  ///< portable C++, any x86-64 (or other) CPU
  avx2 = 1,     ///< AVX2 + FMA (Haswell, Zen and later)
  avx512 = 2,   ///< AVX2 + FMA + AVX-512F/VL (Skylake-X, Zen 4 and later): the AVX2
                ///< kernels, with AVX-512 ones where those measured faster
};

/// The instruction set whose kernels run. Thread-safe; the choice is made
/// once, on first use. Throws std::runtime_error if MATNET_ISA names an
/// unknown path or one the CPU does not support.
MATNET_API Isa active_isa();

/// Lower-case name of an Isa ("generic", "avx2").
MATNET_API const char* isa_name(Isa isa);

/// True when the CPU (and OS) support the given instruction set.
MATNET_API bool cpu_supports(Isa isa);

/// Number of OpenMP threads the kernels use for a call from the calling
/// thread: the process-wide setting (set_num_threads, else OMP_NUM_THREADS,
/// else the CPU count, capped at max_num_threads()). Where the calling
/// thread's OpenMP thread count was changed by someone else (threadpoolctl,
/// omp_set_num_threads), that value. 1 on the thread that called fork(), in
/// the child (see set_num_threads).
MATNET_API int get_num_threads();

/// The largest count set_num_threads accepts: 4 x the CPUs available to the
/// process (omp_get_num_procs). OMP_THREAD_LIMIT may still make teams smaller.
MATNET_API int max_num_threads();

/// Sets the number of OpenMP threads for calls made from every thread of the
/// process. Throws matnet::invalid_argument unless 1 <= n <= max_num_threads().
///
/// fork(): the child starts with 1 thread (libgomp's thread pool does not
/// survive fork, and a team started from the forking thread would wait for
/// the parent's threads forever). set_num_threads(n) in the child applies
/// to threads the child creates; calls from the thread that forked stay on
/// one thread.
MATNET_API void set_num_threads(int n);

}  // namespace matnet
