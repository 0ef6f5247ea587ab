// matnet/errors.hpp - the exception types of the public C++ API.
//
// Every matnet function reports bad arguments (negative sizes, leading
// dimensions smaller than a row, null pointers where data must be read or
// written, unknown names) by throwing matnet::invalid_argument, which derives
// from std::invalid_argument, so either type can be caught. Nothing is written
// to any output when a call throws it. Scratch allocation may throw
// std::bad_alloc; a kernel path forced by MATNET_ISA that the CPU lacks
// throws std::runtime_error.
#pragma once

#include <stdexcept>

#include "matnet/export.hpp"

namespace matnet {

/// The exception type every matnet function throws for bad arguments.
class MATNET_API invalid_argument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Thrown by load_model and TensorFile::open (matnet/model.hpp) for a file
/// that is not a well-formed matnet safetensors file: truncated, a header
/// that is not JSON or declares sizes and offsets the file cannot hold, or
/// an architecture that contradicts the tensors. A model_format_error is an
/// invalid_argument, so code catching that sees it too.
class MATNET_API model_format_error : public invalid_argument {
 public:
  using invalid_argument::invalid_argument;
};

}  // namespace matnet
