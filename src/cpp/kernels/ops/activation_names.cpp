// Activation names (matnet/activations.hpp). Kept apart from the kernels so
// the model-file reader, which only needs the names, links without them.
#include <string>

#include "core/checks.hpp"
#include "matnet/activations.hpp"

namespace matnet {

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::identity: return "identity";
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::silu: return "silu";
  }
  return "unknown";
}

Activation activation_from_name(const std::string& name) {
  if (name == "none" || name == "linear") return Activation::identity;
  for (int a = 0; a <= static_cast<int>(Activation::silu); ++a) {
    const auto act = static_cast<Activation>(a);
    if (name == activation_name(act)) return act;
  }
  detail::fail("activation_from_name",
               "unknown activation '" + name +
                   "'; use one of none, relu, leaky_relu, sigmoid, tanh, gelu, gelu_tanh, silu");
}

}  // namespace matnet
