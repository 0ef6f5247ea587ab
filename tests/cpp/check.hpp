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
