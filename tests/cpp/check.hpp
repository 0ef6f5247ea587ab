// tests/cpp/check.hpp - the one CHECK of the C++ tests (no framework): count
// failures, report file:line and the condition, keep going.
#pragma once

#include <cstdio>

inline int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                               \
  } while (0)

#include <cstddef>
#include <exception>

/// One named test of a program's table.
struct NamedTest {
  const char* name;
  void (*run)();
};

/// Runs every test (an exception fails it), prints PASS/FAIL per test and a
/// summary line ending in `suffix`; returns main's exit code.
template <std::size_t N>
int run_tests(const NamedTest (&tests)[N], const char* suffix) {
  int failed_tests = 0;
  for (const auto& t : tests) {
    const int before = g_failures;
    try {
      t.run();
    } catch (const std::exception& e) {
      ++g_failures;
      std::fprintf(stderr, "%s: unexpected exception: %s\n", t.name, e.what());
    }
    const bool passed = g_failures == before;
    failed_tests += !passed;
    std::printf("%s %s\n", passed ? "PASS" : "FAIL", t.name);
  }
  std::printf("%d of %zu tests failed (%s)\n", failed_tests, N, suffix);
  return failed_tests == 0 ? 0 : 1;
}
