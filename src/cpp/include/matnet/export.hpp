// matnet/export.hpp - symbol visibility for the shared library libmatnet.
#pragma once

#if defined(_WIN32)
#  if defined(MATNET_BUILDING_LIBRARY)
#    define MATNET_API __declspec(dllexport)
#  else
#    define MATNET_API __declspec(dllimport)
#  endif
#else
#  define MATNET_API __attribute__((visibility("default")))
#endif
