// tests/cpp/check.hpp - the one CHECK of the C++ tests (no framework): count
// failures, report file:line and the condition, keep going; throws<Ex>(f);
// and run_tests(), the main() of each test program.
#pragma once

#include <matnet/runtime.hpp>

#include <cstdio>
#include <exception>
#include <functional>
#include <initializer_list>

inline int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                               \
  } while (0)

// True when f() throws Ex (or a type derived from it); false for no exception
// or another type.
template <typename Ex>
bool throws(const std::function<void()>& f) {
  try {
    f();
  } catch (const Ex&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

struct NamedTest {
  const char* name;
  void (*run)();
};

// Runs every test (an exception counts as a failure), prints PASS/FAIL per
// test and a summary with the ISA path; the exit status for main().
inline int run_tests(std::initializer_list<NamedTest> tests) {
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
  std::printf("%d of %zu tests failed (isa %s)\n", failed_tests, tests.size(),
              matnet::isa_name(matnet::active_isa()));
  return failed_tests == 0 ? 0 : 1;
}
