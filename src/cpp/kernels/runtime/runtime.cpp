// Run-time ISA selection and thread control (see matnet/runtime.hpp).
#include "matnet/runtime.hpp"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>

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

// ---- threads
//
// The thread count is one process-wide budget (an atomic), not OpenMP's
// per-thread nthreads ICV: set_num_threads() in one thread applies to calls
// from every thread, as torch.set_num_threads does. The budget starts at
// OpenMP's default (OMP_NUM_THREADS, else the CPU count), capped.
//
// OpenMP's ICV still acts as a limit when someone other than matnet changed
// it on the calling thread (threadpoolctl, a direct omp_set_num_threads):
// "changed" means different from what matnet last wrote to that thread's ICV,
// or, on a thread matnet never wrote to, different from the process default.
//
// fork(): libgomp's thread pool is not fork-safe (the child inherits a pool
// whose threads do not exist, and the next team waits for them forever). A
// pthread_atfork handler puts the child on one thread, so it never starts a
// team; set_num_threads() in the child raises it again from a thread that
// has not used OpenMP in the parent, or keeps it at 1 (see set_num_threads).

namespace {

// The cap on set_num_threads: oversubscribing a core 4 times never pays, and
// libgomp fails (or crashes) creating tens of thousands of threads.
constexpr int kThreadsPerCpu = 4;

// (OMP_THREAD_LIMIT is not part of the cap: a team smaller than asked for
// is handled by every parallel region.)
int compute_thread_cap() { return kThreadsPerCpu * std::max(omp_get_num_procs(), 1); }

struct ThreadState {
  int cap = compute_thread_cap();
  int default_icv = omp_get_max_threads();  // the process default, read at load
  std::atomic<int> budget{std::min(std::max(default_icv, 1), cap)};
  // The forked child of a process whose OpenMP pool existed: only threads
  // created after the fork may start teams.
  std::atomic<bool> forked_child{false};
};

ThreadState& state() {
  static ThreadState s;
  return s;
}

// What matnet last wrote to this thread's ICV (0: never).
thread_local int t_icv_written = 0;
// True on a thread that existed in the parent before a fork (its OpenMP pool is stale).
thread_local bool t_pool_stale = false;

void write_icv(int n) {
  omp_set_num_threads(n);
  t_icv_written = n;
}

void after_fork_in_child() {
  ThreadState& s = state();
  s.budget.store(1, std::memory_order_relaxed);
  s.forked_child.store(true, std::memory_order_relaxed);
  t_pool_stale = true;
  write_icv(1);
}

const bool fork_handler_registered = [] {
  state();  // read OpenMP's defaults now, in the loading thread
  return pthread_atfork(nullptr, nullptr, &after_fork_in_child) == 0;
}();

}  // namespace

int max_num_threads() { return state().cap; }

int get_num_threads() {
  ThreadState& s = state();
  if (t_pool_stale) return 1;  // this thread's OpenMP pool died with the fork
  const int budget = s.budget.load(std::memory_order_relaxed);
  const int icv = omp_get_max_threads();
  const int mine = t_icv_written != 0 ? t_icv_written : s.default_icv;
  if (icv == mine || omp_in_parallel()) return budget;
  return std::min(std::max(icv, 1), s.cap);  // limited from outside on this thread
}

void set_num_threads(int n) {
  const int cap = max_num_threads();
  if (n < 1 || n > cap) {
    throw matnet::invalid_argument("set_num_threads: n must be in [1, " + std::to_string(cap) +
                                   "] (" + std::to_string(kThreadsPerCpu) +
                                   " x the CPUs available), got " +
                                   std::to_string(n));
  }
  state().budget.store(n, std::memory_order_relaxed);
  write_icv(n);
}

}  // namespace matnet
