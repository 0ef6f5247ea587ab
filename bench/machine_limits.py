"""What this machine can do at most, to put the other benchmarks' figures in
context: the float32 FMA peak of one core and of all of them, and the read
bandwidth of each cache level and of memory, on 1 and N threads.

A small C++ probe is compiled with the system C++ compiler (AVX2 + FMA, the
ISA matnet's kernels use) and run:
  - FMA peak: 12 independent chains of 256-bit fused multiply-adds per
    thread (enough to cover the FMA latency on two pipes), GFLOP/s.
  - read bandwidth: a sum over an array of the given size with eight
    independent 256-bit accumulators, repeated until ~0.2 s has passed,
    GB/s; each thread reads its own contiguous part.
Best of 7 rounds (the machines are shared: the best round is the one least
disturbed). Usage:

    python3 bench/machine_limits.py [--threads 1 2] [--json limits.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

PROBE = r"""
#include <immintrin.h>
#include <omp.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int main(int argc, char** argv) {
  const int threads = std::atoi(argv[1]);
  // FMA peak.
  double best = 0;
  for (int r = 0; r < 7; ++r) {
    const long iters = 20000000;
    const double t0 = now();
#pragma omp parallel num_threads(threads)
    {
      __m256 a[12];
      for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-7f);
      const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
      for (long i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
      __m256 s = a[0];
      for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, a[j]);
      float o[8];
      _mm256_storeu_ps(o, s);
      if (o[0] == 12345.0f) std::printf("#");
    }
    best = std::max(best, threads * iters * 12.0 * 16 / (now() - t0) / 1e9);
  }
  std::printf("fma %.1f\n", best);
  // Read bandwidth.
  for (int a = 2; a < argc; ++a) {
    const size_t bytes = std::strtoull(argv[a], nullptr, 10);
    const size_t n = bytes / 4 / 64 * 64;
    float* x = static_cast<float*>(std::aligned_alloc(64, n * 4));
    double bw = 0;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t b = n * t / nt / 64 * 64, e = t == nt - 1 ? n : n * (t + 1) / nt / 64 * 64;
      for (size_t i = b; i < e; ++i) x[i] = 1.0f;  // first touch by the reader
      for (int r = 0; r < 7; ++r) {
#pragma omp barrier
        double t0 = now();
        long reps = 0;
        __m256 s[8];
        for (auto& v : s) v = _mm256_setzero_ps();
        do {
          for (size_t i = b; i < e; i += 64)
            for (int u = 0; u < 8; ++u) s[u] = _mm256_add_ps(s[u], _mm256_load_ps(x + i + 8 * u));
          ++reps;
        } while (now() - t0 < 0.2);
        const double rate = (e - b) * 4.0 * reps / (now() - t0);
        for (int u = 1; u < 8; ++u) s[0] = _mm256_add_ps(s[0], s[u]);
        float o[8];
        _mm256_storeu_ps(o, s[0]);
        if (o[0] == 12345.0f) std::printf("#");
#pragma omp critical
        bw = std::max(bw, rate * nt / 1e9);  // per-thread rate x threads: the slowest sets it
      }
    }
    std::printf("read %zu %.1f\n", bytes, bw);
    std::free(x);
  }
}
"""

SIZES = [16 << 10, 256 << 10, 800 << 10, 8 << 20, 256 << 20]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        print("machine_limits: no C++ compiler found (set CXX)", file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "probe.cpp"), os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(PROBE)
        subprocess.run([cxx, "-O3", "-mavx2", "-mfma", "-fopenmp", "-std=c++17", src, "-o", exe],
                       check=True)
        for nt in args.threads:
            out = subprocess.run([exe, str(nt)] + [str(s) for s in SIZES], check=True,
                                 capture_output=True, text=True).stdout.split("\n")
            row = {"threads": nt}
            for line in out:
                parts = line.split()
                if parts and parts[0] == "fma":
                    row["fma_gflops"] = float(parts[1])
                elif parts and parts[0] == "read":
                    row[f"read_{int(parts[1]) >> 10}KiB_GBps"] = float(parts[2])
            results.append(row)
    keys = ["threads", "fma_gflops"] + [f"read_{s >> 10}KiB_GBps" for s in SIZES]
    print("  ".join(f"{k:>18}" for k in keys))
    for row in results:
        print("  ".join(f"{row.get(k, float('nan')):>18.1f}" if k != "threads" else f"{row[k]:>18d}"
                        for k in keys))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
